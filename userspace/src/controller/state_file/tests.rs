use super::*;

fn dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "pinhole-state-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&d);
    d
}

fn sample() -> State {
    let ep = |s: &str| s.parse::<Endpoint>().unwrap();
    State::new(
        9,
        vec![SavedPinhole {
            id: 4,
            a: ep("192.0.2.1:4000"),
            b: ep("[2001:db8::2]:10000"),
            created_ns: 1,
            active_ns: 2,
            claims: vec![
                SavedClaim {
                    owner: None,
                    idle_timeout_secs: 30,
                    rtcp: false,
                },
                SavedClaim {
                    owner: Some("sip:c;from-tag=t".into()),
                    idle_timeout_secs: 0,
                    rtcp: true,
                },
            ],
        }],
        CallsSnapshot::default(),
    )
}

#[test]
fn round_trip_through_an_atomic_write() {
    let d = dir();
    let path = d.join("sub").join("state.json");
    assert!(load(&path).unwrap().is_none(), "no file: no state");
    let state = sample();
    write_atomic(&path, &state.to_bytes()).unwrap();
    let back = load(&path).unwrap().unwrap();
    assert_eq!(back.pinholes, state.pinholes);
    assert_eq!((back.next_id, back.version), (9, VERSION));
    assert_eq!(back.pinholes[0].claims().len(), 2);
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Overwriting leaves no temporary file behind.
    write_atomic(&path, &state.to_bytes()).unwrap();
    let names: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["state.json"]);
    assert!(remove(&path).unwrap());
    assert!(!remove(&path).unwrap());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn foreign_or_mismatched_files_are_refused() {
    let p = Path::new("/run/pinhole/state.json");
    let boot = "b00t";
    let mut state = sample();
    state.boot_id = boot.into();
    let here = String::from_utf8(state.to_bytes()).unwrap();
    assert!(State::parse(p, here.as_bytes(), boot).is_ok());
    let cases: &[(&str, &str)] = &[
        ("", "not a JSON object"),
        ("[1,2]", "not a JSON object"),
        ("{\"version\":1}", "no `format`"),
        ("{\"format\":\"other\",\"version\":1}", "format `other`"),
        ("{\"format\":\"pinhole-state\"}", "no numeric `version`"),
        (
            "{\"format\":\"pinhole-state\",\"version\":\"1\"}",
            "no numeric `version`",
        ),
        (
            "{\"format\":\"pinhole-state\",\"version\":2,\"boot_id\":\"b00t\"}",
            "has format version 2, this pinhole reads version 1 only",
        ),
        (
            "{\"format\":\"pinhole-state\",\"version\":1,\"boot_id\":\"old\"}",
            "written in another boot (boot id old, now b00t)",
        ),
        (
            "{\"format\":\"pinhole-state\",\"version\":1,\"boot_id\":\"b00t\"}",
            "is corrupt",
        ),
    ];
    for (text, want) in cases {
        let err = State::parse(p, text.as_bytes(), boot).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(want), "{text:?}: {msg}");
        assert!(msg.contains("/run/pinhole/state.json"), "{msg}");
    }
    // Truncated mid-way (a torn write would look like this).
    let torn = &here.as_bytes()[..here.len() / 2];
    assert!(State::parse(p, torn, boot).is_err());
}

#[test]
fn the_writer_keeps_the_newest_and_reports_failures() {
    let d = dir();
    let path = d.join("state.json");
    let w = StateWriter::start(&path).unwrap();
    let mut last = 0;
    for i in 0..50u32 {
        last = w.submit(format!("{i}\n").into_bytes());
    }
    w.wait(last, Duration::from_secs(10)).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "49\n");
    // Built on the writer thread, in order.
    let writer_thread = std::thread::current().id();
    let seqs: Vec<u64> = (0..3u32)
        .map(|i| {
            w.submit_with(move || {
                assert_ne!(std::thread::current().id(), writer_thread);
                format!("built {i}\n").into_bytes()
            })
        })
        .collect();
    w.wait(seqs[2], Duration::from_secs(10)).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "built 2\n");
    assert!(seqs.windows(2).all(|s| s[0] < s[1]));
    drop(w);
    // A path whose directory is a file cannot be written.
    let bad = path.join("x.json");
    let w = StateWriter::start(&bad).unwrap();
    let seq = w.submit(b"{}".to_vec());
    let err = w.wait(seq, Duration::from_secs(10)).unwrap_err();
    assert!(matches!(err, StateError::Write { .. }), "{err}");
    drop(w);
    fs::remove_dir_all(&d).unwrap();
}
