//! The checks that only the integration tests call, on synthetic logs (the torture tool's
//! tests cover the rest through its choice of checks): each breach caught, each contracted
//! oddity let pass.

use super::*;
use crate::{Event, parse};

fn main_line(fields: &str) -> Event {
    parse(format!(
        r#"{{"timestamp":"t","level":"INFO","target":"t","process":"main","pid":100,"thread":"main","message":"m",{fields}}}"#
    ))
}

fn phase(component: &str, phase: &str) -> Event {
    main_line(&format!(r#""component":"{component}","phase":"{phase}""#))
}

fn invariants(violations: &[Violation]) -> Vec<Invariant> {
    violations.iter().map(|v| v.invariant).collect()
}

#[test]
fn a_stop_before_the_start_completed_is_caught() {
    let shielded = [
        phase("AsyncService1", "starting"),
        phase("AsyncService1", "started"),
        phase("AsyncService2", "starting"),
        phase("AsyncService2", "failed"),
        phase("AsyncService1", "stopping"),
    ];
    assert!(no_stop_before_start_completed(&shielded).is_empty());
    let early = [
        phase("AsyncService1", "starting"),
        phase("AsyncService1", "stopping"),
        phase("AsyncService1", "started"),
    ];
    assert_eq!(
        invariants(&no_stop_before_start_completed(&early)),
        [Invariant::StopOrder]
    );
}

#[test]
fn the_exit_event_must_name_the_status_and_signal() {
    let exit = |fields: &str| {
        [main_line(&format!(
            r#""component":"app","phase":"exit",{fields}"#
        ))]
    };
    let by_sigint = exit(r#""status":130,"signal":"SIGINT""#);
    assert!(exit_event_says(&by_sigint, 130, Some("SIGINT")).is_empty());
    assert!(exit_last(&by_sigint).is_empty());
    assert_eq!(exit_event_says(&by_sigint, 143, Some("SIGTERM")).len(), 2);
    // An exit by a code names no signal.
    assert_eq!(
        invariants(&exit_event_says(&by_sigint, 130, None)),
        [Invariant::ExitStatus]
    );
    assert_eq!(invariants(&exit_last(&[])), [Invariant::ExitLast]);
}

#[test]
fn only_the_planted_panics_may_be_logged() {
    let lines = [main_line(r#""event":"panic""#)];
    let planted = |n| Facts {
        main_pid: 100,
        panics_planted: n,
        ..Facts::default()
    };
    assert!(clean_output(&lines, &[], &planted(1)).is_empty());
    assert_eq!(
        invariants(&clean_output(&lines, &[], &planted(0))),
        [Invariant::CleanOutput]
    );
    // Panic text is never planted.
    let text = [parse("thread 'main' panicked at src/x.rs:1:1")];
    assert_eq!(
        clean_output(&text, &[], &planted(1)).len(),
        2,
        "panic text, not JSON"
    );
}

#[test]
fn a_line_of_main_with_another_pid_is_caught() {
    let lines = [phase("app", "starting")];
    let facts = |main_pid| Facts {
        main_pid,
        ..Facts::default()
    };
    assert!(clean_output(&lines, &[], &facts(100)).is_empty());
    assert_eq!(clean_output(&lines, &[], &facts(7)).len(), 1);
}
