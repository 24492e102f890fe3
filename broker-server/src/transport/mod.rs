//! Listeners: the only code besides the connection task that awaits on IO. Each accepts
//! byte streams and hands them to [`crate::connection::serve_with`].

pub(crate) mod tcp;
pub(crate) mod tls;
pub(crate) mod ws;

/// The listen backlog asked for on every listener: completed handshakes the kernel
/// holds until the accept loop takes them. Linux caps it at `net.core.somaxconn` (4096
/// by default since 5.4), so asking for more means "as many as the host allows".
///
/// `TcpListener::bind` asked for 128 (`ss -lt` shows it; mosquitto 2.0: 100, rumqttd
/// 0.20: 128). In a reconnect storm thousands of SYNs arrive within milliseconds; once
/// the queue is full the kernel drops them, and every dropped client waits for its SYN
/// retransmission (1 s, then 3 s, 7 s, 15 s). With 128, 20 of 19,000 clients storming
/// in were still out after a minute; with 4096 all were in within 3.1 s
/// (BENCHMARKS.md, "Reconnect storm").
pub(crate) const LISTEN_BACKLOG: u32 = 65_535;

/// Binds a TCP listener on `addr` with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as
/// `TcpListener::bind` sets it on Unix: a restarted broker binds its port again while
/// the previous run's connections are in `TIME_WAIT`).
pub(crate) fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Unsent bytes the kernel may hold for a client beyond those in flight
/// (`TCP_NOTSENT_LOWAT`, see [`bound_unsent`]): a write is woken once fewer than half
/// of them are left, so a reader taking 8 KiB per `write_timeout_secs` makes progress.
pub(crate) const UNSENT_LOWAT: u32 = 16 * 1024;

/// Bounds what a client's TCP socket holds unsent to [`UNSENT_LOWAT`], so that
/// the connection's write timeout sees a slow reader's progress.
///
/// Without it the kernel grows the send buffer to megabytes (on loopback as soon as a
/// burst goes out) and wakes a blocked writer only once a third of it has drained: a
/// subscriber reading a steady 50 KB/s behind a backlog then let no byte in for longer
/// than `write_timeout_secs` and was disconnected as if it had stopped reading. With
/// it, the writer is woken whenever the client took a few KiB; bytes already sent and
/// awaiting acknowledgement are not limited, so a fast link keeps its throughput. The
/// backlog stays in the session's queue instead, where `queue_drop_policy` bounds it.
/// Linux and Android only (elsewhere the option is not set).
pub(crate) fn bound_unsent(stream: &tokio::net::TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = socket2::SockRef::from(stream).set_tcp_notsent_lowat(UNSENT_LOWAT);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = stream;
}
