use super::*;

fn parse(body: &[u8]) -> Result<NgRequest, RequestError> {
    parse_request(body, Limits::default())
}

/// A request dictionary from `(key, value)` pairs, encoded.
fn req(entries: &[(&str, Value)]) -> Vec<u8> {
    Value::dict(entries.iter().map(|(k, v)| (*k, v.clone()))).encode()
}

fn s(text: &str) -> Value {
    Value::str(text)
}

#[test]
fn splits_cookie_and_body() {
    let long = vec![b'x'; MAX_COOKIE + 1];
    let max = [vec![b'c'; MAX_COOKIE], b" de".to_vec()].concat();
    type Split<'a> = Result<(&'a [u8], &'a [u8]), FrameError>;
    let cases: Vec<(&[u8], Split)> = vec![
        (
            b"5323_1 d7:command4:pinge",
            Ok((b"5323_1", b"d7:command4:pinge")),
        ),
        (b"c ", Ok((b"c", b""))),
        (b"c  de", Ok((b"c", b" de"))),
        (b"d7:command4:pinge", Err(FrameError::NoCookie)),
        (b" d7:command4:pinge", Err(FrameError::NoCookie)),
        (b"", Err(FrameError::NoCookie)),
        (&long, Err(FrameError::CookieTooLong)),
        (&max, Ok((&max[..MAX_COOKIE], b"de"))),
    ];
    for (dgram, want) in cases {
        assert_eq!(split(dgram), want, "{}", String::from_utf8_lossy(dgram));
    }
    assert_eq!(frame(b"k1", &reply_pong()), b"k1 d6:result4:ponge".to_vec());
}

#[test]
fn decodes_requests() {
    let sdp = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n";
    let cases: Vec<(Vec<u8>, NgRequest)> = vec![
        (b"d7:command4:pinge".to_vec(), NgRequest::Ping),
        (
            req(&[("command", s("statistics"))]),
            NgRequest::Statistics,
        ),
        (
            // Keys in wire order, unsorted, as Kamailio sends them.
            format!(
                "d3:sdp{}:{sdp}7:call-id5:abc@x8:from-tag2:ft7:command5:offer5:flagsl13:trust addressee",
                sdp.len()
            )
            .into_bytes(),
            NgRequest::Offer(OfferAnswer {
                call_id: "abc@x".into(),
                from_tag: "ft".into(),
                to_tag: None,
                sdp: sdp.as_bytes().to_vec(),
                flags: vec!["trust address".into()],
                via_branch: None,
                options: MediaOptions {
                    trust_address: true,
                    ..MediaOptions::default()
                },
            }),
        ),
        (
            req(&[
                ("command", s("answer")),
                ("call-id", s("abc@x")),
                ("from-tag", s("ft")),
                ("to-tag", s("tt")),
                ("via-branch", s("z9hG4bK1")),
                ("sdp", s(sdp)),
            ]),
            NgRequest::Answer(OfferAnswer {
                call_id: "abc@x".into(),
                from_tag: "ft".into(),
                to_tag: Some("tt".into()),
                sdp: sdp.as_bytes().to_vec(),
                flags: vec![],
                via_branch: Some("z9hG4bK1".into()),
                options: MediaOptions::default(),
            }),
        ),
        (
            // An RFC 2543 peer without From-tag.
            req(&[
                ("command", s("offer")),
                ("call-id", s("c")),
                ("from-tag", s("")),
                ("sdp", s("v=0")),
            ]),
            NgRequest::Offer(OfferAnswer {
                call_id: "c".into(),
                sdp: b"v=0".to_vec(),
                ..OfferAnswer::default()
            }),
        ),
        (
            req(&[
                ("command", s("delete")),
                ("call-id", s("c")),
                ("from-tag", s("ft")),
                ("delete delay", Value::Int(0)),
                ("flags", Value::List(vec![s("fatal")])),
            ]),
            NgRequest::Delete(Delete {
                call: CallRef {
                    call_id: "c".into(),
                    from_tag: Some("ft".into()),
                    to_tag: None,
                },
                delete_delay: Some(0),
                fatal: true,
            }),
        ),
        (
            req(&[
                ("command", s("delete")),
                ("call-id", s("c")),
                ("delete_delay", s("30")),
            ]),
            NgRequest::Delete(Delete {
                call: CallRef {
                    call_id: "c".into(),
                    ..CallRef::default()
                },
                delete_delay: Some(30),
                fatal: false,
            }),
        ),
        (
            req(&[
                ("command", s("query")),
                ("call-id", s("c")),
                ("to-tag", s("tt")),
            ]),
            NgRequest::Query(CallRef {
                call_id: "c".into(),
                from_tag: None,
                to_tag: Some("tt".into()),
            }),
        ),
        (
            req(&[("command", s("list"))]),
            NgRequest::List {
                limit: DEFAULT_LIST_LIMIT,
            },
        ),
        (
            req(&[("command", s("list")), ("limit", Value::Int(5))]),
            NgRequest::List { limit: 5 },
        ),
    ];
    for (body, want) in cases {
        assert_eq!(
            parse(&body).as_ref(),
            Ok(&want),
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert!(!want.command().name().is_empty());
    }
}

#[test]
fn rejects_bad_requests() {
    use RequestError::*;
    let offer = |extra: &[(&str, Value)]| {
        let mut e = vec![
            ("command", s("offer")),
            ("call-id", s("c")),
            ("from-tag", s("f")),
            ("sdp", s("v=0")),
        ];
        e.extend(extra.iter().cloned());
        req(&e)
    };
    let str_type = |key| Type {
        key,
        expected: "a UTF-8 string",
    };
    let cases: Vec<(Vec<u8>, RequestError)> = vec![
        (b"".to_vec(), Bencode(BencodeError::Truncated { at: 0 })),
        (
            b"d7:command4:ping".to_vec(),
            Bencode(BencodeError::Truncated { at: 16 }),
        ),
        (b"l7:command4:pinge".to_vec(), NotDictionary),
        (b"i1e".to_vec(), NotDictionary),
        (b"de".to_vec(), Missing("command")),
        (
            req(&[("command", Value::Int(1))]),
            Type {
                key: "command",
                expected: "a string",
            },
        ),
        (
            req(&[("command", s("start recording"))]),
            UnknownCommand("start recording".into()),
        ),
        (
            req(&[("command", s("PING"))]),
            UnknownCommand("PING".into()),
        ),
        (
            req(&[("command", Value::Bytes(b"\xff\x01".to_vec()))]),
            UnknownCommand("\u{fffd}\\u{1}".into()),
        ),
        (
            req(&[
                ("command", s("offer")),
                ("from-tag", s("f")),
                ("sdp", s("v=0")),
            ]),
            Missing("call-id"),
        ),
        (
            req(&[
                ("command", s("offer")),
                ("call-id", s("c")),
                ("sdp", s("v=0")),
            ]),
            Missing("from-tag"),
        ),
        (
            req(&[
                ("command", s("offer")),
                ("call-id", s("c")),
                ("from-tag", s("f")),
            ]),
            Missing("sdp"),
        ),
        (
            offer(&[("call-id", s(""))]),
            Invalid {
                key: "call-id",
                why: "is empty",
            },
        ),
        (offer(&[("call-id", Value::Int(7))]), str_type("call-id")),
        (
            offer(&[("from-tag", Value::Bytes(vec![0xc3, 0x28]))]),
            str_type("from-tag"),
        ),
        (
            offer(&[("to-tag", s("a\r\nb"))]),
            Invalid {
                key: "to-tag",
                why: "contains control characters",
            },
        ),
        (
            offer(&[("call-id", s(&"x".repeat(MAX_ID + 1)))]),
            Invalid {
                key: "call-id",
                why: "longer than 512 bytes",
            },
        ),
        (
            offer(&[("sdp", Value::List(vec![]))]),
            Type {
                key: "sdp",
                expected: "a string",
            },
        ),
        (
            offer(&[("flags", s("fatal"))]),
            Type {
                key: "flags",
                expected: "a list of strings",
            },
        ),
        (
            offer(&[("flags", Value::List(vec![Value::Int(1)]))]),
            Type {
                key: "flags",
                expected: "a list of strings",
            },
        ),
        (
            req(&[
                ("command", s("answer")),
                ("call-id", s("c")),
                ("from-tag", s("f")),
                ("sdp", s("v=0")),
            ]),
            Missing("to-tag"),
        ),
        (
            req(&[("command", s("delete")), ("from-tag", s("f"))]),
            Missing("call-id"),
        ),
        (
            req(&[
                ("command", s("delete")),
                ("call-id", s("c")),
                ("delete-delay", Value::Int(-1)),
            ]),
            Invalid {
                key: "delete-delay",
                why: "must be a non-negative integer",
            },
        ),
        (
            req(&[
                ("command", s("delete")),
                ("call-id", s("c")),
                ("delete-delay", s("-1")),
            ]),
            Type {
                key: "delete-delay",
                expected: "an integer",
            },
        ),
        (
            req(&[
                ("command", s("delete")),
                ("call-id", s("c")),
                ("delete-delay", s("99999999999999999999")),
            ]),
            Type {
                key: "delete-delay",
                expected: "an integer",
            },
        ),
        (
            req(&[("command", s("list")), ("limit", Value::Int(0))]),
            Invalid {
                key: "limit",
                why: "must be at least 1",
            },
        ),
        (req(&[("command", s("query"))]), Missing("call-id")),
    ];
    for (body, want) in cases {
        assert_eq!(
            parse(&body),
            Err(want),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn json_bodies_decode_like_bencode() {
    // (body, expected value or error)
    let cases: Vec<(&str, Result<Value, RequestError>)> = vec![
        (
            r#"{"command":"ping"}"#,
            Ok(Value::dict([("command", s("ping"))])),
        ),
        (
            r#"  {"a":[1,-2,true,false,"x"],"b":{}}"#,
            Ok(Value::dict([
                (
                    "a",
                    Value::List(vec![
                        Value::Int(1),
                        Value::Int(-2),
                        Value::Int(1),
                        Value::Int(0),
                        s("x"),
                    ]),
                ),
                ("b", Value::dict([])),
            ])),
        ),
        (
            r#"{"a":1.5}"#,
            Err(RequestError::Json(
                "number 1.5 is not a 64-bit integer".into(),
            )),
        ),
        (
            r#"{"a":18446744073709551615}"#,
            Err(RequestError::Json(
                "number 18446744073709551615 is not a 64-bit integer".into(),
            )),
        ),
        (
            r#"{"a":null}"#,
            Err(RequestError::Json("null is not a value".into())),
        ),
        (
            "{\"a\":1,}",
            Err(RequestError::Json(
                "trailing comma at line 1 column 8".into(),
            )),
        ),
    ];
    for (body, want) in cases {
        assert_eq!(
            decode_body(body.as_bytes(), Limits::default()),
            want,
            "{body}"
        );
    }
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(40), "]".repeat(40));
    assert_eq!(
        decode_body(deep.as_bytes(), Limits::default()),
        Err(RequestError::Json("nesting deeper than 32 levels".into()))
    );
    let big = format!("{{\"a\":\"{}\"}}", "x".repeat(100));
    let small = Limits {
        max_input: 64,
        max_depth: 32,
    };
    assert!(matches!(
        decode_body(big.as_bytes(), small),
        Err(RequestError::Bencode(BencodeError::TooLarge { .. }))
    ));
    // Same request either way.
    assert_eq!(
        parse(br#"{"command":"query","call-id":"c"}"#),
        parse(b"d7:command5:query7:call-id1:ce")
    );
    assert_eq!(Format::of(b" \n{"), Format::Json);
    assert_eq!(Format::of(b"d"), Format::Bencode);
    assert_eq!(Format::of(b""), Format::Bencode);
    assert_eq!(
        frame_as(b"k", &reply_ok([("n", Value::Int(-1))]), Format::Json),
        br#"k {"n":-1,"result":"ok"}"#.to_vec()
    );
}

#[test]
fn replies_encode_as_rtpengine_documents() {
    assert_eq!(reply_pong().encode(), b"d6:result4:ponge".to_vec());
    assert_eq!(
        reply_error("unknown command `x`").encode(),
        b"d12:error-reason19:unknown command `x`6:result5:errore".to_vec()
    );
    assert_eq!(
        reply_ok([("sdp", s("v=0"))]).encode(),
        b"d6:result2:ok3:sdp3:v=0e".to_vec()
    );
    assert_eq!(
        reply_warning("w").encode(),
        b"d6:result2:ok7:warning1:we".to_vec()
    );
    assert_eq!(
        RequestError::Bencode(BencodeError::Truncated { at: 3 }).to_string(),
        "malformed bencode: input ends inside a value (byte 3)"
    );
}
