//! The WebSocket inside the driver: opening it, its events, sending, closing it, and
//! the one timer. When to open, close and retry is the
//! [`Connection`](protocol::client::Connection)'s decision.

use protocol::client::LinkAction;
use web_time::Instant;

use super::{Driver, Input};
use crate::error::ConnectError;
use crate::socket::{Socket, SocketEvent};

/// The state of the WebSocket.
#[derive(Debug)]
pub(super) enum Link {
    /// No WebSocket.
    Down,
    /// Opening; the connection's timer bounds it.
    Opening(Socket),
    /// Open.
    Up(Socket),
}

impl Driver {
    /// Polls the connection until it is drained: its bytes go out in one frame, and
    /// the WebSocket is opened and closed as it asks.
    pub(super) fn settle(&mut self) {
        loop {
            let action = self.connection.poll(Instant::now(), &mut self.out);
            let mut lost = false;
            if !self.out.is_empty() {
                let sent = match &self.link {
                    Link::Up(socket) => socket.send(&self.out),
                    _ => Err("the WebSocket is not open".into()),
                };
                match sent {
                    Ok(()) => self.connection.handle_written(self.out.len()),
                    Err(err) => {
                        self.connection.handle_connection_lost(Some(err));
                        lost = true;
                    }
                }
                self.out.clear();
            }
            match action {
                Some(LinkAction::Open) => self.start_opening(),
                // Dropping the socket detaches its handlers and closes it.
                Some(LinkAction::Close) => self.link = Link::Down,
                Some(_) => {}
                None if !lost => break,
                None => {}
            }
        }
    }

    /// Starts opening a WebSocket.
    fn start_opening(&mut self) {
        self.generation += 1;
        let generation = self.generation;
        let me = self.me.clone();
        let opened = Socket::open(&self.url, move |event| {
            if let Some(shared) = me.upgrade() {
                shared.input(Input::Socket(generation, event));
            }
        });
        match opened {
            Ok(socket) => self.link = Link::Opening(socket),
            // The constructor throws for a malformed URL or a forbidden port: trying
            // again cannot help.
            Err(err) => {
                self.link = Link::Down;
                let error = ConnectError::Transport(err);
                self.connection
                    .handle_open_failed(error, false, Instant::now());
            }
        }
    }

    pub(super) fn handle_socket(&mut self, event: SocketEvent) {
        match event {
            SocketEvent::Open => {
                let link = std::mem::replace(&mut self.link, Link::Down);
                self.link = match link {
                    Link::Opening(socket) => Link::Up(socket),
                    other => other,
                };
                if matches!(self.link, Link::Up(_)) {
                    self.connection.handle_opened(Instant::now());
                }
            }
            SocketEvent::Data(mut data) => self.connection.handle_bytes(&mut data),
            SocketEvent::Closed {
                code,
                reason,
                error,
            } => {
                let text = crate::text::socket_closed(code, &reason, error);
                match std::mem::replace(&mut self.link, Link::Down) {
                    Link::Opening(_) => {
                        let error = ConnectError::Transport(text);
                        self.connection
                            .handle_open_failed(error, true, Instant::now());
                    }
                    Link::Up(socket) => {
                        self.link = Link::Up(socket);
                        self.connection.handle_connection_lost(Some(text));
                    }
                    Link::Down => {}
                }
            }
        }
    }

    /// Re-arms the timer for the connection's next deadline. An earlier arming is
    /// kept: the timer then wakes early, the connection finds nothing due, and the
    /// timer is armed again for the later deadline. That costs one wake-up per keep
    /// alive period instead of a message to the worker for every packet sent.
    pub(super) fn arm_timer(&mut self) {
        let Some(deadline) = self.connection.poll_timeout() else {
            return;
        };
        if self.timer.deadline().is_none_or(|armed| armed > deadline) {
            self.timer.set_deadline(deadline);
        }
    }
}
