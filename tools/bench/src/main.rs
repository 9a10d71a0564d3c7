//! Placeholder: the benchmark tool.
fn main() {}
