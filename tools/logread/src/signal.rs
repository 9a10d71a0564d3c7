//! The signals a driver of the suite sends, named as the logs name them: one type for the
//! integration tests and the torture tool, so a signal sent and a signal logged are compared
//! by the same spelling and the same number.

/// A signal the tests or the torture tool send to a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// A terminal's Ctrl+C.
    Int,
    /// `kill PID`, an init system.
    Term,
    /// The terminal went away.
    Hup,
    /// `kill -9`: cannot be caught.
    Kill,
    /// Job control's stop (Ctrl+Z is SIGTSTP; SIGSTOP cannot be caught or ignored).
    Stop,
    /// Job control's `fg`.
    Cont,
}

impl Signal {
    /// The signals a run's main process handles or dies by, the ones its log may name.
    const LOGGED: [Signal; 4] = [Self::Int, Self::Term, Self::Hup, Self::Kill];

    /// The name the logs use (`SIGINT`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Int => "SIGINT",
            Self::Term => "SIGTERM",
            Self::Hup => "SIGHUP",
            Self::Kill => "SIGKILL",
            Self::Stop => "SIGSTOP",
            Self::Cont => "SIGCONT",
        }
    }

    /// The signal's number on this platform.
    pub fn number(self) -> i32 {
        match self {
            Self::Int => libc::SIGINT,
            Self::Term => libc::SIGTERM,
            Self::Hup => libc::SIGHUP,
            Self::Kill => libc::SIGKILL,
            Self::Stop => libc::SIGSTOP,
            Self::Cont => libc::SIGCONT,
        }
    }

    /// The status a shell shows for a process ended by this signal: 128 + N, as the exit
    /// event's `status` field carries it.
    pub fn shell_status(self) -> i64 {
        128 + i64::from(self.number())
    }

    /// The signal the logs call `name`, among those a run handles or dies by.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::LOGGED.into_iter().find(|s| s.name() == name)
    }

    /// The name of signal `number`, for a report (`signal 7` for one the suite never sends).
    pub fn name_of(number: i32) -> String {
        Self::LOGGED
            .into_iter()
            .find(|s| s.number() == number)
            .map_or_else(|| format!("signal {number}"), |s| s.name().to_owned())
    }
}
