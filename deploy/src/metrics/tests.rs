//! The metrics' reading, judgement and price arithmetic against a fake CloudWatch that records
//! what it was asked.

use std::sync::Mutex;

use super::*;

/// One GetMetricData as the fake saw it: (query ids, start, end, period).
type Asked = (Vec<&'static str>, i64, i64, i32);

/// CloudWatch in memory: data points per query id, alarm states, or a refusal of either call.
#[derive(Default)]
struct FakeCloudWatch {
    points: BTreeMap<&'static str, Vec<f64>>,
    alarms: BTreeMap<&'static str, &'static str>,
    deny_metrics: bool,
    deny_alarms: bool,
    asked: Mutex<Vec<Asked>>,
}

impl MetricsApi for FakeCloudWatch {
    async fn metric_data(
        &self,
        queries: &[MetricQuery],
        start: i64,
        end: i64,
        period: i32,
    ) -> Result<BTreeMap<String, Vec<f64>>, ApiError> {
        if let Ok(mut a) = self.asked.lock() {
            a.push((queries.iter().map(|q| q.id).collect(), start, end, period));
        }
        if self.deny_metrics {
            return Err(ApiError::new(
                "GetMetricData: AccessDenied: not authorized to perform cloudwatch:GetMetricData",
            ));
        }
        Ok(queries.iter().filter_map(|q| self.points.get(q.id).map(|v| (q.id.to_string(), v.clone()))).collect())
    }

    async fn alarm_states(&self, names: &[&str]) -> Result<BTreeMap<String, String>, ApiError> {
        if self.deny_alarms {
            return Err(ApiError::new("DescribeAlarms: AccessDenied"));
        }
        Ok(self.alarms.iter().filter(|(n, _)| names.contains(n)).map(|(n, s)| (n.to_string(), s.to_string())).collect())
    }
}

fn alarms_in(dlq: &'static str, errors: &'static str) -> BTreeMap<&'static str, &'static str> {
    [(DLQ_ALARM, dlq), (ERRORS_ALARM, errors), (SIDE_EFFECTS_ALARM, "OK")].into_iter().collect()
}

/// 2026-12-01T10:00:30Z.
const NOW: i64 = 1_796_119_230;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

#[test]
fn statistics_combine_over_the_window() {
    assert_eq!(Stat::Sum.combine(&[1.0, 2.5, 3.0]), Some(6.5));
    assert_eq!(Stat::Maximum.combine(&[1.0, 7.0, 3.0]), Some(7.0));
    assert_eq!(Stat::Sum.combine(&[]), None, "no data point is not a zero");
    assert_eq!(Stat::Maximum.combine(&[]), None);
    assert_eq!(Stat::Sum.combine(&[f64::NAN, 2.0]), Some(2.0), "a value that is not a number is skipped");
    assert_eq!(count(Some(2.6)), Some(3));
    assert_eq!(count(Some(-1.0)), Some(0));
    assert_eq!(count(None), None);
}

#[test]
fn windows_end_at_the_next_whole_minute() {
    assert_eq!(window(NOW, 3600), (NOW + 30 - 3600, NOW + 30));
    assert_eq!(window(120, 60), (120, 180), "a whole minute still moves on to the next");
}

#[tokio::test]
async fn a_quiet_target_with_its_alarms_is_healthy() {
    let cw = FakeCloudWatch {
        points: [("invocations", vec![10.0, 20.0]), ("errors", vec![0.0, 0.0]), ("dlq", vec![0.0])]
            .into_iter()
            .collect(),
        alarms: alarms_in("OK", "INSUFFICIENT_DATA"),
        ..FakeCloudWatch::default()
    };
    let m = read_health(&cw, NOW).await;
    assert_eq!((m.invocations, m.errors, m.throttles, m.dlq_depth_max), (Some(30), Some(0), None, Some(0)));
    assert_eq!(m.alarms.get(DLQ_ALARM).map(String::as_str), Some("OK"));
    assert_eq!(m.alarms.get(ERRORS_ALARM).map(String::as_str), Some("INSUFFICIENT_DATA"));
    let (problems, warnings) = judge(&m, Some(0));
    assert!(problems.is_empty() && warnings.is_empty(), "{problems:?} {warnings:?}");
    let asked = cw.asked.lock().map(|a| a.clone()).unwrap_or_default();
    assert_eq!(asked.len(), 1);
    let (ids, start, end, period) = &asked[0];
    assert_eq!(ids, &["dlq", "errors", "throttles", "invocations"]);
    assert_eq!((end - start, *period), (24 * 3600, 3600));
    assert!(*end > NOW && end - NOW <= 60, "the window reaches now");
}

#[tokio::test]
async fn each_fault_is_named_with_its_fix() {
    let cw = FakeCloudWatch {
        points: [("errors", vec![1.0, 2.0]), ("throttles", vec![4.0]), ("dlq", vec![0.0, 5.0, 2.0])]
            .into_iter()
            .collect(),
        alarms: [(ERRORS_ALARM, "ALARM"), (SIDE_EFFECTS_ALARM, "ALARM")].into_iter().collect(),
        ..FakeCloudWatch::default()
    };
    let m = read_health(&cw, NOW).await;
    assert_eq!(m.alarms.get(DLQ_ALARM).map(String::as_str), Some(MISSING));
    // The queue's count could not be read: the metric's maximum is the problem.
    let (problems, warnings) = judge(&m, None);
    let all = problems.join("\n");
    for needle in [
        "3 function errors in the last 24 h",
        LOG_GROUP,
        "DLQ ctguard-detector-dlq held up to 5 messages",
        "`ctguard redrive`",
        "alarm ctguard-detector-errors is in ALARM",
        "alarm ctguard-detector-dlq is missing",
        "run `ctguard install`",
        "alarm ctguard-detector-side-effects is in ALARM: alerts went out, but their record, Security Hub finding",
    ] {
        assert!(all.contains(needle), "{needle} missing from:\n{all}");
    }
    assert_eq!(problems.len(), 5, "{all}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("4 throttled invocations"), "{warnings:?}");
    // With the queue readable and empty, the errors were retried away: a warning.
    let (problems, warnings) = judge(&m, Some(0));
    assert!(!problems.join("\n").contains("function errors"), "{problems:?}");
    assert!(warnings.iter().any(|w| w.contains("3 function errors in the last 24 h, all recovered")), "{warnings:?}");
}

#[test]
fn the_dlq_metric_defers_to_the_queue_count() {
    let m = HealthMetrics {
        window_hours: 24,
        dlq_depth_max: Some(5),
        alarms: ALARMS.iter().map(|n| (n.to_string(), "OK".to_string())).collect(),
        ..HealthMetrics::default()
    };
    // Redriven since: not a problem, but said.
    let (p, w) = judge(&m, Some(0));
    assert!(p.is_empty(), "{p:?}");
    assert!(w.iter().any(|w| w.contains("held up to 5") && w.contains("empty now")), "{w:?}");
    // Still waiting: inspect's own problem names it; no second one here.
    let (p, w) = judge(&m, Some(3));
    assert!(p.is_empty() && w.is_empty(), "{p:?} {w:?}");
    // The alarm itself firing is a problem whatever the counts.
    let mut firing = m.clone();
    firing.alarms.insert(DLQ_ALARM.into(), "ALARM".into());
    let (p, _) = judge(&firing, Some(0));
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("ctguard-detector-dlq is in ALARM") && p[0].contains("ctguard redrive"), "{p:?}");
}

#[tokio::test]
async fn metrics_that_cannot_be_read_are_a_warning_not_a_problem() {
    let cw = FakeCloudWatch { deny_metrics: true, deny_alarms: true, ..FakeCloudWatch::default() };
    let m = read_health(&cw, NOW).await;
    assert!(m.alarms.is_empty(), "unknown alarms are not reported missing");
    assert_eq!((m.errors, m.dlq_depth_max), (None, None));
    let (problems, warnings) = judge(&m, Some(0));
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().all(|w| w.contains("AccessDenied")), "{warnings:?}");
    // Only the alarms denied: the metrics still judge.
    let cw = FakeCloudWatch {
        deny_alarms: true,
        points: [("errors", vec![2.0])].into_iter().collect(),
        ..FakeCloudWatch::default()
    };
    // (A message still in the queue: the errors are a problem.)
    let (problems, warnings) = judge(&read_health(&cw, NOW).await, Some(1));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
}

#[test]
fn a_million_events_priced_by_hand() {
    // 1M invocations of 10 ms at 256 MB; 1 GiB of logs; the engine bench's 85,900 writes;
    // 200,000 reads; 10 alerts.
    let u = Usage {
        invocations: 1e6,
        duration_ms: 1e7,
        log_bytes: 1024.0 * 1024.0 * 1024.0,
        dynamodb_write_units: Some(85_900.0),
        dynamodb_read_units: Some(200_000.0),
        sns_publishes: Some(10.0),
    };
    let (lines, total) = estimate(&u, &PRICES);
    let usd = |item: &str| lines.iter().find(|l| l.item.starts_with(item)).map(|l| l.usd);
    let qty = |item: &str| lines.iter().find(|l| l.item.starts_with(item)).map(|l| l.quantity);
    assert_eq!(usd("lambda requests"), Some(0.20));
    assert_eq!(qty("lambda duration"), Some(2500.0), "1e7 ms = 1e4 s × 0.25 GB");
    assert!(close(usd("lambda duration").unwrap_or(0.0), 2500.0 * 0.000_016_666_7));
    assert_eq!((qty("logs ingestion"), usd("logs ingestion")), (Some(1.0), Some(0.50)));
    assert!(close(usd("dynamodb writes").unwrap_or(0.0), 0.053_687_5));
    assert!(close(usd("dynamodb reads").unwrap_or(0.0), 0.025));
    assert!(close(usd("sns publishes").unwrap_or(0.0), 0.000_005));
    assert_eq!(usd("eventbridge"), Some(0.0));
    let want = 0.20 + 0.041_666_75 + 0.50 + 0.053_687_5 + 0.025 + 0.000_005;
    assert!(close(total, want), "{total} vs {want}");
    assert!(close(per_million(total, 1e6).unwrap_or(0.0), want));
    assert!(close(per_million(total, 2e6).unwrap_or(0.0), want / 2.0));
    assert_eq!(per_million(total, 0.0), None, "no events: no per-event figure");
    // Outside the home region the account-level items are not counted (once per account).
    let regional = Usage { dynamodb_write_units: None, dynamodb_read_units: None, sns_publishes: None, ..u };
    let (lines, total) = estimate(&regional, &PRICES);
    assert!(lines.iter().all(|l| !l.item.starts_with("dynamodb") && !l.item.starts_with("sns")));
    assert!(close(total, 0.20 + 0.041_666_75 + 0.50));
}

#[tokio::test]
async fn cost_reads_the_account_items_at_home_only() {
    let cw = FakeCloudWatch {
        points: [
            ("invocations", vec![400_000.0, 600_000.0]),
            ("duration", vec![4e6, 6e6]),
            ("logbytes", vec![0.5 * GB, 0.5 * GB]),
            ("writes", vec![85_900.0]),
            ("publishes", vec![3.0]),
        ]
        .into_iter()
        .collect(),
        ..FakeCloudWatch::default()
    };
    let t = Target::new("111122223333", "eu-west-1");
    let away = read_cost(&cw, &t, false, NOW).await;
    assert_eq!((away.usage.invocations, away.usage.duration_ms), (1e6, 1e7));
    assert_eq!(away.usage.dynamodb_write_units, None);
    assert!(close(away.total_usd, 0.20 + 0.041_666_75 + 0.50), "{away:?}");
    let home = read_cost(&cw, &t, true, NOW).await;
    assert_eq!(home.usage.dynamodb_write_units, Some(85_900.0));
    assert_eq!(home.usage.dynamodb_read_units, Some(0.0), "no data point: nothing consumed");
    assert!(close(home.total_usd, away.total_usd + 0.053_687_5 + 0.000_001_5), "{home:?}");
    // A target's own figure leaves out the account-wide items (they serve every region).
    assert!(close(home.per_million_events_usd.unwrap_or(0.0), away.total_usd), "{home:?}");
    assert_eq!(home.lines.iter().filter(|l| l.account_wide).count(), 3, "{home:?}");
    let asked = cw.asked.lock().map(|a| a.clone()).unwrap_or_default();
    assert_eq!(asked[0].0, ["invocations", "duration", "logbytes"]);
    assert_eq!(asked[1].0, ["invocations", "duration", "logbytes", "writes", "reads", "publishes"]);
    for (_, start, end, period) in &asked {
        assert_eq!((end - start, *period), (30 * 86_400, 86_400));
    }
    let (total, events, per) = totals(&[away.clone(), home.clone()]);
    assert!(close(total, away.total_usd + home.total_usd));
    assert_eq!(events, 2e6);
    assert!(close(per.unwrap_or(0.0), total / 2.0));

    let denied = FakeCloudWatch { deny_metrics: true, ..FakeCloudWatch::default() };
    let c = read_cost(&denied, &t, true, NOW).await;
    assert!(c.unreadable.as_deref().unwrap_or("").contains("AccessDenied"), "{c:?}");
    assert_eq!((c.total_usd, c.per_million_events_usd), (0.0, None));
}

#[test]
fn the_priced_function_is_the_deployed_one() {
    let t: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(include_str!("../../../templates/ctguard-region.yaml")).expect("template YAML");
    let f = &t["Resources"]["DetectorFunction"]["Properties"];
    assert_eq!(f["MemorySize"].as_u64(), Some(u64::from(LAMBDA_MEMORY_MB)));
    assert_eq!(f["Architectures"][0].as_str(), Some(LAMBDA_ARCHITECTURE));
    assert_eq!(f["FunctionName"].as_str(), Some(FUNCTION_NAME));
    let logs = &t["Resources"]["DetectorLogGroup"]["Properties"]["LogGroupName"];
    assert_eq!(logs.as_str(), Some(LOG_GROUP));
}
