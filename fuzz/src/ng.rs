//! The ng protocol's codec and request decoding (the service and the UDP
//! loop need the daemon and are left out).

#[path = "../../userspace/src/ng/bencode.rs"]
pub mod bencode;
#[path = "../../userspace/src/ng/options.rs"]
pub mod options;
#[path = "../../userspace/src/ng/wire.rs"]
pub mod wire;
