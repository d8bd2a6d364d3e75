//! RTSP: `signaling::rtsp::parse` on the input, `RtspFramer` on it as a TCP
//! stream (whole and in segments, framed alike), and `setup_info` on every
//! pair of framed messages, as a SETUP request and its response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_fuzz::check;
use pinhole_fuzz::signaling::rtsp::{self, RtspFramer};

fuzz_target!(|data: &[u8]| {
    check::rtsp_message(data);
    let framed = check::framing_is_chunking_invariant::<RtspFramer>(data, check::seed_of(data));
    let parsed: Vec<_> = framed
        .messages
        .iter()
        .filter_map(|m| check::rtsp_message(m))
        .collect();
    for request in &parsed {
        for response in &parsed {
            if let Ok(info) = rtsp::setup_info(request, response) {
                if info.needs_pinhole() {
                    assert!(!info.interleaved);
                    assert!(info.client_rtp.is_some() || info.server_rtp.is_some());
                }
                assert_eq!(Some(&info.transport), response.transport.first());
            }
        }
    }
});
