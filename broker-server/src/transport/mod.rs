//! Listeners: the only code besides the connection task that awaits on IO. Each accepts
//! byte streams and hands them to [`crate::connection::serve`].

pub mod tcp;
pub mod tls;
pub mod ws;
