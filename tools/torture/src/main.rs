//! Placeholder: the torture tool.
fn main() {}
