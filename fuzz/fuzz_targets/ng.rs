//! ng: the bencode decoder (decode → encode → decode is the identity, and
//! the encoding is a fixpoint), datagram framing, request body decoding in
//! both formats (a decoded body framed back as a reply decodes to the same
//! value) and typed request decoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_fuzz::ng::bencode::{self, Limits, Value};
use pinhole_fuzz::ng::wire::{self, Format};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = bencode::decode(data) {
        let enc = v.encode();
        let again = bencode::decode(&enc).expect("an encoded value decodes");
        assert_eq!(again, v);
        assert_eq!(again.encode(), enc, "encoding is not canonical");
    }
    let Ok((cookie, body)) = wire::split(data) else {
        return;
    };
    assert!(!cookie.is_empty() && cookie.len() <= wire::MAX_COOKIE);
    let limits = Limits::default();
    if let Ok(v) = wire::decode_body(body, limits) {
        let format = Format::of(body);
        // JSON carries strings, so only values whose byte strings are UTF-8
        // survive the trip exactly.
        if format == Format::Bencode || utf8_only(&v) {
            let reply = wire::frame_as(cookie, &v, format);
            let (c, b) = wire::split(&reply).expect("a framed reply splits");
            assert_eq!(c, cookie);
            assert_eq!(Format::of(b), format);
            // JSON escapes can make the reply longer than the request.
            if b.len() <= limits.max_input {
                assert_eq!(wire::decode_body(b, limits).ok(), Some(v));
            }
        }
    }
    if let Ok(req) = wire::parse_request(body, limits) {
        let _ = req.command().name();
    }
});

fn utf8_only(v: &Value) -> bool {
    match v {
        Value::Bytes(b) => std::str::from_utf8(b).is_ok(),
        Value::Int(_) => true,
        Value::List(items) => items.iter().all(utf8_only),
        Value::Dict(d) => d
            .iter()
            .all(|(k, v)| std::str::from_utf8(k).is_ok() && utf8_only(v)),
    }
}
