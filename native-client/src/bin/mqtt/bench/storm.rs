//! `storm`: many clients connect at once, as after a broker restart or a network flap.
//!
//! ```text
//! mqtt bench storm -c 19000                  # clean sessions, all at once
//! mqtt bench storm -c 19000 --persistent     # establish sessions, drop them, storm back
//! mqtt bench storm -c 19000 --concurrency 1000
//! ```
//!
//! Without `--persistent`, `-c` clients with clean sessions open their TCP connection
//! and send CONNECT together (at most `--concurrency` handshakes at once; 0, the default,
//! means no limit). With `--persistent`, the sessions are first established (MQTT 3.1.1
//! clean session 0; MQTT 5 clean start 0 and a session expiry), at most
//! `--setup-concurrency` at a time; then every socket is closed without DISCONNECT, as
//! a network flap does, and after `--pause` seconds the same client ids storm back and
//! each CONNACK's session-present flag is counted.
//!
//! The report: time from the first attempt to the last CONNACK, two latencies per
//! client (the whole handshake, TCP connect included; and CONNECT written → CONNACK),
//! failures by reason, and with `--broker-pid` the broker's peak RSS (`VmHWM`) beside
//! its RSS while the clients are held. A connection whose SYN met a full listen queue
//! is retried by the kernel after 1 s, then 3 s: handshake times in whole seconds are
//! that, and `somaxconn` (printed) bounds every listener's backlog. Against a loopback
//! broker the clients connect from `--source-addrs` addresses (127.0.0.1 to .16 by
//! default), so that the tool's own ephemeral ports do not run out.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use native_client::Scheme;
use native_client::transport::{BoxIo, TransportError};
use protocol::packet::{self, Connect, Disconnect, Limits, Packet};
use protocol::{ConnAck, ReasonCode};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::link::Target;
use super::report::{self, Connections, CpuWindow, Latency, LatencySummary, Report};
use super::scenario::{report_head, run_id};
use super::{CommonArgs, secs};
use crate::failure::Failure;

/// `mqtt bench storm`.
#[derive(Debug, Args)]
pub(super) struct StormArgs {
    #[command(flatten)]
    pub(super) common: CommonArgs,
    /// Clients storming in.
    #[arg(short = 'c', long = "count", default_value_t = 19_000)]
    count: u64,
    /// Handshakes in progress at once during the storm (0: no limit, all at once).
    #[arg(long, default_value_t = 0)]
    concurrency: usize,
    /// Persistent sessions: establish them, drop every connection, then storm back
    /// with the same client ids and count CONNACKs with session present.
    #[arg(long)]
    persistent: bool,
    /// MQTT 5 Session Expiry Interval of the persistent sessions, seconds.
    #[arg(long = "session-expiry", default_value_t = 3600)]
    session_expiry: u32,
    /// Handshakes at once while the persistent sessions are established.
    #[arg(long = "setup-concurrency", default_value_t = 200)]
    setup_concurrency: usize,
    /// Seconds between dropping the established connections and the storm, for the
    /// broker to see them gone.
    #[arg(long, default_value_t = 2.0)]
    pause: f64,
    /// Loopback source addresses to spread the clients over (127.0.0.1 to 127.0.0.N)
    /// when the broker is on a 127.x address over plain TCP: one source address has
    /// only the ephemeral port range (about 28,000 ports, fewer with sockets in
    /// TIME_WAIT from an earlier run), and connect() slows down as it fills. 1: off.
    #[arg(long = "source-addrs", default_value_t = 16)]
    source_addrs: u8,
    /// Seconds to hold the connections once the storm is over.
    #[arg(long, default_value_t = 1.0)]
    hold: f64,
}

/// Why a client did not get in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// TCP connect answered by RST (nothing listening, or a full queue with
    /// `tcp_abort_on_overflow`).
    TcpRefused,
    /// The connection was reset or closed before the CONNACK.
    TcpReset,
    /// CONNACK with an error reason code.
    ConnAckRefused,
    /// No CONNACK within `--connect-timeout`.
    Timeout,
    /// Anything else (resolution, TLS, WebSocket, a malformed answer).
    Other,
}

/// Failures by reason.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Failures {
    /// TCP connect refused (RST).
    pub(super) tcp_refused: u64,
    /// Reset or closed before the CONNACK.
    pub(super) tcp_reset: u64,
    /// CONNACK with an error reason code.
    pub(super) connack_refused: u64,
    /// No CONNACK within `--connect-timeout`.
    pub(super) timeout: u64,
    /// Any other error.
    pub(super) other: u64,
}

impl Failures {
    fn count(&mut self, reason: Reason) {
        *match reason {
            Reason::TcpRefused => &mut self.tcp_refused,
            Reason::TcpReset => &mut self.tcp_reset,
            Reason::ConnAckRefused => &mut self.connack_refused,
            Reason::Timeout => &mut self.timeout,
            Reason::Other => &mut self.other,
        } += 1;
    }

    fn total(&self) -> u64 {
        self.tcp_refused + self.tcp_reset + self.connack_refused + self.timeout + self.other
    }
}

/// Figures of `storm` besides those in [`Connections`].
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Storm {
    /// Whether the sessions were persistent (established, dropped, resumed).
    pub(super) persistent: bool,
    /// Handshakes at once during the storm (0: no limit).
    pub(super) concurrency: usize,
    /// Loopback source addresses the clients were spread over (1: not spread).
    pub(super) source_addrs: u8,
    /// Persistent: sessions established before the storm, and how long that took.
    pub(super) setup_connected: u64,
    pub(super) setup_ms: f64,
    /// CONNACKs of the storm with session present.
    pub(super) session_present: u64,
    /// The storm's failures by reason.
    pub(super) failures: Failures,
    /// CONNECT written → CONNACK read, µs (the whole handshake, TCP connect included,
    /// is `connections.connack_latency_us`).
    pub(super) connect_to_connack_us: Option<LatencySummary>,
    /// The broker's peak resident memory over its life (`VmHWM`, `--broker-pid`), KiB.
    pub(super) broker_peak_rss_kib: Option<u64>,
    /// `net.core.somaxconn`: the kernel's cap on every listen backlog.
    pub(super) somaxconn: Option<u64>,
    /// `net.ipv4.tcp_max_syn_backlog`: half-open connections per listener.
    pub(super) tcp_max_syn_backlog: Option<u64>,
}

impl Storm {
    /// Text lines for [`Report::text`].
    pub(super) fn lines(&self) -> Vec<(&'static str, String)> {
        let f = &self.failures;
        let mut lines = vec![(
            "sessions",
            if self.persistent {
                format!(
                    "persistent: {} established in {:.1} ms, {} resumed with session present",
                    self.setup_connected, self.setup_ms, self.session_present
                )
            } else {
                "clean".to_owned()
            },
        )];
        lines.push((
            "failures",
            format!(
                "{} TCP refused, {} reset, {} CONNACK refused, {} timeout, {} other",
                f.tcp_refused, f.tcp_reset, f.connack_refused, f.timeout, f.other
            ),
        ));
        if let Some(l) = &self.connect_to_connack_us {
            lines.push((
                "CONNECT→CONNACK",
                format!("p50 {} µs, p99 {} µs, max {} µs", l.p50, l.p99, l.max),
            ));
        }
        if let Some(kib) = self.broker_peak_rss_kib {
            lines.push(("broker peak rss", format!("{:.1} MiB", kib as f64 / 1024.0)));
        }
        let show = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        lines.push((
            "kernel",
            format!(
                "somaxconn {}, tcp_max_syn_backlog {}, {} source addresses, concurrency {}",
                show(self.somaxconn),
                show(self.tcp_max_syn_backlog),
                self.source_addrs,
                if self.concurrency == 0 {
                    "unlimited".to_owned()
                } else {
                    self.concurrency.to_string()
                }
            ),
        ));
        lines
    }
}

/// How each client connects and what its CONNECT asks for.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// The broker's loopback address, when clients open their TCP connections
    /// themselves from `sources` addresses (`--source-addrs`).
    loopback: Option<SocketAddr>,
    /// How many source addresses: client `i` connects from 127.0.0.(1 + i % sources).
    sources: u8,
    /// Clean session / clean start.
    clean: bool,
    /// MQTT 5 Session Expiry Interval.
    session_expiry: Option<u32>,
}

/// One client's attempt, sent to the collecting loop.
#[derive(Debug)]
enum Outcome {
    Connected {
        /// TCP connect start → CONNACK.
        handshake: Duration,
        /// CONNECT written → CONNACK.
        connack: Duration,
        at: Instant,
        session_present: bool,
    },
    Failed(Reason, String),
}

/// What a held client does when told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Keep holding.
    Hold,
    /// Close the socket without DISCONNECT (a network flap).
    Drop,
    /// Send DISCONNECT, then close.
    Disconnect,
}

/// One wave of connections: started, collected, held until told to stop.
#[derive(Debug)]
struct Wave {
    tasks: JoinSet<bool>,
    stop: watch::Sender<Stop>,
    connected: u64,
    session_present: u64,
    failures: Failures,
    first_error: Option<String>,
    handshake: Latency,
    connack: Latency,
    started: Instant,
    last_connected: Option<Instant>,
}

impl Wave {
    /// Starts `count` clients `<id>-s<i>` (at most `concurrency` handshakes at once,
    /// 0: no limit) and waits until each has connected or failed, or `deadline`.
    async fn run(
        target: &Arc<Target>,
        id: &str,
        count: u64,
        concurrency: usize,
        plan: Plan,
        deadline: Instant,
    ) -> Wave {
        let limit = (concurrency > 0).then(|| Arc::new(Semaphore::new(concurrency)));
        let (results, mut outcomes) = mpsc::unbounded_channel();
        let (stop, stop_rx) = watch::channel(Stop::Hold);
        let mut tasks = JoinSet::new();
        let started = Instant::now();
        for i in 0..count {
            let permit = match &limit {
                Some(limit) => match limit.clone().acquire_owned().await {
                    Ok(permit) => Some(permit),
                    Err(_) => break,
                },
                None => None,
            };
            tasks.spawn(client(
                target.clone(),
                format!("{id}-s{i}"),
                i,
                plan,
                permit,
                results.clone(),
                stop_rx.clone(),
            ));
        }
        drop(results);
        let mut wave = Wave {
            tasks,
            stop,
            connected: 0,
            session_present: 0,
            failures: Failures::default(),
            first_error: None,
            handshake: Latency::new(),
            connack: Latency::new(),
            started,
            last_connected: None,
        };
        while let Ok(Some(outcome)) =
            tokio::time::timeout_at(deadline.into(), outcomes.recv()).await
        {
            match outcome {
                Outcome::Connected {
                    handshake,
                    connack,
                    at,
                    session_present,
                } => {
                    wave.connected += 1;
                    wave.session_present += u64::from(session_present);
                    wave.handshake.record(handshake.as_micros() as u64);
                    wave.connack.record(connack.as_micros() as u64);
                    wave.last_connected = Some(at);
                }
                Outcome::Failed(reason, err) => {
                    wave.failures.count(reason);
                    wave.first_error.get_or_insert(err);
                }
            }
            if wave.connected + wave.failures.total() == count {
                break;
            }
        }
        wave
    }

    /// From the first attempt to the last CONNACK, ms.
    fn time_to_all_ms(&self) -> f64 {
        self.last_connected.map_or(0.0, |last| {
            report::round1(last.duration_since(self.started).as_secs_f64() * 1000.0)
        })
    }

    /// Tells every held client to `how`, and counts those still open.
    async fn end(mut self, how: Stop) -> u64 {
        let _ = self.stop.send(how);
        let mut held = 0;
        while let Some(open) = self.tasks.join_next().await {
            held += u64::from(open.unwrap_or(false));
        }
        held
    }
}

/// `storm`: see the module documentation.
pub(super) async fn storm(args: StormArgs) -> Result<Report, Failure> {
    let common = &args.common;
    let target = Arc::new(common.target()?);
    let deadline = Instant::now() + common.timeout()?;
    let hold = secs(args.hold)?;
    let pause = secs(args.pause)?;
    let mut report = report_head("storm", common, &target);
    let id = run_id();
    let v5 = target.version.is_v5();
    let mut figures = Storm {
        persistent: args.persistent,
        concurrency: args.concurrency,
        somaxconn: read_number("/proc/sys/net/core/somaxconn"),
        tcp_max_syn_backlog: read_number("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
        ..Storm::default()
    };
    let loopback = target
        .url
        .authority()
        .parse::<SocketAddr>()
        .ok()
        .filter(|addr| addr.ip().is_loopback() && addr.is_ipv4())
        .filter(|_| target.url.scheme == Scheme::Mqtt && args.source_addrs > 1);
    let plan = Plan {
        loopback,
        sources: args.source_addrs.max(1),
        clean: !args.persistent,
        session_expiry: (args.persistent && v5).then_some(args.session_expiry),
    };

    if args.persistent {
        let setup = Wave::run(
            &target,
            &id,
            args.count,
            args.setup_concurrency.max(1),
            plan,
            deadline,
        )
        .await;
        figures.setup_connected = setup.connected;
        figures.setup_ms = setup.time_to_all_ms();
        if setup.connected == 0 {
            return Err(Failure::Operation(format!(
                "no session could be established: {}",
                setup.first_error.as_deref().unwrap_or("timed out")
            )));
        }
        setup.end(Stop::Drop).await;
        tokio::time::sleep(pause).await;
    }

    let cpu = CpuWindow::start(common.broker_pid);
    let wave = Wave::run(&target, &id, args.count, args.concurrency, plan, deadline).await;
    let time_to_all_ms = wave.time_to_all_ms();
    let mut connections = Connections {
        requested: args.count,
        connected: wave.connected,
        refused: wave.failures.connack_refused,
        errors: wave.failures.total() - wave.failures.connack_refused,
        time_to_all_ms,
        connect_rate: if time_to_all_ms > 0.0 {
            report::round1(wave.connected as f64 / (time_to_all_ms / 1000.0))
        } else {
            0.0
        },
        connack_latency_us: wave.handshake.summary(),
        held: 0,
        first_error: wave.first_error.clone(),
    };
    figures.source_addrs = if plan.loopback.is_some() {
        plan.sources
    } else {
        1
    };
    figures.session_present = wave.session_present;
    figures.failures = wave.failures.clone();
    figures.connect_to_connack_us = wave.connack.summary();

    tokio::time::sleep(hold.min(deadline.saturating_duration_since(Instant::now()))).await;
    report.broker_rss_kib = common.broker_pid.and_then(report::rss_kib);
    figures.broker_peak_rss_kib = common.broker_pid.and_then(peak_rss_kib);
    connections.held = wave.end(Stop::Disconnect).await;
    let (client_cpu, broker_cpu) = cpu.stop();
    report.client_cpu_pct = client_cpu;
    report.broker_cpu_pct = broker_cpu;
    report.connections = Some(connections);
    report.storm = Some(figures);
    Ok(report)
}

/// One client: connects, reports, holds the connection until told to stop; `true` if
/// it was still open then.
async fn client(
    target: Arc<Target>,
    client_id: String,
    index: u64,
    plan: Plan,
    permit: Option<OwnedSemaphorePermit>,
    results: mpsc::UnboundedSender<Outcome>,
    mut stop: watch::Receiver<Stop>,
) -> bool {
    let began = Instant::now();
    let attempt = tokio::time::timeout(
        target.connect_timeout,
        handshake(&target, &client_id, index, plan, began),
    )
    .await;
    drop(permit);
    let (mut io, outcome) = match attempt {
        Ok(Ok((io, outcome))) => (io, outcome),
        Ok(Err((reason, err))) => {
            let _ = results.send(Outcome::Failed(reason, err));
            return false;
        }
        Err(_) => {
            let _ = results.send(Outcome::Failed(
                Reason::Timeout,
                format!("no CONNACK within {:?}", target.connect_timeout),
            ));
            return false;
        }
    };
    let _ = results.send(outcome);
    drop(results);
    let ping_every = match target.keep_alive {
        0 => Duration::from_secs(3600),
        secs => Duration::from_millis(u64::from(secs) * 750),
    };
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            changed = stop.changed() => {
                let how = *stop.borrow_and_update();
                if changed.is_err() || how == Stop::Hold {
                    if changed.is_err() {
                        return false;
                    }
                    continue;
                }
                if how == Stop::Disconnect {
                    let mut bytes = bytes::BytesMut::new();
                    let disconnect = Packet::Disconnect(Disconnect::new(ReasonCode::Success));
                    if packet::encode(&disconnect, target.version, &mut bytes).is_ok() {
                        let _ = io.write_all(&bytes).await;
                    }
                    let _ = io.shutdown().await;
                }
                return true;
            }
            read = io.read(&mut scratch) => {
                // PINGRESPs; the end of the stream or an error: the connection is lost.
                if !matches!(read, Ok(n) if n > 0) {
                    return false;
                }
            }
            () = tokio::time::sleep(ping_every) => {
                // PINGREQ: fixed header 0xC0, remaining length 0.
                if io.write_all(&[0xC0, 0x00]).await.is_err() {
                    return false;
                }
            }
        }
    }
}

/// TCP connect, CONNECT, CONNACK; the outcome with its two latencies.
async fn handshake(
    target: &Target,
    client_id: &str,
    index: u64,
    plan: Plan,
    began: Instant,
) -> Result<(BoxIo, Outcome), (Reason, String)> {
    let mut io = match plan.loopback {
        Some(server) => {
            let source = Ipv4Addr::new(127, 0, 0, 1 + (index % u64::from(plan.sources)) as u8);
            connect_from(source, server)
                .await
                .map_err(|err| (io_reason(&err), format!("TCP connect: {err}")))?
        }
        None => native_client::transport::open(&target.url, target.tls.as_ref(), None)
            .await
            .map_err(|err| (transport_reason(&err), err.to_string()))?,
    };
    let mut connect = Connect::new(target.version, client_id);
    connect.clean_start = plan.clean;
    connect.keep_alive = target.keep_alive;
    connect.properties.session_expiry_interval = plan.session_expiry;
    connect.username = target.username.clone().map(Into::into);
    connect.password = target.password.clone().map(bytes::Bytes::from);
    let mut buf = bytes::BytesMut::with_capacity(256);
    packet::encode(
        &Packet::Connect(Box::new(connect)),
        target.version,
        &mut buf,
    )
    .map_err(|err| (Reason::Other, err.to_string()))?;
    io.write_all(&buf)
        .await
        .map_err(|err| (io_reason(&err), format!("writing CONNECT: {err}")))?;
    let sent = Instant::now();
    buf.clear();
    let limits = Limits {
        version: target.version,
        ..Limits::default()
    };
    let packet = loop {
        if let Some(packet) =
            packet::decode(&mut buf, &limits).map_err(|err| (Reason::Other, err.to_string()))?
        {
            break packet;
        }
        buf.reserve(64);
        match io.read_buf(&mut buf).await {
            Ok(0) => return Err((Reason::TcpReset, "closed before CONNACK".to_owned())),
            Ok(_) => {}
            Err(err) => return Err((io_reason(&err), format!("reading CONNACK: {err}"))),
        }
    };
    let at = Instant::now();
    match packet {
        Packet::ConnAck(ConnAck { reason_code, .. }) if reason_code.is_error() => Err((
            Reason::ConnAckRefused,
            format!("CONNACK refused: {reason_code:?}"),
        )),
        Packet::ConnAck(connack) => Ok((
            io,
            Outcome::Connected {
                handshake: at - began,
                connack: at - sent,
                at,
                session_present: connack.session_present,
            },
        )),
        other => Err((
            Reason::Other,
            format!("expected CONNACK, got {}", other.packet_type()),
        )),
    }
}

/// Plain TCP to `server` from `source` (any port).
async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> io::Result<BoxIo> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(Box::new(stream))
}

/// The reason behind a transport error.
fn transport_reason(err: &TransportError) -> Reason {
    match err {
        TransportError::Refused { .. } => Reason::TcpRefused,
        TransportError::Connect { source, .. } => io_reason(source),
        _ => Reason::Other,
    }
}

/// The reason behind an IO error on an open or opening connection.
fn io_reason(err: &io::Error) -> Reason {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => Reason::TcpRefused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Reason::TcpReset,
        io::ErrorKind::TimedOut => Reason::Timeout,
        _ => Reason::Other,
    }
}

/// A number from a `/proc/sys` file.
fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Peak resident memory of a process in KiB (`VmHWM` of `/proc/PID/status`).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|line| line.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
