//! `ctguard scan`: replay historical logs through the detection engine, in event-time order.
//!
//! The Lambda sees events one at a time; `scan` sees a pile of files in no useful order. The
//! contract is that `scan` raises exactly the alerts the Lambda would have raised had it seen
//! every event in the order the calls happened. Getting there without holding the corpus in
//! memory rests on one property of the engine: its state is partitioned by *scope* (a key, or
//! an instance's rotating keys), and within a scope only the **first use of each
//! (key, network identity) pair** can change anything. A later use of the same pair finds the
//! identity trusted (no change) or the alert already raised (deduplicated, no change).
//!
//! So the work splits in two:
//!
//! 1. **Fold** (parallel, streaming): worker threads decode and parse files independently, run
//!    the engine's pure [`classify_borrowed`] on every record, and keep only the earliest use of
//!    each (scope, key, identity) plus the state-changing signals (credential rotations, instance
//!    moves). Memory grows with the number of distinct pairs, not with the number of events.
//!    Each worker folds into one fold across its files, and a use is copied out of its record
//!    only when it may be the earliest of its pair: most uses repeat one already kept.
//! 2. **Replay** (ordered): the kept items are sorted by event time (ties by file and position)
//!    and fed to a [`Detector`] over a [`MemoryStore`], the same engine the Lambda runs over
//!    DynamoDB.
//!
//! Counters for the folded repeats are kept, so the summary still accounts for every record.

use std::collections::{BTreeMap, HashMap};

use ctguard_detector::engine::{classify_borrowed, Observation, Signal, Skip};
use ctguard_detector::time::{format_rfc3339, Millis};
use ctguard_detector::{
    Alert, CollectingSink, Decision, Detector, MemoryStore, NetworkIdentity, Policy, Record, Stats,
};
use serde::Serialize;

use super::read::{self, FileError, Filter, ReadCounts, ReadOptions, Seq};
use super::sources::{Fetcher, Input, Listing, Source, TimeRange};

/// Options of one scan.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    pub policy: Policy,
    pub range: TimeRange,
    pub threads: usize,
    /// Only records mentioning one of these strings are parsed (used by `trace`).
    pub filter: Filter,
    pub read: ReadOptions,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            policy: Policy::default(),
            range: TimeRange::default(),
            threads: 1,
            filter: Filter::default(),
            read: ReadOptions::default(),
        }
    }
}

/// Where a signal stands in the replay's order: event time, then the record's `eventID`, then
/// its place in the input.
type At = (Millis, String, Seq);

fn at(time: Millis, event_id: Option<&str>, seq: Seq) -> At {
    (time, event_id.unwrap_or_default().to_string(), seq)
}

/// The earliest use of one (scope, key, identity) pair.
#[derive(Clone, Debug)]
struct FirstUse {
    seq: Seq,
    obs: Observation,
}

impl FirstUse {
    /// Which of two uses of one pair is "first". CloudTrail times have one-second precision,
    /// so same-second uses are common and a file position decides nothing (Athena's rows have
    /// none): the tie goes to the smaller `eventID`, then event name, source, region and user
    /// agent, then the caller's ARN, and only then to the place in the input. `sql/scan.sql`
    /// returns every such use (it groups by the caller too) and the replay folds them with this
    /// same order, so a local scan and `scan --athena` keep the same first use of every pair
    /// and report the same events. Borrowed: this runs for every repeated use.
    fn order(&self) -> (Millis, [&str; 6], Seq) {
        let e = &self.obs.event;
        fn f(v: &Option<String>) -> &str {
            v.as_deref().unwrap_or_default()
        }
        let fields =
            [f(&e.event_id), f(&e.event_name), f(&e.event_source), f(&e.region), f(&e.user_agent), f(&e.principal_arn)];
        (e.time_ms, fields, self.seq)
    }
}

/// What the fold keeps of a set of files. Mergeable in any order.
#[derive(Debug, Default)]
pub struct Fold {
    /// Seeded per process (no chosen-key collisions), and much faster than SipHash on the one
    /// lookup every use of a temporary key costs.
    firsts: HashMap<String, FirstUse, foldhash::fast::RandomState>,
    signals: Vec<(At, Signal)>,
    pub read: ReadCounts,
    pub counts: FoldCounts,
    pub errors: Vec<FileError>,
    /// Scratch for the (scope, key, identity) id of the use at hand.
    id: String,
}

/// Counters of the fold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FoldCounts {
    /// Parsed records considered (inside the time range).
    pub events: u64,
    /// Uses of temporary keys (every one, folded or not).
    pub uses: u64,
    /// Uses folded into an earlier use of the same key from the same identity.
    pub repeats: u64,
    /// Records skipped by the engine's rules, by reason.
    pub skipped: BTreeMap<Skip, u64>,
    /// Uses whose source was not an IP address (`035.249.253.232`, `redacted`…): compared verbatim.
    pub opaque_sources: u64,
    /// Records outside `--since`/`--until`.
    pub out_of_range: u64,
    /// Records without a usable time while a time range was asked for (cannot be placed).
    pub untimed_excluded: u64,
    pub signals: u64,
    pub first_event: Option<Millis>,
    pub last_event: Option<Millis>,
}

impl Fold {
    /// Folds one parsed record.
    pub fn add(&mut self, r: &Record, source: Option<&str>, seq: Seq, opts: &ScanOptions) {
        let time = r.time();
        if !opts.range.is_open() {
            match time {
                Some(t) if !opts.range.contains(t) => {
                    self.counts.out_of_range += 1;
                    return;
                }
                None => {
                    self.counts.untimed_excluded += 1;
                    return;
                }
                _ => {}
            }
        }
        self.counts.events += 1;
        if let Some(t) = time {
            self.counts.first_event = Some(self.counts.first_event.map_or(t, |f| f.min(t)));
            self.counts.last_event = Some(self.counts.last_event.map_or(t, |l| l.max(t)));
        }
        let c = classify_borrowed(r, source, &opts.policy);
        if let (Some(sig), Some(t)) = (c.signal, time) {
            self.counts.signals += 1;
            self.signals.push((at(t, r.event_id.get(), seq), sig));
        }
        match c.usage {
            Ok(u) => {
                self.counts.uses += 1;
                if matches!(u.identity(), NetworkIdentity::Opaque(_)) {
                    self.counts.opaque_sources += 1;
                }
                // Most uses repeat an earlier one: nothing is copied out of the record (and
                // nothing allocated) until the use may be the first of its pair. The event time
                // leads [`FirstUse::order`], so only a tie needs the whole observation.
                self.id.clear();
                u.write_id(&mut self.id);
                match self.firsts.get_mut(self.id.as_str()) {
                    Some(f) => {
                        self.counts.repeats += 1;
                        if u.time() <= f.obs.event.time_ms {
                            let new = FirstUse { seq, obs: u.observation(r, &opts.policy) };
                            if new.order() < f.order() {
                                *f = new;
                            }
                        }
                    }
                    None => {
                        let new = FirstUse { seq, obs: u.observation(r, &opts.policy) };
                        self.firsts.insert(self.id.clone(), new);
                    }
                }
            }
            Err(skip) => *self.counts.skipped.entry(skip).or_default() += 1,
        }
    }

    /// Merges another fold into this one (the earliest first use wins).
    pub fn merge(&mut self, mut other: Fold) {
        if self.firsts.is_empty() {
            std::mem::swap(&mut self.firsts, &mut other.firsts);
        }
        for (k, f) in other.firsts {
            match self.firsts.get_mut(&k) {
                Some(mine) => {
                    self.counts.repeats += 1;
                    if f.order() < mine.order() {
                        *mine = f;
                    }
                }
                None => {
                    self.firsts.insert(k, f);
                }
            }
        }
        self.signals.extend(other.signals);
        self.read.merge(other.read);
        self.errors.extend(other.errors);
        let (a, b) = (&mut self.counts, other.counts);
        a.events += b.events;
        a.uses += b.uses;
        a.repeats += b.repeats;
        a.opaque_sources += b.opaque_sources;
        a.out_of_range += b.out_of_range;
        a.untimed_excluded += b.untimed_excluded;
        a.signals += b.signals;
        for (k, v) in b.skipped {
            *a.skipped.entry(k).or_default() += v;
        }
        a.first_event = [a.first_event, b.first_event].into_iter().flatten().min();
        a.last_event = [a.last_event, b.last_event].into_iter().flatten().max();
    }

    /// Distinct (scope, key, identity) pairs kept for replay.
    pub fn distinct_uses(&self) -> usize {
        self.firsts.len()
    }

    /// Records a file that could not be read.
    pub fn failed(&mut self, e: FileError) {
        self.read.files += 1;
        self.read.failed_files += 1;
        self.errors.push(e);
    }
}

/// Folds one file.
pub fn fold_file(index: usize, src: &Source, input: Input<'_>, opts: &ScanOptions) -> Fold {
    let mut fold = Fold::default();
    fold.read = fold_file_into(&mut fold, index, src, input, opts);
    fold
}

/// Folds one file's records into `fold`; returns the file's reading counts.
fn fold_file_into(fold: &mut Fold, index: usize, src: &Source, input: Input<'_>, opts: &ScanOptions) -> ReadCounts {
    let mut counts = ReadCounts::default();
    read::for_each_record(index, &src.name, input, &opts.read, &opts.filter, &mut counts, |r, source, seq| {
        fold.add(r, source, seq, opts)
    });
    counts
}

/// Whether to inflate on a second thread: when there are fewer files than threads, file-level
/// parallelism leaves cores idle (one large file, say).
pub fn pipeline_for(sources: &[Source], threads: usize, read: ReadOptions) -> ReadOptions {
    ReadOptions { pipeline: read.pipeline || threads > sources.len(), ..read }
}

/// First uses a worker's fold holds before it is merged into the scan's (when several workers
/// fold). A first use costs about 1.5 KiB (its observation's texts and the map), so this bounds
/// each worker's fold at about 6 MiB on top of the scan's.
const WORKER_FOLD_BOUND: usize = 1 << 12;

/// Folds every source on `opts.threads` threads; `progress(bytes)` is called per finished file.
pub fn fold_sources(sources: &[Source], fetcher: &Fetcher, opts: &ScanOptions, progress: impl FnMut(u64)) -> Fold {
    let bound = if opts.threads > 1 { WORKER_FOLD_BOUND } else { usize::MAX };
    fold_sources_bounded(sources, fetcher, opts, bound, progress)
}

/// [`fold_sources`], a worker handing its fold over at `hand_over_at` first uses.
fn fold_sources_bounded(
    sources: &[Source],
    fetcher: &Fetcher,
    opts: &ScanOptions,
    hand_over_at: usize,
    mut progress: impl FnMut(u64),
) -> Fold {
    let mut total = Fold::default();
    let opts = &ScanOptions { read: pipeline_for(sources, opts.threads, opts.read), ..opts.clone() };
    // One fold per worker, not per file: a file's pairs are mostly earlier files' again, and a
    // fold per file would copy each of them out of its record and merge it once more. With
    // several workers, each hands its fold over when it grows past a bound, so that the
    // workers' folds do not each grow as large as the whole scan's.
    let workers = read::process_parallel_with(
        sources,
        fetcher,
        opts.threads,
        Fold::default,
        |fold, i, src, input| {
            let counts = fold_file_into(fold, i, src, input, opts);
            (counts, (fold.firsts.len() >= hand_over_at).then(|| std::mem::take(fold)))
        },
        |i, r| {
            progress(sources[i].size);
            match r {
                Ok((counts, full)) => {
                    total.read.merge(counts);
                    if let Some(f) = full {
                        total.merge(f);
                    }
                }
                Err(e) => total.failed(e),
            }
        },
    );
    for w in workers {
        total.merge(w);
    }
    total
}

/// Everything a scan found.
#[derive(Debug)]
pub struct ScanReport {
    pub alerts: Vec<Alert>,
    pub summary: ScanSummary,
}

/// The counters of a scan, for people (stderr) and machines (`--json`).
#[derive(Clone, Debug, Serialize)]
pub struct ScanSummary {
    /// What listing the inputs found (set by the caller, which listed them).
    pub listing: Listing,
    pub read: ReadCounts,
    pub fold: FoldCounts,
    pub distinct_uses: u64,
    pub engine: Stats,
    pub rotations: u64,
    pub moves_armed: u64,
    pub alerts: u64,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    /// Files that could not be opened.
    pub errors: Vec<FileError>,
}

impl ScanSummary {
    /// Whether every input was listed and read whole.
    pub fn complete(&self) -> bool {
        self.read.complete() && self.errors.is_empty() && self.listing.errors.is_empty()
    }
}

/// One item of the ordered replay. At one event time, signals come first (in event-id order),
/// then uses in the order of their identity's text, which is how the engine itself breaks ties
/// between anchors ([`ctguard_detector::Anchor::is_later_than`]): so a same-second use from two
/// identities replays the same way whatever file or row order it was read in.
enum Item {
    Signal(Signal),
    Use(Box<Observation>),
}

/// Why a scan could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The in-memory detector failed (its store and sink are in memory, so this is a bug).
    #[error(transparent)]
    Detector(#[from] ctguard_detector::Error),
    #[error("the reading thread stopped: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

/// Replays a fold in event-time order through a fresh detector with `policy`.
pub async fn replay(fold: Fold, policy: Policy) -> Result<ScanReport, ScanError> {
    let Fold { firsts, signals, read, counts, errors, .. } = fold;
    let distinct = firsts.len() as u64;
    let mut items: Vec<((Millis, u8, String, At), Item)> = Vec::with_capacity(firsts.len() + signals.len());
    items.extend(signals.into_iter().map(|(at, sig)| ((at.0, 0, String::new(), at), Item::Signal(sig))));
    items.extend(firsts.into_values().map(|f| {
        let e = &f.obs.event;
        let at = at(e.time_ms, e.event_id.as_deref(), f.seq);
        ((at.0, 1, f.obs.identity.key(), at), Item::Use(Box::new(f.obs)))
    }));
    items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let det = Detector::new(MemoryStore::new(), CollectingSink::new(), policy, ctguard_detector::VERSION);
    for (_, item) in items {
        match item {
            Item::Signal(sig) => det.apply_signal(&sig).await?,
            Item::Use(obs) => {
                let _: Decision = det.decide(&obs).await?;
            }
        }
    }
    let alerts = det.sink().alerts();
    let engine = det.stats();
    let (rotations, moves) = (engine.rotations, engine.moves_armed);
    let summary = ScanSummary {
        listing: Listing::default(),
        read,
        distinct_uses: distinct,
        engine,
        rotations,
        moves_armed: moves,
        alerts: alerts.len() as u64,
        first_event: counts.first_event.map(format_rfc3339),
        last_event: counts.last_event.map(format_rfc3339),
        fold: counts,
        errors,
    };
    Ok(ScanReport { alerts, summary })
}

/// Folds and replays: the whole scan. Blocking work runs on a blocking thread.
pub async fn scan(
    sources: Vec<Source>,
    fetcher: Fetcher,
    opts: ScanOptions,
    progress: impl FnMut(u64) + Send + 'static,
) -> Result<ScanReport, ScanError> {
    let policy = opts.policy.clone();
    let fold = tokio::task::spawn_blocking(move || fold_sources(&sources, &fetcher, &opts, progress)).await?;
    replay(fold, policy).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::SourceKind;
    use ctguard_detector::engine::classify;
    use serde_json::json;

    const ROLE: &str = "arn:aws:iam::111122223333:role/web";

    fn call(key: &str, ip: &str, time: &str) -> serde_json::Value {
        json!({"eventVersion":"1.08","eventTime":time,"eventType":"AwsApiCall","eventSource":"s3.amazonaws.com",
            "eventName":"ListBuckets","awsRegion":"us-east-1","sourceIPAddress":ip,"recipientAccountId":"111122223333",
            "userIdentity":{"type":"AssumedRole","accessKeyId":key,"arn":"arn:aws:sts::111122223333:assumed-role/web/fn",
              "sessionContext":{"sessionIssuer":{"type":"Role","arn":ROLE}}}})
    }

    fn file(records: &[serde_json::Value]) -> Source {
        let text = json!({ "Records": records }).to_string();
        Source {
            name: "mem".into(),
            kind: SourceKind::Embedded(Box::leak(text.into_bytes().into_boxed_slice())),
            size: 0,
        }
    }

    async fn run(sources: Vec<Source>, threads: usize) -> ScanReport {
        let opts = ScanOptions { threads, ..ScanOptions::default() };
        let fold = fold_sources(&sources, &Fetcher::local(), &opts, |_| {});
        replay(fold, Policy::default()).await.expect("replay")
    }

    const K: &str = "ASIAAAAAAAAAAAAAAAA2";

    #[tokio::test]
    async fn files_out_of_order_still_replay_in_event_order() {
        // The thief's call sits in the *first* file, the legitimate first use in the second:
        // ordered replay must still trust 198.51.100.1 and alert on 203.0.113.9.
        let a =
            file(&[call(K, "203.0.113.9", "2024-05-01T10:05:00Z"), call(K, "198.51.100.1", "2024-05-01T10:06:00Z")]);
        let b =
            file(&[call(K, "198.51.100.1", "2024-05-01T10:00:00Z"), call(K, "198.51.100.1", "2024-05-01T10:01:00Z")]);
        for threads in [1, 3] {
            let rep = run(vec![a.clone(), b.clone()], threads).await;
            assert_eq!(rep.alerts.len(), 1);
            let al = &rep.alerts[0];
            assert_eq!(al.seen_identity, "ip:203.0.113.9");
            assert_eq!(al.offending.event_time, "2024-05-01T10:05:00Z");
            assert!(!al.out_of_order, "replay is ordered, so the engine never sees it late");
            assert_eq!(rep.summary.fold.uses, 4);
            assert_eq!(rep.summary.fold.repeats, 2);
            assert_eq!(rep.summary.distinct_uses, 2);
        }
    }

    #[tokio::test]
    async fn same_second_ties_replay_alike_in_every_file_order() {
        // One second, three identities, two calls each with distinct event ids: which file or
        // position a record sits in must change neither who is alerted on nor which event an
        // alert reports (Athena's rows have no file position; both sort by time, then event id).
        let t = "2024-05-01T10:00:00Z";
        let with_id = |ip: &str, id: &str, name: &str| {
            let mut c = call(K, ip, t);
            c["eventID"] = json!(id);
            c["eventName"] = json!(name);
            c
        };
        let recs = [
            with_id("203.0.113.9", "e-5", "GetObject"),
            with_id("198.51.100.1", "e-3", "ListBuckets"),
            with_id("203.0.113.9", "e-2", "PutObject"),
            with_id("192.0.2.44", "e-4", "GetCallerIdentity"),
            with_id("198.51.100.1", "e-1", "HeadBucket"),
            with_id("192.0.2.44", "e-6", "ListRoles"),
        ];
        let mut seen = None;
        for rotation in 0..recs.len() {
            for split in [1, 3] {
                let mut order: Vec<_> = recs.iter().cycle().skip(rotation).take(recs.len()).cloned().collect();
                if rotation % 2 == 1 {
                    order.reverse();
                }
                let (x, y) = order.split_at(split);
                let rep = run(vec![file(x), file(y)], 1).await;
                let got: Vec<_> = rep
                    .alerts
                    .iter()
                    .map(|a| (a.seen_identity.clone(), a.offending.event_id.clone(), a.out_of_order))
                    .collect();
                assert_eq!(got.len(), 2, "two identities besides the anchor: {got:?}");
                match &seen {
                    None => seen = Some(got),
                    Some(first) => assert_eq!(&got, first, "rotation {rotation}, split {split}"),
                }
            }
        }
        // The anchor is the smallest identity's text (the engine's own tie rule), and each alert
        // names its identity's smallest event id.
        let got = seen.unwrap_or_default();
        assert_eq!(
            got,
            vec![
                ("ip:198.51.100.1".to_string(), Some("e-1".to_string()), false),
                ("ip:203.0.113.9".to_string(), Some("e-2".to_string()), false),
            ]
        );
    }

    #[tokio::test]
    async fn repeats_do_not_change_alerts() {
        let mut recs = vec![call(K, "198.51.100.1", "2024-05-01T10:00:00Z")];
        for m in 1..50 {
            let ip = if m % 2 == 0 { "198.51.100.1" } else { "203.0.113.9" };
            recs.push(call(K, ip, &format!("2024-05-01T10:{m:02}:00Z")));
        }
        let rep = run(vec![file(&recs)], 1).await;
        assert_eq!(rep.alerts.len(), 1, "one alert per key and identity");
        assert_eq!(rep.alerts[0].offending.event_time, "2024-05-01T10:01:00Z");
    }

    #[tokio::test]
    async fn time_range_and_untimed_records() {
        let mut untimed = call(K, "203.0.113.9", "x");
        untimed.as_object_mut().map(|o| o.remove("eventTime"));
        let src = file(&[
            call(K, "198.51.100.1", "2024-05-01T10:00:00Z"),
            call(K, "203.0.113.9", "2024-05-02T10:00:00Z"),
            untimed,
        ]);
        let opts =
            ScanOptions { range: TimeRange { since: None, until: Some(1_714_600_000_000) }, ..ScanOptions::default() };
        let fold = fold_sources(&[src], &Fetcher::local(), &opts, |_| {});
        assert_eq!((fold.counts.events, fold.counts.out_of_range, fold.counts.untimed_excluded), (1, 1, 1));
        let rep = replay(fold, Policy::default()).await.expect("replay");
        assert!(rep.alerts.is_empty());
    }

    #[tokio::test]
    async fn envelopes_from_untrusted_sources_carry_no_signal() {
        // The instance's use, a move, the thief's use 30 s after the move: as EventBridge
        // envelopes in one file. Only an `aws.` source may arm the move window.
        let instance = "i-0123456789abcdef0";
        let use_at = |ip: &str, time: &str| {
            let mut c = call(K, ip, time);
            c["userIdentity"]["arn"] = json!(format!("arn:aws:sts::111122223333:assumed-role/web/{instance}"));
            c
        };
        let env = |source: &str, detail: serde_json::Value| json!({"detail-type": "AWS API Call via CloudTrail", "source": source, "detail": detail});
        let mv = |name: &str, request: serde_json::Value| {
            json!({"eventVersion": "1.08", "eventTime": "2024-05-01T10:09:00Z", "eventType": "AwsApiCall",
                "eventSource": "ec2.amazonaws.com", "eventName": name, "recipientAccountId": "111122223333",
                "sourceIPAddress": "198.51.100.200", "requestParameters": request, "responseElements": {"return": true}})
        };
        let moves = [
            mv("AssociateAddress", json!({"instanceId": instance})),
            mv("AttachNetworkInterface", json!({"instanceId": instance, "networkInterfaceId": "eni-1"})),
            mv("StartInstances", json!({"instancesSet": {"items": [{"instanceId": instance}]}})),
        ];
        for m in moves {
            for (source, alerts) in [("evil.app", 1), ("ctguard.verify", 1), ("aws.ec2", 0)] {
                let text = json!([
                    env("aws.s3", use_at("203.0.113.10", "2024-05-01T10:00:00Z")),
                    env(source, m.clone()),
                    env("aws.s3", use_at("198.51.100.66", "2024-05-01T10:09:30Z")),
                ])
                .to_string();
                let src = Source {
                    name: "envelopes.json".into(),
                    kind: SourceKind::Embedded(Box::leak(text.into_bytes().into_boxed_slice())),
                    size: 0,
                };
                let rep = run(vec![src], 1).await;
                let name = m["eventName"].as_str().unwrap_or("?");
                assert_eq!(rep.alerts.len(), alerts, "{name} from {source}: {:#?}", rep.alerts);
                assert_eq!(rep.summary.fold.signals, u64::from(source == "aws.ec2"), "{name} from {source}");
            }
        }
    }

    #[tokio::test]
    async fn unreadable_files_are_reported() {
        let bad = Source { name: "bad.gz".into(), kind: SourceKind::Embedded(&[0x1f, 0x8b, 8, 0, 0]), size: 5 };
        let missing = Source { name: "gone".into(), kind: SourceKind::File("/nonexistent/ctguard".into()), size: 0 };
        let rep = run(vec![bad, missing, file(&[call(K, "198.51.100.1", "2024-05-01T10:00:00Z")])], 2).await;
        assert_eq!(rep.summary.read.failed_files, 2);
        assert_eq!(rep.summary.read.lost.places[0].source, "bad.gz");
        assert_eq!(rep.summary.errors[0].source, "gone");
        assert_eq!(rep.summary.fold.uses, 1);
        assert!(!rep.summary.complete());
    }
    /// What a fold kept, in a comparable form.
    #[derive(Debug, PartialEq)]
    struct Kept {
        firsts: Vec<(String, Seq, String)>,
        signals: Vec<(At, Signal)>,
        counts: FoldCounts,
        records: u64,
    }

    fn kept(f: &Fold) -> Kept {
        let mut firsts: Vec<_> = f.firsts.iter().map(|(k, v)| (k.clone(), v.seq, format!("{:?}", v.obs))).collect();
        firsts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut signals = f.signals.clone();
        signals.sort_by(|a, b| a.0.cmp(&b.0));
        Kept { firsts, signals, counts: f.counts.clone(), records: f.read.records }
    }

    /// The fold as it was before the fast path: every record classified in full, its use copied
    /// out and keyed on the spelled-out scope, one fold per file merged in reading order.
    fn full_fold(sources: &[Source], opts: &ScanOptions) -> Kept {
        let mut firsts: HashMap<String, FirstUse> = HashMap::new();
        let (mut signals, mut c, mut records) = (Vec::new(), FoldCounts::default(), 0);
        let fetcher = Fetcher::local();
        for (i, src) in sources.iter().enumerate() {
            let Ok(input) = fetcher.open(src) else { panic!("{} opens", src.name) };
            let mut counts = ReadCounts::default();
            read::for_each_record(i, &src.name, input, &opts.read, &opts.filter, &mut counts, |r, source, seq| {
                let time = r.time();
                c.events += 1;
                if let Some(t) = time {
                    c.first_event = Some(c.first_event.map_or(t, |f| f.min(t)));
                    c.last_event = Some(c.last_event.map_or(t, |l| l.max(t)));
                }
                let full = classify(r, source, &opts.policy);
                if let (Some(sig), Some(t)) = (full.signal, time) {
                    c.signals += 1;
                    signals.push((at(t, r.event_id.get(), seq), sig));
                }
                match full.usage {
                    Ok(obs) => {
                        c.uses += 1;
                        c.opaque_sources += u64::from(matches!(obs.identity, NetworkIdentity::Opaque(_)));
                        let k = format!("{}|{}|{}", obs.scope.key(), obs.access_key_id, obs.identity);
                        let new = FirstUse { seq, obs };
                        match firsts.get_mut(&k) {
                            Some(f) => {
                                c.repeats += 1;
                                if new.order() < f.order() {
                                    *f = new;
                                }
                            }
                            None => {
                                firsts.insert(k, new);
                            }
                        }
                    }
                    Err(skip) => *c.skipped.entry(skip).or_default() += 1,
                }
            });
            records += counts.records;
        }
        let mut firsts: Vec<_> = firsts.into_iter().map(|(k, v)| (k, v.seq, format!("{:?}", v.obs))).collect();
        firsts.sort_by(|a, b| a.0.cmp(&b.0));
        signals.sort_by(|a, b| a.0.cmp(&b.0));
        Kept { firsts, signals, counts: c, records }
    }

    /// Every CloudTrail file of the shared data sets.
    fn shared_data() -> Vec<Source> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
        assert!(dir.is_dir(), "{} is missing: the shared data sets are read from there", dir.display());
        let mut listing = Listing::default();
        let found = crate::sources::list_local(
            &dir,
            crate::sources::Kind::Trail,
            &TimeRange::default(),
            &mut listing,
            &mut Default::default(),
        );
        let Ok(sources) = found else { panic!("listing {}", dir.display()) };
        sources
    }

    /// Files of generated records in every shape the fold distinguishes: uses of temporary keys
    /// (instance sessions, plain sessions, synthetic and escaped keys, ActionTrail `STS.` keys),
    /// every skip (long-term keys, console, AWS services, no address, no time, other event
    /// types), rotations and moves, EventBridge envelopes from trusted and untrusted sources,
    /// the same pair again in later files at earlier times, damaged records; as `Records`
    /// documents, JSON lines and gzip.
    fn generated_corpus() -> Vec<Source> {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            rng.wrapping_mul(0x9e37_79b9_7f4a_7c15) % n
        };
        let instance = |k: u64| format!("i-0{:016x}", k % 7);
        let mut files = Vec::new();
        for file in 0..12u64 {
            let mut records = Vec::new();
            for n in 0..150u64 {
                let k = next(40);
                let key = match next(10) {
                    0 => format!("AKIAAAAAAAAAAAAAAA{k:02}"),
                    1 => format!("ASIA0CTGUARDVERIF{k:03}"),
                    2 => format!("STS.tok{k}"),
                    _ => format!("ASIAAAAAAAAAAAAAAA{:02}", k % 32 + 10),
                };
                let ip = match next(12) {
                    0 => "ec2.amazonaws.com".to_string(),
                    1 => "035.249.253.232".to_string(),
                    2 => String::new(),
                    _ => format!("198.51.100.{}", next(4) + 1),
                };
                let minute = (60 * 24 - file * 90 + n) % (60 * 24);
                let time = format!("2024-05-01T{:02}:{:02}:{:02}Z", minute / 60, minute % 60, next(60));
                let session = if next(2) == 0 { instance(k) } else { format!("fn-{k}") };
                let mut r = call(&key, &ip, &time);
                r["userIdentity"]["arn"] = json!(format!("arn:aws:sts::111122223333:assumed-role/web/{session}"));
                r["userIdentity"]["sessionContext"]["attributes"] = json!({"creationDate": "2024-05-01T00:00:00Z"});
                match next(16) {
                    0 => r["userAgent"] = json!("signin.amazonaws.com"),
                    1 => r["eventType"] = json!("AwsServiceEvent"),
                    2 => r["vpcEndpointId"] = json!(format!("vpce-{k:x}")),
                    3 => {
                        r.as_object_mut().map(|o| o.remove("eventTime"));
                    }
                    4 => {
                        r["eventSource"] = json!("sts.amazonaws.com");
                        r["eventName"] = json!("AssumeRole");
                        r["sourceIPAddress"] = json!("ec2.amazonaws.com");
                        r["requestParameters"] = json!({"roleArn": ROLE, "roleSessionName": instance(k)});
                        r["responseElements"] = json!({"credentials": {"accessKeyId": format!("ASIAAAAAAAAAAAAAAA{:02}", k % 32 + 10),
                            "sessionToken": "never-read", "expiration": "May 1, 2024 6:00:00 PM"}});
                    }
                    5 => {
                        r["eventSource"] = json!("ec2.amazonaws.com");
                        r["eventName"] = json!("AssociateAddress");
                        r["requestParameters"] = json!({"instanceId": instance(k)});
                    }
                    6 => r["acsRegion"] = json!("cn-hangzhou"),
                    7 => r["userIdentity"]["sessionContext"] = json!("not an object"),
                    _ => {}
                }
                let mut text = match next(8) {
                    0 => json!({"detail-type": "AWS API Call via CloudTrail", "source": "aws.s3", "detail": r})
                        .to_string(),
                    1 => json!({"detail-type": "AWS API Call via CloudTrail", "source": "evil.app", "detail": r})
                        .to_string(),
                    _ => r.to_string(),
                };
                match next(40) {
                    // The same key, spelled with an escape.
                    0 => text = text.replacen("\"ASIA", "\"\\u0041SIA", 1),
                    1 => text.truncate(text.len() / 2),
                    _ => {}
                }
                records.push(text);
            }
            let body =
                if file % 2 == 0 { format!("{{\"Records\":[{}]}}", records.join(",")) } else { records.join("\n") };
            let bytes = if file % 3 == 0 { crate::decode::tests::gz(body.as_bytes()) } else { body.into_bytes() };
            files.push(Source {
                name: format!("generated-{file}"),
                kind: SourceKind::Embedded(Box::leak(bytes.into_boxed_slice())),
                size: 0,
            });
        }
        files
    }

    /// The fast path (uses left borrowed until they matter, one fold per worker, folds handed
    /// over at a bound) keeps exactly what the full classification of every record keeps, and
    /// the replay raises the same alerts, on the shared data sets and on a generated corpus.
    #[tokio::test]
    async fn the_fast_fold_keeps_what_classifying_every_record_in_full_keeps() {
        for (name, sources) in [("shared data", shared_data()), ("generated", generated_corpus())] {
            let opts = ScanOptions::default();
            let reference = full_fold(&sources, &opts);
            assert!(reference.records > 500 && reference.counts.uses > 100, "{name}: {:?}", reference.counts);
            let mut alerts = None;
            for (threads, bound) in [(1, usize::MAX), (3, WORKER_FOLD_BOUND), (3, 3), (2, 1)] {
                let o = ScanOptions { threads, ..opts.clone() };
                let fast = fold_sources_bounded(&sources, &Fetcher::local(), &o, bound, |_| {});
                assert_eq!(kept(&fast), reference, "{name}: {threads} threads, bound {bound}");
                let rep = replay(fast, Policy::default()).await.expect("replay");
                let got = format!("{:?}", rep.alerts);
                assert_eq!(alerts.get_or_insert_with(|| got.clone()), &got, "{name}: {threads} threads, bound {bound}");
            }
            if name == "generated" {
                assert!(reference.counts.signals > 0 && reference.counts.skipped.len() >= 5, "{:?}", reference.counts);
                assert!(alerts.is_some_and(|a| a.contains("seen_identity")), "the generated corpus raises alerts");
            }
        }
    }
}
