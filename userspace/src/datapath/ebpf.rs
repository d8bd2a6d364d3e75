//! The compiled XDP object, embedded at build time by `build.rs`.

/// The eBPF object (ELF) holding the `pinhole` and `pinhole_baseline` programs.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pinhole.bpf.o"));
