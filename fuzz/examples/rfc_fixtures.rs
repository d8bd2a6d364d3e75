//! The RFC fixtures of the signaling tests, mounted where their
//! `super::super::sip` paths resolve (see `seed_corpus.rs`).

#[path = "../../userspace/src/signaling/tests/fixtures.rs"]
pub mod fixtures;
