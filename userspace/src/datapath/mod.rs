//! The kernel side: loading and attaching the XDP program, its maps, pins
//! on bpffs, and the interfaces it is attached to.
pub mod ebpf;
pub mod error;
pub mod forward;
pub mod latch;
pub mod link_kind;
pub mod links;
pub mod load;
pub mod maps;
pub mod media_scope;
pub mod pin;
