//! Tests for the signaling parsers.
