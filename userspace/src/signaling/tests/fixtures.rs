//! Test messages typed from the RFC examples. Text fixtures are written with
//! LF line ends and converted to CRLF by [`crlf`]; RFC 4475 names are kept.

/// Converts LF line ends to CRLF.
pub fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

/// The SDP body shared by many RFC 4475 messages, with `ip` in o= and c=.
pub fn torture_sdp(ip: &str) -> String {
    format!(
        "v=0\no=mhandley 29739 7272939 IN IP4 {ip}\ns=-\nc=IN IP4 {ip}\nt=0 0\n\
         m=audio 49217 RTP/AVP 0 12\nm=video 3227 RTP/AVP 31\na=rtpmap:31 LPC\n"
    )
}

// ---------------------------------------------------------------- RFC 4475 §3.1.1 (valid)

/// §3.1.1.1 A Short Tortuous INVITE.
pub const WSINV: &str = r#"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : "J Rosenberg \\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : 150
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:"Quoted string \"\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.3
s=-
c=IN IP4 192.0.2.4
t=0 0
m=audio 49217 RTP/AVP 0 12
m=video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"#;

/// The method and URI of §3.1.1.2 (intmeth).
pub const INTMETH_METHOD: &str = "!interesting-Method0123456789_*+`.%indeed'~";

/// §3.1.1.2 Wide Range of Valid Characters (with the BEL/NUL/DEL quoted-pairs and the UTF-8 BOM).
pub fn intmeth() -> Vec<u8> {
    let mut s = String::new();
    s.push_str(INTMETH_METHOD);
    s.push_str(" sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\n");
    s.push_str("Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n");
    s.push_str("To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\n");
    s.push_str("From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\u{0440}\u{0430}\u{0431}\u{043e}\u{0442}\u{0430}\u{044e}\u{0449}\u{0438}\u{0439}\";tag=_token~1'+`*%!-.\n");
    s.push_str("Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n");
    s.push_str("CSeq: 139122385 ");
    s.push_str(INTMETH_METHOD);
    s.push('\n');
    s.push_str("Max-Forwards: 255\n");
    s.push_str("extensionHeader-!.%*+_`'~:\u{feff}\u{5927}\u{505c}\u{96fb}\n");
    s.push_str("Content-Length: 0\n\n");
    crlf(&s)
}

/// §3.1.1.3 Valid Use of the % Escaping Mechanism.
pub fn esc01() -> Vec<u8> {
    let head = r#"INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: 150

"#;
    crlf(&format!("{head}{}", torture_sdp("192.0.2.1")))
}

/// §3.1.1.4 Escaped Nulls in URIs.
pub const ESCNULL: &str = r#"REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0

"#;

/// §3.1.1.5 Use of % When It Is Not an Escape.
pub const ESC02: &str = r#"RE%47IST%45R sip:registrar.example.com SIP/2.0
To: "%Z%45" <sip:resource@example.com>
From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0

"#;

/// §3.1.1.6 Message with No LWS between Display Name and <.
pub const LWSDISP: &str = r#"OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0

"#;

/// §3.1.1.7 Long Values in Header Fields (repeated parts generated).
pub fn longreq() -> Vec<u8> {
    let extreme = "extreme".repeat(10);
    let long = "long".repeat(20);
    let name = "name".repeat(25);
    let caller = "amazinglylongcallername".repeat(5);
    let mut s = String::new();
    s.push_str("INVITE sip:user@example.com SIP/2.0\n");
    s.push_str(&format!(
        "To: \"I have a user name of {extreme} proportion\"<sip:user@example.com:6000;\
         unknownparam1=very{long}value;longparam{name}=shortvalue;\
         very{long}ParameterNameWithNoValue>\n"
    ));
    s.push_str(&format!(
        "F: sip:{caller}@example.net;tag=12{};unknownheaderparam{name}=unknowheaderparam{};\
         unknownValuelessparamname{}\n",
        "982".repeat(40),
        "value".repeat(15),
        "paramname".repeat(10)
    ));
    s.push_str(&format!(
        "Call-ID: longreq.one{}longcallid\n",
        "really".repeat(20)
    ));
    s.push_str("CSeq: 3882340 INVITE\n");
    s.push_str(&format!(
        "Unknown-{}-Name: unknown-{long}-value; unknown-{long}-parameter-name = unknown-{long}-parameter-value\n",
        "LongLong".repeat(10)
    ));
    for i in (1..=33).rev() {
        let name = match i % 4 {
            0 => "Via",
            1 => "v",
            2 => "V :",
            _ => "vIa",
        };
        let name = name
            .strip_suffix(" :")
            .map_or(format!("{name}:"), |n| format!("{n} :"));
        s.push_str(&format!("{name} SIP/2.0/TCP sip{i}.example.com\n"));
    }
    s.push_str(&format!(
        "Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very{}branchvalue\n",
        "long".repeat(50)
    ));
    s.push_str("Max-Forwards: 70\n");
    s.push_str(&format!("Contact: <sip:{caller}@host5.example.net>\n"));
    s.push_str("Content-Type: application/sdp\nl: 150\n\n");
    s.push_str(&torture_sdp("192.0.2.1"));
    crlf(&s)
}

/// §3.1.1.8 Extra Trailing Octets in a UDP Datagram.
pub const DBLREQ: &str = r#"REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0

INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: 150

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.15
s=-
c=IN IP4 192.0.2.15
t=0 0
m=audio 49217 RTP/AVP 0 12
m =video 3227 RTP/AVP 31
a=rtpmap:31 LPC
"#;

/// §3.1.1.9 Semicolon-Separated Parameters in URI User Part.
pub const SEMIURI: &str = r#"OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0

"#;

/// §3.1.1.10 Varied and Unknown Transport Types.
pub const TRANSPORTS: &str = r#"OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0

"#;

/// §3.1.1.11 Multipart MIME Message (structure of mpart01: a text part and a
/// binary part, no SDP; the binary content is our own).
pub fn mpart01() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        b"--7a9cbec.3a5ee5b3\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n\r\nHello\r\n--7a9cbec.3a5ee5b3\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n",
    );
    // Binary content including CR, LF, NUL, 0xFF and a fake "--" line prefix.
    body.extend_from_slice(&[
        0x30, 0x82, 0x01, 0x52, 0x06, 0x09, 0x2a, 0x86, 0x0d, 0x0a, 0x2d, 0x2d, 0x37, 0x00, 0xff,
        0xfe, 0x0d, 0x0a, 0x0d, 0x0a, 0x80, 0x81,
    ]);
    body.extend_from_slice(b"\r\n--7a9cbec.3a5ee5b3--\r\n");
    let head = format!(
        "MESSAGE sip:kumiko@example.org SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport\r\n\
         Max-Forwards: 70\r\n\
         Route: <sip:127.0.0.1:5080>\r\n\
         Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuPVQjI3tFLp41Dn9/ciOZvZBP+6sK9Kt6o/1CL99dahemeExUQ8T8B5sG7p1jxjxwMNzJiM+OvOaNkdA4tkYeLQrlg0WkCn3KCkTxEnE4kUWQwnCOQS1TGGCx0gJaeyA=\r\n\
         Identity-Info: <https://127.0.0.1:5080/cert.crt>;alg=rsa-sha1\r\n\
         To: <sip:kumiko@example.org>\r\n\
         From: <sip:koji@example.org>;tag=d3f423d\r\n\
         Call-ID: 8b1c0d2a-mpart01@example.org\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Transfer-Encoding: binary\r\n\
         Content-Type: multipart/mixed;boundary=7a9cbec.3a5ee5b3\r\n\
         Date: Thu, 09 Feb 2006 16:57:49 GMT\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let mut msg = head.into_bytes();
    msg.extend_from_slice(&body);
    msg
}

/// §3.1.1.12 Unusual Reason Phrase.
pub fn unreason() -> Vec<u8> {
    let head = "SIP/2.0 200 = 2**3 * 5**2 \u{043d}\u{043e} \u{0441}\u{0442}\u{043e} \
                \u{0434}\u{0435}\u{0432}\u{044f}\u{043d}\u{043e}\u{0441}\u{0442}\u{043e} \
                \u{0434}\u{0435}\u{0432}\u{044f}\u{0442}\u{044c} - \
                \u{043f}\u{0440}\u{043e}\u{0441}\u{0442}\u{043e}\u{0435}\n\
                Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\n\
                Call-ID: unreason.1234ksdfak3j2erwedfsASdf\n\
                CSeq: 35 INVITE\n\
                From: sip:user@example.com;tag=11141343\n\
                To: sip:user@example.edu;tag=2229\n\
                Content-Length: 154\n\
                Content-Type: application/sdp\n\
                Contact: <sip:user@host198.example.com>\n\n";
    crlf(&format!("{head}{}", torture_sdp("192.0.2.198")))
}

/// §3.1.1.13 Empty Reason Phrase.
pub const NOREASON: &str = "SIP/2.0 100 \n\
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n\
Call-ID: noreason.asndj203insdf99223ndf\n\
CSeq: 35 INVITE\n\
From: <sip:user@example.com>;tag=39ansfi3\n\
To: <sip:user@example.edu>;tag=902jndnke3\n\
Content-Length: 0\n\
Contact: <sip:user@host105.example.com>\n\n";

/// §3.3.1-style messages that are valid at the syntax level.
pub const UNKSCM: &str = r#"OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=384
Max-Forwards: 3
Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34
CSeq: 3923423 OPTIONS
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234
Content-Length: 0

"#;

/// §3.1.1-style: novel scheme with dots.
pub const NOVELSC: &str = r#"OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=384
Max-Forwards: 3
Call-ID: novelsc.asdfasser0q239nwsdfasdkl34
CSeq: 3923423 OPTIONS
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234
Content-Length: 0

"#;

/// Unknown URI schemes in To/From/Contact.
pub const UNKSM2: &str = r#"REGISTER sip:example.com SIP/2.0
To: isbn:2983792873
From: <http://www.example.com>;tag=3234233
Call-ID: unksm2.daksdj@hyphenated-host.example.com
CSeq: 234902 REGISTER
Max-Forwards: 70
Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw
Contact: <name:John_Smith>
l: 0

"#;

/// Contact parameter that is a header parameter, not a URI one.
pub const CPARAM01: &str = r#"REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards: 70
From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe
To: sip:watson@example.com
Call-ID: cparam01.70710@saturn.example.com
CSeq: 2 REGISTER
Contact: sip:+19725552222@gw1.example.net;unknownparam
l: 0

"#;

/// Escaped headers in a Contact URI inside <> (valid).
pub const REGESCRT: &str = r#"REGISTER sip:example.com SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=8
Max-Forwards: 70
Call-ID: regescrt.k345asrl3fdbv@192.0.2.1
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>
L:0

"#;

/// Max-Forwards of zero.
pub const ZEROMF: &str = r#"OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=3ghsd41
Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas
CSeq: 39234321 OPTIONS
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i
Max-Forwards: 0
Content-Length: 0

"#;

/// RFC 2543-style INVITE: no Content-Length (UDP), no branch, no Max-Forwards.
pub fn inv2543() -> Vec<u8> {
    let head = "INVITE sip:UserB@example.com SIP/2.0\n\
                Via: SIP/2.0/UDP iftgw.example.com\n\
                From: <sip:+13035551111@ift.client.example.net;user=phone>\n\
                Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\n\
                To: sip:+16505552222@ss1.example.net;user=phone\n\
                Call-ID: inv2543.1717@ift.client.example.com\n\
                CSeq: 56 INVITE\n\
                Content-Type: application/sdp\n\n\
                v=0\no=mhandley 29739 7272939 IN IP4 192.0.2.5\ns=-\nc=IN IP4 192.0.2.5\n\
                t=0 0\nm=audio 49217 RTP/AVP 0\n";
    crlf(head)
}

// ---------------------------------------------------------------- RFC 4475 §3.1.2 / §3.3 (invalid)

/// An invalid message and what the error must be.
pub struct Invalid {
    /// RFC 4475 name (or our own).
    pub name: &'static str,
    /// Message bytes.
    pub bytes: Vec<u8>,
    /// Predicate on the error.
    pub expect: fn(&super::super::sip::SipError) -> bool,
}

/// Every invalid-message fixture.
pub fn invalid_messages() -> Vec<Invalid> {
    use super::super::sip::SipError as E;
    use super::super::MessageError as M;
    let sdp15 = torture_sdp("192.0.2.15");
    vec![
        Invalid {
            name: "3.1.2.1 badinv01 extraneous header field separators",
            bytes: crlf(&format!(
                "INVITE sip:user@example.com SIP/2.0\nTo: sip:j.user@example.com\n\
                 From: sip:caller@example.net;tag=134161461246\nMax-Forwards: 7\n\
                 Call-ID: badinv01.0ha0isndaksdjasdf3234nas\nCSeq: 8 INVITE\n\
                 Via: SIP/2.0/UDP 192.0.2.15;;,;,,\nContact: \"Joe\" <sip:joe@example.org>;;;;\n\
                 Content-Length: 152\nContent-Type: application/sdp\n\n{sdp15}"
            )),
            expect: |e| matches!(e, E::InvalidHeader { name: "Via", .. }),
        },
        Invalid {
            name: "3.1.2.2 clerr content length larger than message",
            bytes: crlf(&format!(
                "INVITE sip:user@example.com SIP/2.0\nMax-Forwards: 80\nTo: sip:j.user@example.com\n\
                 From: sip:caller@example.net;tag=93942939o2\nContact: <sip:caller@hungry.example.net>\n\
                 Call-ID: clerr.0ha0isndaksdjweiafasdk3\nCSeq: 8 INVITE\n\
                 Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\n\
                 Content-Type: application/sdp\nContent-Length: 9999\n\n{}",
                torture_sdp("192.0.2.155")
            )),
            expect: |e| {
                matches!(
                    e,
                    E::Message(M::ContentLengthExceedsMessage { declared: 9999, available: 154 })
                )
            },
        },
        Invalid {
            name: "3.1.2.3 ncl negative content-length",
            bytes: crlf(&format!(
                "INVITE sip:user@example.com SIP/2.0\nMax-Forwards: 254\nTo: sip:j.user@example.com\n\
                 From: sip:caller@example.net;tag=32394234\nCall-ID: ncl.0ha0isndaksdj2193423r542w35\n\
                 CSeq: 0 INVITE\nVia: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw\n\
                 Contact: <sip:caller@example53.example.net>\nContent-Type: application/sdp\n\
                 Content-Length: -999\n\n{}",
                torture_sdp("192.0.2.53")
            )),
            expect: |e| matches!(e, E::Message(M::InvalidContentLength(v)) if v == "-999"),
        },
        Invalid {
            name: "3.1.2.4 scalar02 request scalar fields with overlarge values",
            bytes: crlf(&format!(
                "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\n\
                 To: <sip:user@example.com>\nFrom: <sip:user@example.com>;tag=239232jh3\n\
                 CSeq: 36893488147419103232 REGISTER\nCall-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\n\
                 Max-Forwards: 300\nExpires: 1{}\nContact: <sip:user@host129.example.com>\n  ;expires=280297596632815\n\
                 Content-Length: 0\n\n",
                "0".repeat(104)
            )),
            expect: |e| matches!(e, E::InvalidHeader { name: "CSeq", .. }),
        },
        Invalid {
            name: "3.1.2.4 scalar02 variant: only Max-Forwards overlarge",
            bytes: crlf(
                "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\n\
                 To: <sip:user@example.com>\nFrom: <sip:user@example.com>;tag=239232jh3\n\
                 CSeq: 36 REGISTER\nCall-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\n\
                 Max-Forwards: 300\nContent-Length: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidHeader { name: "Max-Forwards", .. }),
        },
        Invalid {
            name: "3.1.2.5 scalarlg response scalar fields with overlarge values",
            bytes: crlf(
                "SIP/2.0 503 Service Unavailable\n\
                 Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129\n\
                 To: <sip:user@example.com>\nFrom: <sip:other@example.net>;tag=2easdjfejw\n\
                 CSeq: 9292394834772304023312 OPTIONS\nCall-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r\n\
                 Retry-After: 949302838503028349304023988\nWarning: 1812 overture \"In Progress\"\n\
                 Content-Length: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidHeader { name: "CSeq", .. }),
        },
        Invalid {
            name: "3.1.2.6 quotbal unterminated quoted string in display name",
            bytes: crlf(&format!(
                "INVITE sip:user@example.com SIP/2.0\nTo: \"Mr. J. User <sip:j.user@example.com>\n\
                 From: sip:caller@example.net;tag=93334\nMax-Forwards: 10\nCall-ID: quotbal.aksdj\n\
                 Contact: <sip:caller@host59.example.net>\nCSeq: 8 INVITE\n\
                 Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\n\
                 Content-Type: application/sdp\nContent-Length: 152\n\n{sdp15}"
            )),
            expect: |e| matches!(e, E::InvalidHeader { name: "To", reason } if reason.contains("unterminated")),
        },
        Invalid {
            name: "3.1.2.7 ltgtruri <> enclosing Request-URI",
            bytes: crlf(&format!(
                "INVITE <sip:user@example.com> SIP/2.0\nTo: sip:user@example.com\n\
                 From: sip:caller@example.net;tag=39291\nMax-Forwards: 23\nCall-ID: ltgtruri.1@192.0.2.5\n\
                 CSeq: 1 INVITE\nVia: SIP/2.0/UDP 192.0.2.5\nContact: <sip:caller@host5.example.net>\n\
                 Content-Type: application/sdp\nContent-Length: 150\n\n{}",
                torture_sdp("192.0.2.5")
            )),
            expect: |e| matches!(e, E::InvalidRequestUri { .. }),
        },
        Invalid {
            name: "3.1.2.8 lwsruri malformed Request-URI with embedded LWS",
            bytes: crlf(&format!(
                "INVITE sip:user@example.com; lr SIP/2.0\nTo: sip:user@example.com;tag=3xfe-9921883-z9f\n\
                 From: sip:caller@example.net;tag=231413434\nMax-Forwards: 5\n\
                 Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423\nCSeq: 2130706432 INVITE\n\
                 Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395\n\
                 Contact: <sip:caller@host1.example.net>\nContent-Type: application/sdp\n\
                 Content-Length: 150\n\n{}",
                torture_sdp("192.0.2.1")
            )),
            expect: |e| matches!(e, E::InvalidRequestLine(_)),
        },
        Invalid {
            name: "3.1.2.9 lwsstart multiple SP separating request-line elements",
            bytes: crlf(&format!(
                "INVITE  sip:user@example.com  SIP/2.0\nMax-Forwards: 8\nTo: sip:user@example.com\n\
                 From: sip:caller@example.net;tag=8814\nCall-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com\n\
                 CSeq: 1893884 INVITE\nVia: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923\n\
                 Contact: <sip:caller@host1.example.net>\nContent-Type: application/sdp\n\
                 Content-Length: 150\n\n{}",
                torture_sdp("192.0.2.1")
            )),
            expect: |e| matches!(e, E::InvalidRequestLine(_)),
        },
        Invalid {
            name: "3.1.2.10 trws SP characters at end of request-line",
            bytes: crlf(
                "OPTIONS sip:remote-target@example.com SIP/2.0  \n\
                 Via: SIP/2.0/TCP host1.examle.com;branch=z9hG4bK299342093\n\
                 To: <sip:remote-target@example.com>\nFrom: <sip:local-resource@example.com>;tag=329429089\n\
                 Call-ID: trws.oicu34958239neffasdhr2345r\nAccept: application/sdp\nCSeq: 238923 OPTIONS\n\
                 Max-Forwards: 70\nContent-Length: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidRequestLine(_)),
        },
        Invalid {
            name: "3.1.2.11 escruri escaped headers in SIP Request-URI",
            bytes: crlf(&format!(
                "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\nTo: sip:user@example.com\n\
                 From: sip:caller@example.net;tag=341518\nMax-Forwards: 7\n\
                 Contact: <sip:caller@host39923.example.net>\n\
                 Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5\nCSeq: 149209342 INVITE\n\
                 Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw\n\
                 Content-Type: application/sdp\nContent-Length: 150\n\n{}",
                torture_sdp("192.0.2.1")
            )),
            expect: |e| matches!(e, E::InvalidRequestUri { reason, .. } if reason.contains("headers")),
        },
        Invalid {
            name: "3.1.2.12 baddate invalid time zone in Date",
            bytes: crlf(&format!(
                "INVITE sip:user@example.com SIP/2.0\nTo: sip:user@example.com\n\
                 From: sip:caller@example.net;tag=2234923\nMax-Forwards: 70\n\
                 Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234\nCSeq: 1392934 INVITE\n\
                 Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\n\
                 Date: Fri, 01 Jan 2010 16:00:00 EST\nContact: <sip:caller@host5.example.net>\n\
                 Content-Type: application/sdp\nContent-Length: 150\n\n{}",
                torture_sdp("192.0.2.5")
            )),
            expect: |e| matches!(e, E::InvalidHeader { name: "Date", .. }),
        },
        Invalid {
            name: "3.1.2.13 regbadct failure to enclose name-addr URI in <>",
            bytes: crlf(
                "REGISTER sip:example.com SIP/2.0\nTo: sip:user@example.com\n\
                 From: sip:user@example.com;tag=998332\nMax-Forwards: 70\n\
                 Call-ID: regbadct.k345asrl3fdbv@10.0.0.1\nCSeq: 1 REGISTER\n\
                 Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw\n\
                 Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidHeader { name: "Contact", .. }),
        },
        Invalid {
            name: "3.1.2.14 badaspec spaces within addr-spec",
            bytes: crlf(
                "OPTIONS sip:user@example.org SIP/2.0\n\
                 Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234\nMax-Forwards: 70\n\
                 From: \"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423\n\
                 To: \"Watson, Thomas\" < sip:t.watson@example.org >\n\
                 Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3\nAccept: application/sdp\n\
                 CSeq: 3923239 OPTIONS\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidHeader { name: "To", .. }),
        },
        Invalid {
            name: "3.1.2.15 baddn non-token characters in display name",
            bytes: crlf(
                "OPTIONS sip:t.watson@example.org SIP/2.0\n\
                 Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjuw\nMax-Forwards:      70\n\
                 From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43\n\
                 To:      Watson, Thomas <sip:t.watson@example.org>\nCall-ID: baddn.31415@c.example.com\n\
                 Accept: application/sdp\nCSeq:    3923239 OPTIONS\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidHeader { name: "From", .. }),
        },
        Invalid {
            name: "3.1.2.16 badvers unknown protocol version",
            bytes: crlf(
                "OPTIONS sip:t.watson@example.org SIP/7.0\n\
                 Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\nMax-Forwards:     70\n\
                 From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\n\
                 To:      T. Watson <sip:t.watson@example.org>\nCall-ID: badvers.31417@c.example.com\n\
                 CSeq:    1 OPTIONS\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::UnsupportedVersion(v) if v == "SIP/7.0"),
        },
        Invalid {
            name: "3.1.2.17 mismatch01 start line and CSeq method mismatch",
            bytes: crlf(
                "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:j.user@example.com\n\
                 From: sip:caller@example.net;tag=34525\nMax-Forwards: 6\n\
                 Call-ID: mismatch01.dj0234sxdfl3\nCSeq: 8 INVITE\n\
                 Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::CSeqMethodMismatch { .. }),
        },
        Invalid {
            name: "3.1.2.18 mismatch02 unknown method with CSeq method mismatch",
            bytes: crlf(
                "NEWMETHOD sip:user@example.com SIP/2.0\nTo: sip:j.user@example.com\n\
                 From: sip:caller@example.net;tag=34525\nMax-Forwards: 6\n\
                 Call-ID: mismatch02.dj0234sxdfl3\nCSeq: 8 INVITE\n\
                 Contact: <sip:caller@host.example.net>\n\
                 Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw\n\
                 Content-Type: application/sdp\nl: 138\n\n\
                 v=0\no=mhandley 29739 7272939 IN IP4 192.0.2.1\nc=IN IP4 192.0.2.1\n\
                 m=audio 49217 RTP/AVP 0 12\nm=video 3227 RTP/AVP 31\na=rtpmap:31 LPC\n",
            ),
            expect: |e| {
                matches!(e, E::CSeqMethodMismatch { method, cseq } if method == "NEWMETHOD" && cseq == "INVITE")
            },
        },
        Invalid {
            name: "3.1.2.19 bigcode overlarge response code",
            bytes: crlf(
                "SIP/2.0 4294967301 better not break the receiver\n\
                 Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\n\
                 Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i\nCSeq: 353494 INVITE\n\
                 From: <sip:user@example.com>;tag=39ansfi3\nTo: <sip:user@example.edu>;tag=902jndnke3\n\
                 Content-Length: 0\nContact: <sip:user@host105.example.com>\n\n",
            ),
            expect: |e| matches!(e, E::InvalidStatusLine(_)),
        },
        Invalid {
            name: "3.3.? multi01 multiple values in single-value fields",
            bytes: crlf(&format!(
                "INVITE sip:user@company.com SIP/2.0\nContact: <sip:caller@host25.example.net>\n\
                 Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\nMax-Forwards: 70\nCSeq: 5 INVITE\n\
                 Call-ID: multi01.98asdh@192.0.2.1\nCSeq: 59 INVITE\nCall-ID: multi01.98asdh@192.0.2.2\n\
                 From: sip:caller@example.com;tag=3413415\nTo: sip:user@example.com\n\
                 To: sip:other@example.net\nFrom: sip:caller@example.net;tag=2923420123\n\
                 Content-Type: application/sdp\nl: 152\nContact: <sip:caller@host36.example.net>\n\
                 Max-Forwards: 5\n\n{}",
                torture_sdp("192.0.2.25")
            )),
            expect: |e| matches!(e, E::DuplicateHeader { name: "Call-ID", count: 2 }),
        },
        Invalid {
            name: "3.3.? mcl01 multiple Content-Length values",
            bytes: crlf(
                "OPTIONS sip:user@example.com SIP/2.0\nVia: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423\n\
                 To: sip:user@example.com\nFrom: sip:other@example.net;tag=3923942\n\
                 Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf\nCSeq: 15932 OPTIONS\n\
                 Content-Length: 13\nMax-Forwards: 60\nContent-Length: 5\nContent-Type: text/plain\n\n\
                 There's no way to know how many octets are supposed to be here.\n",
            ),
            expect: |e| matches!(e, E::Message(M::DuplicateContentLength(2))),
        },
        Invalid {
            name: "3.3.? insuf missing required header fields",
            bytes: crlf(&format!(
                "INVITE sip:user@example.com SIP/2.0\nCSeq: 193942 INVITE\n\
                 Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf\nContent-Type: application/sdp\n\
                 l: 152\n\n{}",
                torture_sdp("192.0.2.95")
            )),
            expect: |e| matches!(e, E::MissingHeader("Call-ID")),
        },
        Invalid {
            name: "own: CSeq without a number",
            bytes: crlf(
                "INVITE sip:user@example.com SIP/2.0\nContact: <sip:caller@host5.example.net>\n\
                 To: sip:j.user@example.com\nFrom: sip:caller@example.net;tag=8392034\n\
                 Call-ID: invut.0ha0isndaksdjadsfij34n23d\nCSeq: fhdjkgfhdkjhgkj\n\
                 Via: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidHeader { name: "CSeq", .. }),
        },
        Invalid {
            name: "own: request line without version",
            bytes: crlf(
                "INVITE sip:alan@jasomi.com\nTO : alan@jasomi.com\nFrom: ralph@example.com\n\
                 Call-ID: test.0ha0isndaksdj@192.0.2.1\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidRequestLine(_)),
        },
        Invalid {
            name: "own: header line without colon",
            bytes: crlf(
                "OPTIONS sip:a@example.com SIP/2.0\nVia: SIP/2.0/UDP h.example.com\nFoobar roobar\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::Message(M::MissingColon { line: 3 })),
        },
        Invalid {
            name: "own: Via without sent-by",
            bytes: crlf(
                "OPTIONS sip:a@example.com SIP/2.0\nVia: SIP/2.0/UDP\nTo: <sip:a@example.com>\n\
                 From: <sip:b@example.com>;tag=1\nCall-ID: x\nCSeq: 1 OPTIONS\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidHeader { name: "Via", .. }),
        },
        Invalid {
            name: "own: Via with port out of range",
            bytes: crlf(
                "OPTIONS sip:a@example.com SIP/2.0\nVia: SIP/2.0/UDP h.example.com:70000\nTo: <sip:a@example.com>\n\
                 From: <sip:b@example.com>;tag=1\nCall-ID: x\nCSeq: 1 OPTIONS\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidHeader { name: "Via", reason } if reason.contains("port")),
        },
        Invalid {
            name: "own: missing Via",
            bytes: crlf(
                "OPTIONS sip:a@example.com SIP/2.0\nTo: <sip:a@example.com>\n\
                 From: <sip:b@example.com>;tag=1\nCall-ID: x\nCSeq: 1 OPTIONS\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::MissingHeader("Via")),
        },
        Invalid {
            name: "own: status code 099",
            bytes: crlf(
                "SIP/2.0 099 Low\nVia: SIP/2.0/UDP h.example.com\nTo: <sip:a@example.com>\n\
                 From: <sip:b@example.com>;tag=1\nCall-ID: x\nCSeq: 1 OPTIONS\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidStatusLine(_)),
        },
        Invalid {
            name: "own: response version SIP/3.0",
            bytes: crlf(
                "SIP/3.0 200 OK\nVia: SIP/2.0/UDP h.example.com\nTo: <sip:a@example.com>\n\
                 From: <sip:b@example.com>;tag=1\nCall-ID: x\nCSeq: 1 OPTIONS\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::UnsupportedVersion(_)),
        },
        Invalid {
            name: "own: Contact '*' mixed with an address",
            bytes: crlf(
                "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP h.example.com\nTo: <sip:a@example.com>\n\
                 From: <sip:a@example.com>;tag=1\nCall-ID: x\nCSeq: 1 REGISTER\nContact: *\n\
                 Contact: <sip:a@192.0.2.1>\nExpires: 0\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidHeader { name: "Contact", .. }),
        },
        Invalid {
            name: "own: Call-ID with whitespace",
            bytes: crlf(
                "OPTIONS sip:a@example.com SIP/2.0\nVia: SIP/2.0/UDP h.example.com\nTo: <sip:a@example.com>\n\
                 From: <sip:b@example.com>;tag=1\nCall-ID: two words\nCSeq: 1 OPTIONS\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidHeader { name: "Call-ID", .. }),
        },
        Invalid {
            name: "own: parameter with '=' but no value",
            bytes: crlf(
                "OPTIONS sip:a@example.com SIP/2.0\nVia: SIP/2.0/UDP h.example.com\nTo: <sip:a@example.com>\n\
                 From: <sip:b@example.com>;tag=\nCall-ID: x\nCSeq: 1 OPTIONS\nl: 0\n\n",
            ),
            expect: |e| matches!(e, E::InvalidHeader { name: "From", .. }),
        },
        Invalid {
            name: "own: folded line before any header",
            bytes: crlf("OPTIONS sip:a@example.com SIP/2.0\n folded\nl: 0\n\n"),
            expect: |e| matches!(e, E::Message(M::OrphanContinuation { line: 2 })),
        },
        Invalid {
            name: "own: header name with space inside",
            bytes: crlf("OPTIONS sip:a@example.com SIP/2.0\nCall ID: x\nl: 0\n\n"),
            expect: |e| matches!(e, E::Message(M::InvalidHeaderName { line: 2, .. })),
        },
    ]
}

// ---------------------------------------------------------------- a SIP-T style multipart INVITE

/// INVITE with a multipart/mixed body holding SDP and binary ISUP (RFC 3204 style).
pub fn multipart_invite() -> Vec<u8> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
               m=audio 20000 RTP/AVP 0\r\na=rtcp-mux\r\n";
    let mut body = Vec::new();
    body.extend_from_slice(b"This is a preamble.\r\n--unique-boundary-1\r\n");
    body.extend_from_slice(b"Content-Type: application/sdp\r\n\r\n");
    body.extend_from_slice(sdp.as_bytes());
    body.extend_from_slice(b"\r\n--unique-boundary-1  \r\n");
    body.extend_from_slice(
        b"Content-Type: application/ISUP; version=nxv3; base=etsi121\r\nContent-Disposition: signal; handling=optional\r\n\r\n",
    );
    body.extend_from_slice(&[
        0x01, 0x00, 0x49, 0x00, 0x00, 0x03, 0x02, 0x00, 0x07, 0x04, 0x10, 0x00, 0x33, 0x63, 0x21,
        0x43, 0x00, 0x00, 0x03,
    ]);
    body.extend_from_slice(b"\r\n--unique-boundary-1--\r\nepilogue\r\n");
    let head = format!(
        "INVITE sip:+12345678@gw.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+15551234@example.com>;tag=9fxced76sl\r\n\
         To: <sip:+12345678@example.com>\r\n\
         Call-ID: 3848276298220188511@192.0.2.10\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:+15551234@192.0.2.10>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"unique-boundary-1\"\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    let mut msg = head.into_bytes();
    msg.extend_from_slice(&body);
    msg
}

// ---------------------------------------------------------------- SDP offer/answer examples

/// RFC 3264 §10.1 offer (verbatim, host names).
pub const RFC3264_10_1_OFFER: &str = "v=0
o=alice 2890844526 2890844526 IN IP4 host.anywhere.com
s=
c=IN IP4 host.anywhere.com
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 51372 RTP/AVP 31
a=rtpmap:31 H261/90000
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
";

/// RFC 3264 §10.1 answer (verbatim).
pub const RFC3264_10_1_ANSWER: &str = "v=0
o=bob 2890844730 2890844730 IN IP4 host.example.com
s=
c=IN IP4 host.example.com
t=0 0
m=audio 49920 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
";

/// RFC 3264 §10.1 second offer (Bob adds a recvonly telephone-event stream), addresses made literal.
pub const RFC3264_10_1_REOFFER: &str = "v=0
o=bob 2890844730 2890844731 IN IP4 198.51.100.20
s=
c=IN IP4 198.51.100.20
t=0 0
m=audio 65422 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
m=audio 51434 RTP/AVP 110
a=rtpmap:110 telephone-events/8000
a=recvonly
";

/// RFC 3264 §10.1 second answer (Alice accepts, sendonly), addresses made literal.
pub const RFC3264_10_1_REANSWER: &str = "v=0
o=alice 2890844526 2890844527 IN IP4 192.0.2.10
s=
c=IN IP4 192.0.2.10
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
a=rtpmap:31 H261/90000
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
m=audio 53122 RTP/AVP 110
a=rtpmap:110 telephone-events/8000
a=sendonly
";

/// RFC 3264 §10.2 One of N codec selection: offer, inactive until the codec is chosen.
pub const RFC3264_10_2_OFFER: &str = "v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.10
s=
c=IN IP4 192.0.2.10
t=0 0
m=audio 62986 RTP/AVP 0 4 18
a=rtpmap:0 PCMU/8000
a=rtpmap:4 G723/8000
a=rtpmap:18 G729/8000
a=inactive
";

/// RFC 3264 §10.2 answer.
pub const RFC3264_10_2_ANSWER: &str = "v=0
o=bob 2890844730 2890844731 IN IP4 198.51.100.20
s=
c=IN IP4 198.51.100.20
t=0 0
m=audio 54344 RTP/AVP 0 4
a=rtpmap:0 PCMU/8000
a=rtpmap:4 G723/8000
a=inactive
";

/// RFC 3264 §10.2 follow-up offer: one codec, sendrecv.
pub const RFC3264_10_2_REOFFER: &str = "v=0
o=alice 2890844526 2890844527 IN IP4 192.0.2.10
s=
c=IN IP4 192.0.2.10
t=0 0
m=audio 62986 RTP/AVP 4
a=rtpmap:4 G723/8000
a=sendrecv
";

/// RFC 3264 §8.4 style hold using the RFC 2543 0.0.0.0 connection address.
pub const HOLD_2543: &str = "v=0
o=alice 2890844526 2890844527 IN IP4 192.0.2.10
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 49170 RTP/AVP 0
";

/// RFC 4317 §2.1 Audio and Video 1, offer (addresses made literal).
pub const RFC4317_2_1_OFFER: &str = "v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.101
s=
c=IN IP4 192.0.2.101
t=0 0
m=audio 49170 RTP/AVP 0 8 97
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:97 iLBC/8000
m=video 51372 RTP/AVP 31 32
a=rtpmap:31 H261/90000
a=rtpmap:32 MPV/90000
";

/// RFC 4317 §2.1 answer.
pub const RFC4317_2_1_ANSWER: &str = "v=0
o=bob 2808844564 2808844564 IN IP4 198.51.100.102
s=
c=IN IP4 198.51.100.102
t=0 0
m=audio 49174 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 49170 RTP/AVP 32
a=rtpmap:32 MPV/90000
";

/// RFC 4317 §2.2 answer rejecting video (port 0) — "Audio and Video 2".
pub const RFC4317_2_2_ANSWER: &str = "v=0
o=bob 2808844564 2808844564 IN IP4 198.51.100.102
s=
c=IN IP4 198.51.100.102
t=0 0
m=audio 49172 RTP/AVP 0 8
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
m=video 0 RTP/AVP 31
a=rtpmap:31 H261/90000
";

/// RFC 4317 §2.4 Two audio streams (the second one for DTMF events).
pub const RFC4317_2_4_OFFER: &str = "v=0
o=alice 2890844526 2890844526 IN IP4 192.0.2.101
s=
c=IN IP4 192.0.2.101
t=0 0
m=audio 49170 RTP/AVP 0 97
a=rtpmap:0 PCMU/8000
a=rtpmap:97 iLBC/8000
m=audio 49172 RTP/AVP 98
a=rtpmap:98 telephone-event/8000
a=sendonly
";

/// RFC 4317 §3.3 hold: offer with sendonly.
pub const RFC4317_HOLD_OFFER: &str = "v=0
o=alice 2890844526 2890844527 IN IP4 192.0.2.101
s=
c=IN IP4 192.0.2.101
t=0 0
m=audio 49170 RTP/AVP 0 97
a=rtpmap:0 PCMU/8000
a=rtpmap:97 iLBC/8000
a=sendonly
";

/// RFC 4317 §3.3 hold: answer with recvonly.
pub const RFC4317_HOLD_ANSWER: &str = "v=0
o=bob 2808844564 2808844565 IN IP4 198.51.100.102
s=
c=IN IP4 198.51.100.102
t=0 0
m=audio 49172 RTP/AVP 0 97
a=rtpmap:0 PCMU/8000
a=rtpmap:97 iLBC/8000
a=recvonly
";

/// RFC 4317 §3.5 audio then T.38 fax: audio rejected, image stream added.
pub const RFC4317_T38_OFFER: &str = "v=0
o=alice 2890844526 2890844527 IN IP4 192.0.2.101
s=
c=IN IP4 192.0.2.101
t=0 0
m=audio 0 RTP/AVP 0
m=image 49172 udptl t38
";

/// RFC 4317 §5-style secure/feedback profiles with session-level direction and media-level c=.
pub const PROFILES: &str = "v=0
o=- 20518 0 IN IP6 2001:db8::1
s=-
c=IN IP6 2001:db8::1
t=0 0
a=recvonly
m=audio 5004 RTP/SAVP 0
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj
m=video 5006 RTP/AVPF 96
c=IN IP4 192.0.2.77
a=rtpmap:96 H264/90000
a=rtcp-fb:96 nack
a=sendrecv
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=rtcp-mux
m=message 2855 TCP/MSRP *
c=IN IP4 192.0.2.78
a=path:msrp://192.0.2.78:2855/kjhd37s2s20w2a;tcp
";

/// RFC 3605 §2.1 examples (a=rtcp with and without address) and RFC 5761 rtcp-mux.
pub const RTCP_ATTRS: &str = "v=0
o=- 1 1 IN IP4 192.0.2.30
s=-
c=IN IP4 192.0.2.30
t=0 0
m=audio 49170 RTP/AVP 0
a=rtcp:53020
m=audio 49180 RTP/AVP 0
a=rtcp:53020 IN IP4 192.0.2.44
m=audio 49190 RTP/AVP 0
a=rtcp:53020 IN IP6 2001:db8::abcd
m=audio 49200 RTP/AVP 96
a=rtcp-mux
m=video 49170/2 RTP/AVP 31
m=audio 65535 RTP/AVP 0
";

/// RFC 4566 §5.7 multicast connection forms.
pub const MULTICAST: &str = "v=0
o=jdoe 2890844526 2890842807 IN IP4 192.0.2.4
s=SDP Seminar
i=A Seminar on the session description protocol
u=http://www.example.com/seminars/sdp.pdf
e=j.doe@example.com (Jane Doe)
c=IN IP4 224.2.17.12/127
t=2873397496 2873404696
a=recvonly
m=audio 49170 RTP/AVP 0
m=video 51372 RTP/AVP 99
c=IN IP4 224.2.1.1/127/3
a=rtpmap:99 h263-1998/90000
m=video 51374 RTP/AVP 99
c=IN IP6 FF15::101/3
";

// ---------------------------------------------------------------- RTSP (RFC 2326 / 7826)

/// RFC 2326 §10.4 SETUP request.
pub const RTSP_SETUP_REQ: &str = "SETUP rtsp://example.com/foo/bar/baz.rm RTSP/1.0
CSeq: 302
Transport: RTP/AVP;unicast;client_port=4588-4589

";

/// RFC 2326 §10.4 SETUP response (Transport folded after ';').
pub const RTSP_SETUP_RESP: &str = "RTSP/1.0 200 OK
CSeq: 302
Date: 23 Jan 1997 15:35:06 GMT
Session: 47112344
Transport: RTP/AVP;unicast;
  client_port=4588-4589;server_port=6256-6257

";

/// RFC 2326 §12.39 Transport example with two alternatives.
pub const RTSP_TRANSPORT_ALTERNATIVES: &str = "SETUP rtsp://example.com/foo/bar/baz.rm RTSP/1.0
CSeq: 3
Transport: RTP/AVP;multicast;ttl=127;mode=\"PLAY\",
    RTP/AVP;unicast;client_port=3456-3457;mode=\"PLAY\"

";

/// RFC 7826 §4.1-style RTSP 2.0 SETUP request with UDP and TCP alternatives.
pub const RTSP2_SETUP_REQ: &str = "SETUP rtsp://example.com/twister/audio RTSP/2.0
CSeq: 1
User-Agent: PhonyClient/1.2
Transport: RTP/AVP/UDP;unicast;dest_addr=\":3056\"/\":3057\",
           RTP/AVP/TCP;unicast;interleaved=0-1
Accept-Ranges: npt, clock

";

/// RFC 7826-style RTSP 2.0 SETUP response choosing UDP.
pub const RTSP2_SETUP_RESP: &str = "RTSP/2.0 200 OK
CSeq: 1
Session: OoOUPyUwt0VeY9fFRHuZ6L;timeout=60
Transport: RTP/AVP/UDP;unicast;dest_addr=\"192.0.2.53:3056\"/\"192.0.2.53:3057\";
           src_addr=\"198.51.100.241:6256\"/\"198.51.100.241:6257\";ssrc=2A3F93ED
Accept-Ranges: npt
Media-Properties: Random-Access=3.2, Time-Progressing, Time-Duration=3600.0

";
