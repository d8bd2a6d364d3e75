//! SDP: `signaling::sdp::parse`, the derived per-stream view
//! (`SessionDescription::media`) and the call layer's adapter (`media_of`),
//! checked against the sections they derive from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_fuzz::check;
use pinhole_fuzz::signaling::sdp;

fuzz_target!(|data: &[u8]| {
    // The parser takes text: valid UTF-8 as is, anything else as SIP would
    // hand it over after a lossy conversion.
    let text = String::from_utf8_lossy(data);
    if let Ok(sdp) = sdp::parse(&text) {
        check::sdp_media(&sdp);
    }
});
