//! The systemd notify messages an embedder can build ([`graceful::notify`]): a stop's
//! `EXTEND_TIMEOUT_USEC=` never promises past its deadline.

use std::time::Duration;

use graceful::notify::extend_message;

#[test]
fn an_extension_never_promises_past_the_deadline() {
    assert_eq!(
        extend_message(Duration::from_secs(30)),
        "EXTEND_TIMEOUT_USEC=2000000"
    );
    assert_eq!(
        extend_message(Duration::from_millis(300)),
        "EXTEND_TIMEOUT_USEC=300000"
    );
}
