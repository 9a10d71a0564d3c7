//! What the parent and its workers share: the settings, the frames on the pipes, and the
//! handshake's steps. Neither side's code lives here.

pub mod config;
pub mod handshake;
pub mod protocol;
