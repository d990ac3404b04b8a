//! Replays the real CloudTrail logs in ../shared/data through the engine (offline).
//!
//! - flaws2: exactly the alert its README states (one key, the attacker's address, first
//!   offending call ListObjects at 23:04:54Z), and nothing else.
//! - every dataset parses without a panic; every skip is counted with its reason.

use std::path::{Path, PathBuf};

use ctguard_detector::reader::{for_each_record, to_text};
use ctguard_detector::{CollectingSink, Detector, MemoryStore, Policy, Record, Stats};

fn data() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    assert!(p.is_dir(), "{} is missing: the shared data sets are read from there", p.display());
    p
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("readable dir").flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|e| e == "json" || e == "gz" || e == "jsonl") {
            out.push(p);
        }
    }
}

/// Reads every record under `dir`, sorts by event time, replays through a fresh detector.
async fn replay(dir: &Path) -> (Detector<MemoryStore, CollectingSink>, usize, usize) {
    let mut paths = Vec::new();
    files(dir, &mut paths);
    assert!(!paths.is_empty(), "no log files under {}", dir.display());
    let mut texts = Vec::new();
    for p in &paths {
        let raw = std::fs::read(p).expect("readable file");
        texts.push(to_text(raw).unwrap_or_else(|e| panic!("{}: {e}", p.display())));
    }
    let mut records: Vec<(i64, String, Option<String>)> = Vec::new();
    let mut unreadable = 0;
    for t in &texts {
        let (_, sum) = for_each_record(t, |r| {
            let time = Record::parse(&r.json).ok().and_then(|rec| rec.time()).unwrap_or(i64::MAX);
            records.push((time, r.json.into_owned(), r.source));
        });
        unreadable += sum.unreadable.len();
    }
    records.sort_by_key(|r| r.0);
    let d = Detector::new(MemoryStore::new(), CollectingSink::new(), Policy::default(), "replay");
    for (_, json, source) in &records {
        d.process_json(json, source.as_deref()).await.expect("memory store never fails");
    }
    (d, records.len(), unreadable)
}

fn accounted(s: &Stats) -> u64 {
    s.first_uses
        + s.trusted_cached
        + s.trusted_stored
        + s.allowlisted
        + s.accepted_moves
        + s.accepted_own_vpce
        + (s.alerts - s.out_of_order_alerts)
        + s.displacements
        + s.duplicate_alerts
        + s.skipped_total()
}

#[tokio::test]
async fn flaws2_yields_exactly_the_documented_alert() {
    let (d, n, unreadable) = replay(&data().join("flaws2-cloudtrail")).await;
    assert_eq!((n, unreadable), (37, 0));
    let alerts = d.sink().alerts();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a.access_key_id, "ASIAZQNB3KHGIGYQXVVG");
    assert_eq!(a.seen_identity, "ip:104.102.221.250");
    assert_eq!(a.expected.len(), 1);
    assert_eq!(a.expected[0].identity, "ip:34.234.236.212");
    assert_eq!(a.expected[0].first_seen.event_time, "2018-11-28T23:03:12Z");
    assert_eq!(a.offending.event_name.as_deref(), Some("ListObjects"));
    assert_eq!(a.offending.event_time, "2018-11-28T23:04:54Z");
    assert_eq!(a.account.as_deref(), Some("653711331788"));
    assert!(!a.synthetic);
    let s = d.stats();
    assert_eq!(s.events, 37);
    // The other three calls of the attacker with that key are deduplicated, not re-alerted.
    assert_eq!(s.duplicate_alerts, 3);
    // ASIAZQNB3KHGNXWXBSJS is only ever seen from the attacker: TOFU trusts it (the documented
    // blind spot), so it is one of the two first uses.
    assert_eq!(s.first_uses, 2);
    assert_eq!(accounted(&s), s.events, "every event is accounted for: {s:?}");
}

#[tokio::test]
async fn every_dataset_parses_and_every_skip_is_explained() {
    for set in [
        "flaws2-cloudtrail",
        "stratus-red-team-detonation-logs",
        "otrf-aws-cloud-breach-s3",
        "panther-cloudtrail-rule-tests",
    ] {
        let (d, n, unreadable) = replay(&data().join(set)).await;
        let s = d.stats();
        println!("{set}: {n} records, {unreadable} unreadable, stats {s:?}");
        assert!(n > 0, "{set}: no records read");
        assert_eq!(s.events as usize, n, "{set}: every record reaches the engine");
        assert_eq!(accounted(&s), s.events, "{set}: every event has an outcome: {s:?}");
    }
}

#[tokio::test]
async fn otrf_without_event_time_uses_at_timestamp() {
    let (d, n, _) = replay(&data().join("otrf-aws-cloud-breach-s3")).await;
    assert_eq!(n, 103);
    let s = d.stats();
    assert_eq!(s.skipped.get(&ctguard_detector::Skip::NoTime), None, "@timestamp must be used: {s:?}");
    // The stolen key is only ever seen from one (anonymised) address: no alert.
    assert!(d.sink().alerts().is_empty());
    assert!(s.first_uses >= 1);
}

#[tokio::test]
async fn stratus_pseudonymised_addresses_are_opaque_identities() {
    let (d, _, _) = replay(&data().join("stratus-red-team-detonation-logs")).await;
    // No key is seen from more than one address in these detonations (README): no alert.
    assert!(d.sink().alerts().is_empty(), "{:#?}", d.sink().alerts());
    assert!(d.stats().first_uses >= 1);
}
