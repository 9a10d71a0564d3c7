//! The lifecycle registry as an embedder keeps it ([`Components`]): what started and did
//! not stop is what a forced exit marks failed.

use graceful::components::{Components, Phase};

#[test]
fn unfinished_lists_what_started_and_did_not_stop() {
    let components = Components::new();
    components.starting("a");
    components.started("a");
    components.starting("b");
    components.started("b");
    components.stopping("b");
    components.stopped("b");
    components.starting("c");
    assert_eq!(components.unfinished(), vec!["a", "c"]);
    assert_eq!(components.fail_unfinished(&"forced"), vec!["a", "c"]);
    assert!(components.unfinished().is_empty());
    assert_eq!(components.phase("a"), Some(Phase::Failed));
}
