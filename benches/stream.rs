//! Placeholder; the streaming benchmark is being written.
fn main() {}
