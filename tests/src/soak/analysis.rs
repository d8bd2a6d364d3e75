//! Loss accounting from the two hosts' taps.
//!
//! Every received run is paired with the sent run of the same tuple that
//! started last, at most [`Setup::slack`] after it (the two taps are read
//! by different threads, so their clocks agree only to within a batch).
//! A sequence number the sender's tap saw and the receiver's did not is a
//! lost packet: *at call start* when it is one of the stream's first
//! [`Setup::start_packets`], *mid-call* otherwise. The two directions of a
//! call (reversed tuples, starting within [`Setup::pair_window`] of each
//! other) make a call.

use std::{collections::HashMap, net::Ipv4Addr, time::Duration};

use serde::Serialize;

use super::capture::{SeqSet, Streams, Tuple};

#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// RTP packets per stream.
    pub packets: u32,
    /// Packets of a stream's start (sequence numbers below this).
    pub start_packets: u32,
    pub slack: Duration,
    pub pair_window: Duration,
    /// The caller's address (source of the caller → callee direction).
    pub caller: Ipv4Addr,
    /// Where the soak's clock started relative to the first call, to put
    /// streams on the run's timeline (nanoseconds subtracted).
    pub calls_began_ns: u64,
}

/// One direction's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Direction {
    pub streams: u64,
    /// Streams whose sender's tap saw fewer than all their packets (sipp
    /// stopped playing early).
    pub streams_short: u64,
    pub sent: u64,
    pub received: u64,
    pub lost_start: u64,
    pub lost_mid: u64,
    pub streams_lost_start: u64,
    pub streams_lost_mid: u64,
    /// Streams of which nothing arrived.
    pub streams_lost_all: u64,
    /// Received packets the sender's tap never saw leave (a capture gap).
    pub received_unseen: u64,
    /// The largest loss of one stream.
    pub worst_stream_loss: u64,
}

/// Losses of the streams that started in one minute of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MinuteLoss {
    pub minute: u64,
    pub streams: u64,
    pub lost_start: u64,
    pub lost_mid: u64,
}

/// A stream that lost something, for the diagnosis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LossyStream {
    pub src: String,
    pub dst: String,
    /// Seconds after the first call was placed.
    pub start_secs: f64,
    pub sent: u64,
    pub received: u64,
    pub lost_start: u64,
    pub lost_mid: u64,
    /// The lost sequence numbers, as ranges (`0-3, 57`).
    pub missing: String,
}

/// How many lossy streams the report lists.
const LOSSY_LISTED: usize = 50;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Accounting {
    pub caller_to_callee: Direction,
    pub callee_to_caller: Direction,
    /// Streams paired into calls (one each way).
    pub calls: u64,
    pub calls_lost_start: u64,
    pub calls_lost_mid: u64,
    /// Streams with no partner the other way.
    pub unpaired_streams: u64,
    /// Received packets of runs no sent run matches.
    pub unmatched_received: u64,
    pub loss_by_minute: Vec<MinuteLoss>,
    /// The first lossy streams by start time (at most 50).
    pub lossy_streams: Vec<LossyStream>,
}

/// One sent stream's outcome.
struct Outcome {
    tuple: Tuple,
    start_ns: u64,
    lost_start: u64,
    lost_mid: u64,
}

/// `0-3, 57, 60-61`.
pub fn ranges(seqs: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seqs.len() {
        let mut j = i;
        while j + 1 < seqs.len() && seqs[j + 1] == seqs[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            seqs[i].to_string()
        } else {
            format!("{}-{}", seqs[i], seqs[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

pub fn account(sent: &Streams, received: &Streams, s: &Setup) -> Accounting {
    let mut acc = Accounting::default();
    let slack = s.slack.as_nanos() as u64;
    // What arrived of each sent run.
    let mut got: HashMap<Tuple, Vec<SeqSet>> = sent
        .runs
        .iter()
        .map(|(t, runs)| (*t, runs.iter().map(|_| SeqSet::new(s.packets)).collect()))
        .collect();
    for (t, runs) in &received.runs {
        for r in runs {
            let slot = sent.runs.get(t).and_then(|sruns| {
                sruns
                    .iter()
                    .rposition(|x| x.first_ns <= r.first_ns + slack)
                    .map(|i| (t, i))
            });
            match slot {
                Some((t, i)) => got.get_mut(t).expect("same keys")[i].union_with(&r.seqs),
                None => acc.unmatched_received += r.packets,
            }
        }
    }

    let mut tuples: Vec<&Tuple> = sent.runs.keys().collect();
    tuples.sort();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut minutes: HashMap<u64, MinuteLoss> = HashMap::new();
    let mut lossy: Vec<LossyStream> = Vec::new();
    for t in tuples {
        let dir = if *t.src.ip() == s.caller {
            &mut acc.caller_to_callee
        } else {
            &mut acc.callee_to_caller
        };
        for (run, arrived) in sent.runs[t].iter().zip(&got[t]) {
            let (mut lost_start, mut lost_mid, mut received, mut unseen) = (0, 0, 0, 0);
            let mut missing = Vec::new();
            for seq in 0..s.packets {
                match (run.seqs.contains(seq), arrived.contains(seq)) {
                    (true, true) => received += 1,
                    (true, false) => {
                        missing.push(seq);
                        if seq < s.start_packets {
                            lost_start += 1;
                        } else {
                            lost_mid += 1;
                        }
                    }
                    (false, true) => unseen += 1,
                    (false, false) => {}
                }
            }
            let sent_n = run.seqs.count();
            dir.streams += 1;
            dir.streams_short += u64::from(sent_n < u64::from(s.packets));
            dir.sent += sent_n;
            dir.received += received;
            dir.received_unseen += unseen;
            dir.lost_start += lost_start;
            dir.lost_mid += lost_mid;
            dir.streams_lost_start += u64::from(lost_start > 0);
            dir.streams_lost_mid += u64::from(lost_mid > 0);
            dir.streams_lost_all += u64::from(received == 0 && sent_n > 0);
            dir.worst_stream_loss = dir.worst_stream_loss.max(lost_start + lost_mid);
            let start_ns = run.first_ns.saturating_sub(s.calls_began_ns);
            let minute = start_ns / 60_000_000_000;
            let m = minutes.entry(minute).or_insert_with(|| MinuteLoss {
                minute,
                ..MinuteLoss::default()
            });
            m.streams += 1;
            m.lost_start += lost_start;
            m.lost_mid += lost_mid;
            if !missing.is_empty() {
                lossy.push(LossyStream {
                    src: t.src.to_string(),
                    dst: t.dst.to_string(),
                    start_secs: start_ns as f64 / 1e9,
                    sent: sent_n,
                    received,
                    lost_start,
                    lost_mid,
                    missing: ranges(&missing),
                });
            }
            outcomes.push(Outcome {
                tuple: *t,
                start_ns: run.first_ns,
                lost_start,
                lost_mid,
            });
        }
    }

    // Calls: each caller → callee stream with the reverse stream that
    // started nearest to it, within the window.
    let window = s.pair_window.as_nanos() as u64;
    let mut by_tuple: HashMap<Tuple, Vec<usize>> = HashMap::new();
    for (i, o) in outcomes.iter().enumerate() {
        by_tuple.entry(o.tuple).or_default().push(i);
    }
    let mut paired = vec![false; outcomes.len()];
    for (i, o) in outcomes.iter().enumerate() {
        if *o.tuple.src.ip() != s.caller {
            continue;
        }
        let partner = by_tuple
            .get(&o.tuple.reversed())
            .into_iter()
            .flatten()
            .copied()
            .filter(|&j| !paired[j] && outcomes[j].start_ns.abs_diff(o.start_ns) <= window)
            .min_by_key(|&j| outcomes[j].start_ns.abs_diff(o.start_ns));
        if let Some(j) = partner {
            paired[i] = true;
            paired[j] = true;
            acc.calls += 1;
            let other = &outcomes[j];
            acc.calls_lost_start += u64::from(o.lost_start + other.lost_start > 0);
            acc.calls_lost_mid += u64::from(o.lost_mid + other.lost_mid > 0);
        }
    }
    acc.unpaired_streams = paired.iter().filter(|p| !**p).count() as u64;

    let mut minutes: Vec<MinuteLoss> = minutes.into_values().collect();
    minutes.sort_by_key(|m| m.minute);
    acc.loss_by_minute = minutes;
    lossy.sort_by(|a, b| a.start_secs.total_cmp(&b.start_secs));
    lossy.truncate(LOSSY_LISTED);
    acc.lossy_streams = lossy;
    acc
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV4;

    use super::*;
    use crate::soak::capture::Params;

    const SEC: u64 = 1_000_000_000;

    fn tuple(a: &str, b: &str) -> Tuple {
        Tuple {
            src: a.parse::<SocketAddrV4>().unwrap(),
            dst: b.parse::<SocketAddrV4>().unwrap(),
        }
    }

    fn params() -> Params {
        Params {
            packets: 20,
            gap: Duration::from_secs(3),
            media_ports: (10_000, 20_000),
        }
    }

    fn setup() -> Setup {
        Setup {
            packets: 20,
            start_packets: 5,
            slack: Duration::from_secs(1),
            pair_window: Duration::from_secs(3),
            caller: "192.0.2.2".parse().unwrap(),
            calls_began_ns: 0,
        }
    }

    /// Records `seqs` of a stream starting at `at` (20 ms apart).
    fn play(s: &mut Streams, t: Tuple, at: u64, seqs: impl IntoIterator<Item = u16>) {
        for seq in seqs {
            s.record(t, seq, at + u64::from(seq) * 20_000_000, &params());
        }
    }

    #[test]
    fn ranges_of_sequence_numbers() {
        for (seqs, want) in [
            (&[][..], ""),
            (&[4][..], "4"),
            (&[0, 1, 2, 3, 57, 60, 61][..], "0-3, 57, 60-61"),
            (&[1, 3, 5][..], "1, 3, 5"),
        ] {
            assert_eq!(ranges(seqs), want, "{seqs:?}");
        }
    }

    #[test]
    fn losses_split_into_start_and_mid_call() {
        let out = tuple("192.0.2.2:10000", "198.51.100.2:10000");
        let back = out.reversed();
        let (mut sent, mut received) = (Streams::default(), Streams::default());
        // Call 1 at t=0: clean both ways.
        play(&mut sent, out, 0, 0..20);
        play(&mut received, out, 1_000_000, 0..20);
        play(&mut sent, back, 30_000_000, 0..20);
        play(&mut received, back, 31_000_000, 0..20);
        // Call 2 on the same ports 30 s later: the first 3 packets of the
        // callee's stream lost, and packet 12 of the caller's.
        play(&mut sent, out, 30 * SEC, 0..20);
        play(&mut received, out, 30 * SEC, (0..20).filter(|&s| s != 12));
        play(&mut sent, back, 30 * SEC + 5_000_000, 0..20);
        play(&mut received, back, 30 * SEC + 70_000_000, 3..20);
        // Call 3 at 60 s: the callee's stream never arrives; the caller's
        // arrives but its sender's tap missed packet 0.
        play(&mut sent, out, 60 * SEC, 1..20);
        play(&mut received, out, 60 * SEC, 0..20);
        play(&mut sent, back, 60 * SEC, 0..20);

        let acc = account(&sent, &received, &setup());
        let c = &acc.caller_to_callee;
        let b = &acc.callee_to_caller;
        assert_eq!((c.streams, c.sent, c.received), (3, 59, 58));
        assert_eq!((c.lost_start, c.lost_mid, c.received_unseen), (0, 1, 1));
        assert_eq!((c.streams_short, c.streams_lost_mid), (1, 1));
        assert_eq!((b.streams, b.sent, b.received), (3, 60, 37));
        assert_eq!((b.lost_start, b.lost_mid), (3 + 5, 15));
        assert_eq!((b.streams_lost_start, b.streams_lost_all), (2, 1));
        assert_eq!(b.worst_stream_loss, 20);
        assert_eq!((acc.calls, acc.unpaired_streams), (3, 0));
        assert_eq!((acc.calls_lost_start, acc.calls_lost_mid), (2, 2));
        assert_eq!(acc.unmatched_received, 0);
        assert_eq!(acc.lossy_streams.len(), 3);
        assert_eq!(acc.lossy_streams[0].missing, "12");
        assert_eq!(acc.lossy_streams[1].missing, "0-2");
        assert_eq!(
            acc.loss_by_minute,
            vec![
                MinuteLoss {
                    minute: 0,
                    streams: 4,
                    lost_start: 3,
                    lost_mid: 1
                },
                MinuteLoss {
                    minute: 1,
                    streams: 2,
                    lost_start: 5,
                    lost_mid: 15
                }
            ]
        );
    }

    #[test]
    fn received_without_a_sender_is_unmatched() {
        let t = tuple("198.51.100.2:10000", "192.0.2.2:10000");
        let (mut sent, mut received) = (Streams::default(), Streams::default());
        // Received 10 s before anything was sent on the tuple, and on a
        // tuple nobody sent on.
        play(&mut sent, t, 20 * SEC, 0..20);
        play(&mut received, t, 10 * SEC, 0..4);
        play(
            &mut received,
            tuple("198.51.100.2:10004", "192.0.2.2:10004"),
            0,
            0..2,
        );
        let again = received.runs[&t][0].clone();
        received.runs.get_mut(&t).unwrap().push(again);
        let acc = account(&sent, &received, &setup());
        assert_eq!(acc.unmatched_received, 4 + 4 + 2);
        assert_eq!(acc.callee_to_caller.streams_lost_all, 1);
        assert_eq!((acc.calls, acc.unpaired_streams), (0, 1));
    }
}
