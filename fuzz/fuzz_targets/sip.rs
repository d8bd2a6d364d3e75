//! SIP: `signaling::sip::parse` on one datagram, and `SipFramer` on the same
//! bytes as a TCP stream, whole and cut into segments (it must frame both
//! alike); every framed message is parsed too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_fuzz::check;
use pinhole_fuzz::signaling::sip::SipFramer;

fuzz_target!(|data: &[u8]| {
    check::sip_message(data);
    let framed = check::framing_is_chunking_invariant::<SipFramer>(data, check::seed_of(data));
    for msg in &framed.messages {
        check::sip_message(msg);
    }
});
