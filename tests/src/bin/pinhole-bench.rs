//! Per-packet cost of the pinhole XDP program, measured with
//! `BPF_PROG_TEST_RUN` against the empty `pinhole_baseline` program from the
//! same object.
//!
//! For every map size (pinholes installed) and family it times, in interleaved
//! rounds: the empty program, a packet that is not subject to filtering (UDP to
//! 5060), a miss (drop) and a hit (pass). The kernel reports the mean time of
//! `repeat` runs of one frame; the table shows the median over rounds, and each
//! ratio divides by the empty program measured in the same rounds, on the same
//! frame. Needs root.
//!
//! One frame replayed keeps its hash bucket in cache, so the pinhole count
//! shows the cost of a larger table, not of cache misses under real traffic.
//! Synthetic pinholes alternate families, so each family's map (capacity:
//! every flow, as the daemon loads it) holds half of them.
//!
//! A second table measures bounded latching (`--latching`) on a program
//! loaded with it on: hit and miss per packet as above (the hit path must
//! not change; a miss pays one latch-map lookup), and the first packet of a
//! NAT'd stream, which claims a half-open entry and installs its pair. A
//! latch happens once per entry, so it cannot be replayed: each sample is
//! one `BPF_PROG_TEST_RUN` of one packet (the kernel's whole-ns time of that
//! run), the entry re-armed and the pair removed in between, interleaved
//! with single-packet hits measured the same way.
//!
//! A third table measures `--forward xdp`: a hit forwarded by the program
//! against the same hit passed to the stack, run from inside a network
//! namespace with routes and neighbours (the FIB lookup reads them).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    process::ExitCode,
    time::Instant,
};

use anyhow::{bail, Context, Result};
use aya::{
    programs::{TestRunOptions, Xdp},
    Ebpf, TestRun,
};
use clap::Parser;
use pinhole::{
    datapath::latch::{take_events, LatchKey, LatchMap},
    datapath::maps::FlowMap,
};
use pinhole_common::{
    FlowKey, FlowStats, FragmentPolicy, LatchValue, BASELINE_PROGRAM_NAME, PROGRAM_NAME,
};
use pinhole_integration::{
    frames::Frame,
    xdp::{self, fib::FibLab, flow_key as key, load_object, XDP_DROP, XDP_PASS, XDP_REDIRECT},
};

/// Target: a hit with 1M pinholes costs at most this many times the empty program.
const HIT_TARGET: f64 = 3.0;
/// Target: a packet not subject to filtering costs at most this many times the empty program.
const NOT_SUBJECT_TARGET: f64 = 1.3;

#[derive(Parser)]
#[command(about = "BPF_PROG_TEST_RUN benchmark of the pinhole XDP program (needs root)")]
struct Args {
    /// Fast smoke run: small repeat count, 3 rounds, 1k pinholes only.
    #[arg(long)]
    quick: bool,
    /// Runs per measurement (the kernel reports their mean).
    #[arg(long)]
    repeat: Option<u32>,
    /// Interleaved rounds; the table shows medians.
    #[arg(long)]
    rounds: Option<usize>,
    /// Pinhole counts to install (each pinhole is two flows, one per direction).
    #[arg(long, value_delimiter = ',')]
    pinholes: Option<Vec<u32>>,
    /// Exit with status 1 when a target is missed.
    #[arg(long)]
    enforce: bool,
    /// Print the program as the verifier left it (`bpftool prog dump
    /// xlated`) after loading it with the first pinhole count, and exit.
    #[arg(long)]
    dump: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Empty,
    NotSubject,
    Miss,
    Hit,
}

impl Case {
    const ALL: [Case; 4] = [Case::Empty, Case::NotSubject, Case::Miss, Case::Hit];

    fn name(self) -> &'static str {
        match self {
            Case::Empty => "empty program",
            Case::NotSubject => "not subject (udp/5060)",
            Case::Miss => "miss (drop)",
            Case::Hit => "hit (pass)",
        }
    }

    fn expected(self) -> u32 {
        match self {
            Case::Miss => XDP_DROP,
            _ => XDP_PASS,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// (open source A, media destination B, stranger C). A->B is open.
    fn endpoints(self) -> (SocketAddr, SocketAddr, SocketAddr) {
        let ip = |s: IpAddr, p| SocketAddr::new(s, p);
        match self {
            Family::V4 => (
                ip(Ipv4Addr::new(192, 0, 2, 1).into(), 12000),
                ip(Ipv4Addr::new(198, 51, 100, 2).into(), 10000),
                ip(Ipv4Addr::new(203, 0, 113, 3).into(), 12000),
            ),
            Family::V6 => (
                ip(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(), 12000),
                ip(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2).into(), 10000),
                ip(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 3).into(), 12000),
            ),
        }
    }

    /// The frame each case runs on: UDP with a 172-byte payload (an RTP
    /// packet with 20 ms of G.711).
    fn frame(self, case: Case) -> Vec<u8> {
        let (a, mut b, c) = self.endpoints();
        let f = match case {
            Case::Empty | Case::Hit => Frame::udp(a, b),
            Case::Miss => Frame::udp(c, b),
            Case::NotSubject => {
                b.set_port(5060);
                Frame::udp(c, b)
            }
        };
        f.payload(172).build().bytes
    }
}

/// The forward key of synthetic pinhole `i`, distinct for every `i` below
/// 250 * 40000 and from the benchmark's own flows. Alternates families.
fn synthetic(i: u32) -> FlowKey {
    let port = 20000 + (i / 250 % 40000) as u16;
    let (src, dst) = if i.is_multiple_of(2) {
        (
            SocketAddr::new(Ipv4Addr::new(192, 0, 2, (i % 250 + 1) as u8).into(), port),
            SocketAddr::new(Ipv4Addr::new(198, 51, 100, 9).into(), 16000),
        )
    } else {
        (
            SocketAddr::new(
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, (i % 250 + 1) as u16).into(),
                port,
            ),
            SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 9).into(), 16000),
        )
    };
    key(src, dst)
}

struct Loaded {
    ebpf: Ebpf,
    /// The filled maps (the loaded program holds them too).
    flows_map: FlowMap,
    fill_secs: f64,
    flows: usize,
}

fn load(pinholes: u32, latching: bool) -> Result<Loaded> {
    let mut cfg = xdp::config(&[(10000, 20000)], FragmentPolicy::Pass);
    cfg.latching = u32::from(latching);
    let capacity = pinholes.checked_mul(2).context("pinhole count too large")?;
    // As the daemon does: each family's map can hold every flow.
    let mut ebpf = load_object(&cfg, capacity, &[PROGRAM_NAME, BASELINE_PROGRAM_NAME])?;

    // Fill: the benchmark's own pinholes (both families) plus synthetic ones,
    // both directions each, as the daemon installs them, through the
    // daemon's own flow map API.
    let mut map = FlowMap::take(&mut ebpf)?;
    let mut keys = Vec::with_capacity(capacity as usize);
    for fam in [Family::V4, Family::V6] {
        let (a, b, _) = fam.endpoints();
        keys.push(key(a, b));
    }
    let synthetic_count = pinholes.saturating_sub(2);
    keys.extend((0..synthetic_count).map(synthetic));
    let pairs: Vec<FlowKey> = keys.iter().flat_map(|k| [*k, k.reversed()]).collect();
    let start = Instant::now();
    for k in &pairs {
        map.insert(k, FlowStats::default())
            .with_context(|| format!("inserting flow {} of {capacity}", pairs.len()))?;
    }
    let fill_secs = start.elapsed().as_secs_f64();
    Ok(Loaded {
        ebpf,
        flows_map: map,
        fill_secs,
        flows: pairs.len(),
    })
}

/// The calling thread's CPU time in ns. BPF_PROG_TEST_RUN runs the program
/// in this thread, so this counts the runs but not the time other tasks hold
/// the CPU, and unlike the kernel's own mean it has sub-ns resolution.
fn thread_cpu_ns() -> Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        bail!(
            "clock_gettime(CLOCK_THREAD_CPUTIME_ID): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// One measurement: thread CPU ns per run, and the kernel's mean (whole ns).
#[derive(Clone, Copy)]
struct Sample {
    cpu_ns: f64,
    kernel_ns: f64,
}

/// Times `repeat` runs of `frame`, after checking the verdict.
fn time(ebpf: &Ebpf, case: Case, frame: &[u8], repeat: u32) -> Result<Sample> {
    let name = if case == Case::Empty {
        BASELINE_PROGRAM_NAME
    } else {
        PROGRAM_NAME
    };
    let prog: &Xdp = ebpf.program(name).context("program")?.try_into()?;
    let start = thread_cpu_ns()?;
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..Default::default()
        })
        .with_context(|| format!("BPF_PROG_TEST_RUN of {name}"))?;
    let cpu = thread_cpu_ns()? - start;
    if r.return_value != case.expected() {
        bail!(
            "{}: program returned {} instead of {}",
            case.name(),
            r.return_value,
            case.expected()
        );
    }
    Ok(Sample {
        cpu_ns: cpu as f64 / f64::from(repeat),
        kernel_ns: r.duration.as_nanos() as f64,
    })
}

fn dump(ebpf: &Ebpf) -> Result<()> {
    let prog: &Xdp = ebpf.program(PROGRAM_NAME).context("program")?.try_into()?;
    let info = prog.info()?;
    println!(
        "{PROGRAM_NAME}: id {}, {} bytes xlated, {} bytes jited",
        info.id(),
        info.size_translated().unwrap_or(0),
        info.size_jitted()
    );
    // Debian's bpftool has no libbfd, so it cannot show the JIT image.
    let status = std::process::Command::new("bpftool")
        .args(["prog", "dump", "xlated", "id", &info.id().to_string()])
        .status()
        .context("running bpftool")?;
    if !status.success() {
        bail!("bpftool prog dump xlated failed: {status}");
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn human(n: u32) -> String {
    match n {
        n if n >= 1_000_000 && n.is_multiple_of(1_000_000) => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n.is_multiple_of(1_000) => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

struct Row {
    case: Case,
    family: Family,
    pinholes: u32,
    /// Median thread CPU ns per run.
    ns: f64,
    /// Median over rounds of this round's ns over the empty program's.
    ratio: f64,
    /// Median of the kernel's reported mean (whole ns).
    kernel_ns: f64,
}

fn run(args: &Args) -> Result<bool> {
    let repeat = args
        .repeat
        .unwrap_or(if args.quick { 100_000 } else { 2_000_000 });
    let rounds = args.rounds.unwrap_or(if args.quick { 3 } else { 7 });
    let sizes = args.pinholes.clone().unwrap_or_else(|| {
        if args.quick {
            vec![1_000]
        } else {
            vec![1_000, 100_000, 1_000_000]
        }
    });
    if repeat == 0 || rounds == 0 || sizes.is_empty() {
        bail!("--repeat, --rounds and --pinholes must be positive");
    }

    println!("# pinhole XDP benchmark (BPF_PROG_TEST_RUN)\n");
    println!(
        "{rounds} interleaved rounds of {repeat} runs per measurement, on a UDP frame with \
         a 172-byte payload. ns/pkt: median over rounds of the thread CPU time of one \
         BPF_PROG_TEST_RUN call divided by its runs (sub-ns resolution; time other tasks \
         hold the CPU is not counted). ratio: median over rounds of ns/pkt divided by the \
         empty program's ns/pkt in the same round, same family and frame size. kernel: the \
         kernel's own mean, which it truncates to whole ns.\n"
    );
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for &pinholes in &sizes {
        let loaded = load(pinholes, false)?;
        if args.dump {
            return dump(&loaded.ebpf).map(|()| true);
        }
        notes.push(format!(
            "- {} pinholes: {} flows installed in {:.2} s ({:.2} M flows/s, one \
             BPF_MAP_UPDATE_ELEM each: aya 0.14 has no batched update)",
            human(pinholes),
            loaded.flows,
            loaded.fill_secs,
            loaded.flows as f64 / loaded.fill_secs / 1e6,
        ));
        let frames: Vec<(Family, Case, Vec<u8>)> = [Family::V4, Family::V6]
            .into_iter()
            .flat_map(|f| Case::ALL.map(|c| (f, c, f.frame(c))))
            .collect();
        let mut samples = vec![Vec::with_capacity(rounds); frames.len()];
        // Warm-up (JIT, caches, CPU frequency), not recorded.
        for (f, c, frame) in &frames {
            time(&loaded.ebpf, *c, frame, repeat / 10 + 1)
                .with_context(|| format!("{} {}", f.name(), c.name()))?;
        }
        for round in 0..rounds {
            // Rotate the order each round so no case always runs first.
            for i in 0..frames.len() {
                let j = (i + round) % frames.len();
                let (_, c, frame) = &frames[j];
                samples[j].push(time(&loaded.ebpf, *c, frame, repeat)?);
            }
        }
        for (j, (f, c, _)) in frames.iter().enumerate() {
            let empty = frames
                .iter()
                .position(|(f2, c2, _)| f2 == f && *c2 == Case::Empty)
                .expect("every family has an empty case");
            let s: &Vec<Sample> = &samples[j];
            rows.push(Row {
                case: *c,
                family: *f,
                pinholes,
                ns: median(s.iter().map(|x| x.cpu_ns).collect()),
                ratio: median(
                    s.iter()
                        .zip(&samples[empty])
                        .map(|(x, e)| x.cpu_ns / e.cpu_ns)
                        .collect(),
                ),
                kernel_ns: median(s.iter().map(|x| x.kernel_ns).collect()),
            });
        }
    }

    println!("| case | family | pinholes | ns/pkt | ratio to empty | kernel ns/pkt |");
    println!("|---|---|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.2}x | {:.0} |",
            r.case.name(),
            r.family.name(),
            human(r.pinholes),
            r.ns,
            r.ratio,
            r.kernel_ns
        );
    }
    println!();
    for n in notes {
        println!("{n}");
    }

    let largest = *sizes.iter().max().expect("sizes is not empty");
    let mut all_met = true;
    println!("\n## Targets\n");
    let mut target = |label: String, limit: f64, pick: &dyn Fn(&Row) -> bool| {
        let worst = rows
            .iter()
            .filter(|r| pick(r))
            .map(|r| format!("{} {:.2}x", r.family.name(), r.ratio))
            .collect::<Vec<_>>()
            .join(", ");
        let met = rows.iter().filter(|r| pick(r)).all(|r| r.ratio <= limit);
        all_met &= met;
        println!(
            "- {label} within {limit:.1}x empty: {worst}: {}",
            if met { "met" } else { "MISSED" }
        );
    };
    let hit_label = if largest == 1_000_000 {
        "hit@1M".to_string()
    } else {
        format!("hit@{} (1M not measured in this run)", human(largest))
    };
    target(hit_label, HIT_TARGET, &|r| {
        r.case == Case::Hit && r.pinholes == largest
    });
    target(
        "not subject, every size".to_string(),
        NOT_SUBJECT_TARGET,
        &|r| r.case == Case::NotSubject,
    );

    let smallest = *sizes.iter().min().expect("sizes is not empty");
    let samples = if args.quick { 300 } else { 3000 };
    latching(&rows, smallest, repeat, rounds, samples)?;
    forwarding(rounds, if args.quick { 20 } else { 200 })?;
    Ok(all_met)
}

/// Runs of one forwarded frame per `BPF_PROG_TEST_RUN`: the frame is not
/// reset between repeats, so each run takes one off its TTL, which starts
/// at 255.
const FORWARD_REPEAT: u32 = 200;

/// Times `FORWARD_REPEAT` runs of `name` on `frame` in the FIB lab, after
/// checking the verdict: the kernel's mean ns per run. (Not thread CPU
/// time: the run happens on a thread that entered the lab's namespace.)
fn time_in_lab(lab: &FibLab, ebpf: &Ebpf, name: &str, frame: &[u8], want: u32) -> Result<f64> {
    let prog: &Xdp = ebpf.program(name).context("program")?.try_into()?;
    let (action, _, kernel_ns) = lab.run(prog, frame, FORWARD_REPEAT)?;
    if action != want {
        bail!("{name}: returned {action} instead of {want}");
    }
    Ok(kernel_ns as f64)
}

/// The third table: a hit with `--forward xdp` (FIB lookup, TTL, MACs,
/// DEVMAP redirect) against the same hit passed to the stack and the empty
/// program, in a namespace with routes and neighbours ([`FibLab`]); 1k
/// pinholes' worth of capacity, the frame's own flow open. `batches` runs
/// of [`FORWARD_REPEAT`] per case and round, interleaved.
fn forwarding(rounds: usize, batches: u32) -> Result<()> {
    let lab = FibLab::new()?;
    let load = |forward: bool| -> Result<Ebpf> {
        let mut cfg = xdp::config(&[(10000, 20000)], FragmentPolicy::Pass);
        cfg.forward = u32::from(forward);
        let mut ebpf = load_object(&cfg, 2_000, &[PROGRAM_NAME, BASELINE_PROGRAM_NAME])?;
        let mut map = FlowMap::take(&mut ebpf)?;
        for fam in [Family::V4, Family::V6] {
            let (a, b, _) = fam.endpoints();
            map.insert(&key(a, b), FlowStats::default())?;
        }
        if forward {
            lab.set_egress(&mut ebpf)?;
        }
        Ok(ebpf)
    };
    let (off, on) = (load(false)?, load(true)?);
    println!("\n## Forwarding (`--forward xdp`)\n");
    println!(
        "A hit forwarded by the program (FIB lookup, TTL, MACs, DEVMAP redirect) against the same \
         hit passed to the stack, in a network namespace with routes and neighbours; \
         {rounds} interleaved rounds of {batches} × {FORWARD_REPEAT} runs; medians of the \
         kernel's mean ns per run (whole ns, of {FORWARD_REPEAT} runs each).\n"
    );
    println!(
        "| family | empty ns | hit, to the stack ns | hit, forwarded ns | forwarding extra ns |"
    );
    println!("|---|---:|---:|---:|---:|");
    for fam in [Family::V4, Family::V6] {
        let mut frame = Frame::udp(fam.endpoints().0, fam.endpoints().1)
            .payload(172)
            .build();
        frame.set_ttl(255);
        let frame = frame.bytes;
        let cases: [(&Ebpf, &str, u32); 3] = [
            (&off, BASELINE_PROGRAM_NAME, XDP_PASS),
            (&off, PROGRAM_NAME, XDP_PASS),
            (&on, PROGRAM_NAME, XDP_REDIRECT),
        ];
        let mut kernel: [Vec<f64>; 3] = Default::default();
        for _ in 0..rounds {
            for _ in 0..batches {
                for (i, (ebpf, name, want)) in cases.iter().enumerate() {
                    kernel[i].push(time_in_lab(&lab, ebpf, name, &frame, *want)?);
                }
            }
        }
        let m: Vec<f64> = kernel.iter().map(|k| median(k.clone())).collect();
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:+.0} |",
            fam.name(),
            m[0],
            m[1],
            m[2],
            m[2] - m[1]
        );
    }
    Ok(())
}

/// One run of `frame` on the filter: (verdict, the kernel's ns for it).
fn once(ebpf: &Ebpf, frame: &[u8]) -> Result<(u32, f64)> {
    let prog: &Xdp = ebpf.program(PROGRAM_NAME).context("program")?.try_into()?;
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat: 1,
            ..Default::default()
        })
        .context("BPF_PROG_TEST_RUN")?;
    Ok((r.return_value, r.duration.as_nanos() as f64))
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v[i]
}

/// The latching table (see the module docs), with `pinholes` installed.
fn latching(
    rows_off: &[Row],
    pinholes: u32,
    repeat: u32,
    rounds: usize,
    samples: usize,
) -> Result<()> {
    let mut loaded = load(pinholes, true)?;
    let mut latches = LatchMap::take(&mut loaded.ebpf)?;
    let mut events = take_events(&mut loaded.ebpf)?;
    println!(
        "\n## Bounded latching (`--latching`), {} pinholes\n",
        human(pinholes)
    );
    println!(
        "Per packet, {rounds} rounds of {repeat} runs as above, on a program loaded with \
         latching on (latching off: the first table). First packet: median (p90) over \
         {samples} single-packet runs of the kernel's whole-ns time; a latch claims a \
         half-open entry, inserts both flows of its pair and reports it through the \
         ring buffer.\n"
    );
    println!("| family | hit, off | hit, on | miss, off | miss, on | first packet: hit | first packet: latch | latch extra |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for fam in [Family::V4, Family::V6] {
        let off = |case| {
            rows_off
                .iter()
                .find(|r| r.family == fam && r.case == case && r.pinholes == pinholes)
                .map_or(f64::NAN, |r| r.ns)
        };
        let (hit_frame, miss_frame) = (fam.frame(Case::Hit), fam.frame(Case::Miss));
        let mut hit = Vec::new();
        let mut miss = Vec::new();
        for _ in 0..rounds {
            hit.push(time(&loaded.ebpf, Case::Hit, &hit_frame, repeat)?.cpu_ns);
            miss.push(time(&loaded.ebpf, Case::Miss, &miss_frame, repeat)?.cpu_ns);
        }
        // The stranger C latches to B: C's address is the remote's.
        let (_, b, c) = fam.endpoints();
        let latch_key = LatchKey {
            from: c.ip(),
            local: b,
        };
        let pair = [key(c, b), key(b, c)];
        let mut single_hit = Vec::with_capacity(samples);
        let mut single_latch = Vec::with_capacity(samples);
        for i in 0..samples {
            let deadline_ns = pinhole::clock::monotonic_ns() + 60_000_000_000;
            latches.arm(
                &latch_key,
                LatchValue {
                    deadline_ns,
                    cookie: i as u64,
                },
            )?;
            let (verdict, ns) = once(&loaded.ebpf, &miss_frame)?;
            if verdict != XDP_PASS {
                bail!("{}: the latching packet was not passed", fam.name());
            }
            single_latch.push(ns);
            let mut reported = 0;
            while events.next().is_some() {
                reported += 1;
            }
            if reported != 1 {
                bail!("{}: {reported} latch reports for one latch", fam.name());
            }
            for k in &pair {
                if !loaded.flows_map.remove(k)? {
                    bail!("{}: the latch did not install its pair", fam.name());
                }
            }
            let (verdict, ns) = once(&loaded.ebpf, &hit_frame)?;
            if verdict != XDP_PASS {
                bail!("{}: a hit was not passed", fam.name());
            }
            single_hit.push(ns);
        }
        let (h50, l50) = (median(single_hit.clone()), median(single_latch.clone()));
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.0} ns |",
            fam.name(),
            off(Case::Hit),
            median(hit),
            off(Case::Miss),
            median(miss),
            h50,
            percentile(single_hit, 0.9),
            l50,
            percentile(single_latch, 0.9),
            l50 - h50,
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) if args.enforce => ExitCode::FAILURE,
        Ok(false) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
