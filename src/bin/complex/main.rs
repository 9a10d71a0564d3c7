//! `complex`: placeholder until the worker processes land.
fn main() {}
