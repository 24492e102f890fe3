//! The connection's life inside the driver: opening the WebSocket, its events, its end,
//! the backoff before the next attempt, and the one timer.

use web_time::Instant;

use super::{Driver, Input};
use crate::error::{ConnectError, Error};
use crate::socket::{Socket, SocketEvent};
use protocol::client::{DisconnectReason, Event};

/// The state of the WebSocket.
#[derive(Debug)]
pub(super) enum Link {
    /// No WebSocket; the next attempt starts at `retry_at` (`None`: none planned).
    Down { retry_at: Option<Instant> },
    /// Opening; given up at `deadline` (the session's connect timeout).
    Opening { socket: Socket, deadline: Instant },
    /// Open; the session's CONNECT has been sent.
    Up(Socket),
}

impl Link {
    pub(super) fn is_up(&self) -> bool {
        matches!(self, Self::Up(_))
    }

    pub(super) fn socket(&self) -> Option<&Socket> {
        match self {
            Self::Opening { socket, .. } | Self::Up(socket) => Some(socket),
            Self::Down { .. } => None,
        }
    }
}

impl Driver {
    /// Starts opening a WebSocket.
    pub(super) fn start_opening(&mut self) {
        self.generation += 1;
        let generation = self.generation;
        let me = self.me.clone();
        let opened = Socket::open(&self.url, move |event| {
            if let Some(shared) = me.upgrade() {
                shared.input(Input::Socket(generation, event));
            }
        });
        match opened {
            Ok(socket) => {
                let deadline = Instant::now() + self.session.options().connect_timeout;
                self.link = Link::Opening { socket, deadline };
            }
            // The constructor throws for a malformed URL or a forbidden port: trying
            // again cannot help.
            Err(err) => {
                self.stopping = true;
                self.opening_failed(ConnectError::Transport(err));
            }
        }
    }

    pub(super) fn handle_socket(&mut self, event: SocketEvent) {
        match event {
            SocketEvent::Open => {
                let link = std::mem::replace(&mut self.link, Link::Down { retry_at: None });
                let Link::Opening { socket, .. } = link else {
                    self.link = link;
                    return;
                };
                self.link = Link::Up(socket);
                self.io_error = None;
                if let Err(err) = self.session.connect(Instant::now()) {
                    self.down_reason = Some(DisconnectReason::Transport(err.to_string()));
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Err(ConnectError::Options(err.to_string())));
                    }
                    self.stopping = true;
                    self.session.handle_connection_lost();
                }
            }
            SocketEvent::Data(mut data) => {
                if self.link.is_up() {
                    self.session.handle_bytes(&mut data);
                }
            }
            SocketEvent::Closed {
                code,
                reason,
                error,
            } => {
                let text = match (error, reason.is_empty()) {
                    (_, false) => format!("WebSocket closed ({code}): {reason}"),
                    (true, true) => format!("WebSocket error, closed ({code})"),
                    (false, true) => format!("WebSocket closed ({code})"),
                };
                match self.link {
                    Link::Opening { .. } => self.opening_failed(ConnectError::Transport(text)),
                    Link::Up(_) => {
                        self.io_error.get_or_insert(text);
                        self.session.handle_connection_lost();
                    }
                    Link::Down { .. } => {}
                }
            }
        }
    }

    pub(super) fn handle_timer(&mut self) {
        let now = Instant::now();
        match &self.link {
            Link::Up(_) => self.session.handle_timeout(now),
            Link::Down {
                retry_at: Some(retry_at),
            } if now >= *retry_at => self.start_opening(),
            Link::Opening { deadline, .. } if now >= *deadline => {
                let timeout = self.session.options().connect_timeout;
                self.opening_failed(ConnectError::Timeout(timeout));
            }
            _ => {}
        }
    }

    /// The WebSocket did not open (or closed before it did).
    fn opening_failed(&mut self, err: ConnectError) {
        self.link = Link::Down { retry_at: None };
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(err));
            self.finished = true;
        } else if self.stopping || !self.options.reconnect.enabled {
            self.finished = true;
        } else {
            self.schedule_retry();
        }
    }

    /// Re-arms the timer for the link's next deadline. An earlier arming is kept: the
    /// timer then wakes early, the session finds nothing due, and the timer is armed
    /// again for the later deadline. That costs one wake-up per keep alive period
    /// instead of a message to the worker for every packet sent.
    pub(super) fn arm_timer(&mut self) {
        let deadline = match &self.link {
            Link::Up(_) => self.session.poll_timeout(),
            Link::Down { retry_at } => *retry_at,
            Link::Opening { deadline, .. } => Some(*deadline),
        };
        let Some(deadline) = deadline else {
            return;
        };
        if self.timer.deadline().is_none_or(|armed| armed > deadline) {
            self.timer.set_deadline(deadline);
        }
    }

    /// The session says the connection is over: close the WebSocket (what the session
    /// gave last, a DISCONNECT, was sent before), then reconnect or end.
    pub(super) fn close_link(&mut self) {
        // Dropping the socket detaches its handlers and closes it.
        self.link = Link::Down { retry_at: None };
        self.out.clear();
        for reply in self.qos0.drain(..) {
            let _ = reply.send(Err(Error::ConnectionLost));
        }
        self.subscriptions.connection_lost();
        let reason = self.down_reason.take().unwrap_or_else(|| {
            DisconnectReason::Transport(
                self.io_error
                    .take()
                    .unwrap_or_else(|| "connection closed".into()),
            )
        });
        self.io_error = None;
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(first_connect_error(&reason, self)));
            self.finished = true;
            return;
        }
        let taken_over = matches!(
            reason,
            DisconnectReason::Server {
                reason_code: protocol::ReasonCode::SessionTakenOver,
                ..
            }
        );
        let will_reconnect = !self.stopping && !taken_over && self.options.reconnect.enabled;
        self.emit(Event::Disconnected {
            reason,
            will_reconnect,
        });
        if will_reconnect {
            self.schedule_retry();
        } else {
            self.finished = true;
        }
    }

    /// Plans the next attempt with exponential backoff and jitter.
    fn schedule_retry(&mut self) {
        self.attempt = self.attempt.saturating_add(1);
        let delay = self
            .options
            .reconnect
            .delay(self.attempt, js_sys::Math::random());
        self.link = Link::Down {
            retry_at: Some(Instant::now() + delay),
        };
        self.emit(Event::Reconnecting {
            attempt: self.attempt,
            delay,
        });
    }
}

fn first_connect_error(reason: &DisconnectReason, driver: &Driver) -> ConnectError {
    match reason {
        DisconnectReason::Refused(code) => ConnectError::Refused {
            reason_code: *code,
            reason_string: None,
        },
        DisconnectReason::ConnectTimeout => {
            ConnectError::Timeout(driver.session.options().connect_timeout)
        }
        DisconnectReason::Server {
            reason_code,
            reason_string,
        } => ConnectError::Closed(match reason_string {
            Some(text) => format!("DISCONNECT {reason_code}: {text}"),
            None => format!("DISCONNECT {reason_code}"),
        }),
        DisconnectReason::Transport(text) | DisconnectReason::ProtocolViolation(text) => {
            ConnectError::Closed(text.clone())
        }
        other => ConnectError::Closed(other.to_string()),
    }
}
