//! The calls layer's unit tests: hand-built events in, exact intents out.
//! `support` drives a [`Calls`](crate::calls::Calls) through a script of steps.

mod api;
mod latch;
mod pre_answer;
mod rtsp;
mod sip;
mod support;
