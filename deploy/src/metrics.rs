//! `status`'s CloudWatch view of each deployed target, without the printing: what failed in the
//! last 24 hours ([`HealthMetrics`], judged by [`judge`]) and what the last 30 days cost
//! ([`Usage`], priced by [`estimate`] with the one price table, [`PRICES`]).
//!
//! Everything is read through [`MetricsApi`] (`GetMetricData`, `DescribeAlarms`), so the
//! arithmetic and the judgement run on fakes in the unit tests; [`CfnStacks`] implements it
//! with the target's own (counted) CloudWatch client. Metrics that cannot be read (a policy
//! without `cloudwatch:GetMetricData`, a throttled call) are a warning for that target, never
//! a failure of `status`.

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;

use crate::inspect::{CoveredBy, TargetStatus};
use crate::stacks::{ApiError, CfnStacks, Connector, TargetApi, DLQ_NAME, FUNCTION_NAME, TABLE_NAME, TOPIC_NAME};
use crate::targets::{Target, TargetSet};

/// The alarm on the dead-letter queue's depth (created with every regional stack).
pub const DLQ_ALARM: &str = "ctguard-detector-dlq";
/// The alarm on the function's errors (created with every regional stack).
pub const ERRORS_ALARM: &str = "ctguard-detector-errors";
/// The alarm on alerts whose record, Security Hub finding or automatic containment failed
/// (the detector counts them in its log: `ctguard_detector::emf`).
pub const SIDE_EFFECTS_ALARM: &str = "ctguard-detector-side-effects";
/// The alarms `status` expects in a deployed target.
pub const ALARMS: [&str; 3] = [DLQ_ALARM, ERRORS_ALARM, SIDE_EFFECTS_ALARM];
/// What [`HealthMetrics::alarms`] holds for an alarm that does not exist.
pub const MISSING: &str = "MISSING";
/// The function's log group (the regional template names it).
pub const LOG_GROUP: &str = "/aws/lambda/ctguard-detector";

/// The window `status` judges health over, and its period.
pub const HEALTH_HOURS: i64 = 24;
const HEALTH_PERIOD_SECS: i32 = 3600;
/// The window `status --cost` estimates over, and its period (a multiple of 300 s, as
/// CloudWatch requires for data older than 15 days).
pub const COST_DAYS: i64 = 30;
const COST_PERIOD_SECS: i32 = 86_400;
/// `GetMetricData` pages read at most (a handful of queries over these windows fit in one).
const MAX_PAGES: usize = 20;

/// How one query's data points combine over its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    Sum,
    Maximum,
}

impl Stat {
    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Sum => "Sum",
            Stat::Maximum => "Maximum",
        }
    }

    /// The statistic over the whole window from its per-period values (`None`: no data point).
    pub fn combine(self, points: &[f64]) -> Option<f64> {
        let finite = points.iter().copied().filter(|v| v.is_finite());
        match self {
            Stat::Sum => finite.clone().next().map(|_| finite.sum()),
            Stat::Maximum => finite.reduce(f64::max),
        }
    }
}

/// One metric of one resource (a single dimension is all ctguard's metrics need).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricQuery {
    /// The query id: lower case, unique in a request.
    pub id: &'static str,
    pub namespace: &'static str,
    pub name: &'static str,
    pub dimension: (&'static str, &'static str),
    pub stat: Stat,
}

const fn lambda(id: &'static str, name: &'static str) -> MetricQuery {
    MetricQuery { id, namespace: "AWS/Lambda", name, dimension: ("FunctionName", FUNCTION_NAME), stat: Stat::Sum }
}

const DLQ_DEPTH: MetricQuery = MetricQuery {
    id: "dlq",
    namespace: "AWS/SQS",
    name: "ApproximateNumberOfMessagesVisible",
    dimension: ("QueueName", DLQ_NAME),
    stat: Stat::Maximum,
};
const ERRORS: MetricQuery = lambda("errors", "Errors");
const THROTTLES: MetricQuery = lambda("throttles", "Throttles");
const INVOCATIONS: MetricQuery = lambda("invocations", "Invocations");
const DURATION: MetricQuery = lambda("duration", "Duration");
const LOG_BYTES: MetricQuery = MetricQuery {
    id: "logbytes",
    namespace: "AWS/Logs",
    name: "IncomingBytes",
    dimension: ("LogGroupName", LOG_GROUP),
    stat: Stat::Sum,
};
const TABLE_WRITES: MetricQuery = MetricQuery {
    id: "writes",
    namespace: "AWS/DynamoDB",
    name: "ConsumedWriteCapacityUnits",
    dimension: ("TableName", TABLE_NAME),
    stat: Stat::Sum,
};
const TABLE_READS: MetricQuery = MetricQuery { id: "reads", name: "ConsumedReadCapacityUnits", ..TABLE_WRITES };
const PUBLISHES: MetricQuery = MetricQuery {
    id: "publishes",
    namespace: "AWS/SNS",
    name: "NumberOfMessagesPublished",
    dimension: ("TopicName", TOPIC_NAME),
    stat: Stat::Sum,
};

/// What `status` asks CloudWatch in every deployed target.
pub const HEALTH_QUERIES: [MetricQuery; 4] = [DLQ_DEPTH, ERRORS, THROTTLES, INVOCATIONS];
/// What `status --cost` asks in every deployed target.
pub const REGION_COST_QUERIES: [MetricQuery; 3] = [INVOCATIONS, DURATION, LOG_BYTES];
/// What `status --cost` asks once per account, in its home region (the state table and the
/// account's own alert topic live there).
pub const HOME_COST_QUERIES: [MetricQuery; 3] = [TABLE_WRITES, TABLE_READS, PUBLISHES];

/// CloudWatch in one account × region.
pub trait MetricsApi: Sync {
    /// Every data point of each query over `[start, end)` (epoch seconds) at `period` seconds,
    /// by query id; a query with no data point may be absent.
    fn metric_data(
        &self,
        queries: &[MetricQuery],
        start: i64,
        end: i64,
        period: i32,
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<f64>>, ApiError>> + Send;
    /// The state (`OK`, `ALARM`, `INSUFFICIENT_DATA`) of each of these alarms that exists, by
    /// name.
    fn alarm_states(&self, names: &[&str]) -> impl Future<Output = Result<BTreeMap<String, String>, ApiError>> + Send;
}

/// The window ending at the next whole minute after `now` (epoch seconds): `(start, end)`.
fn window(now: i64, secs: i64) -> (i64, i64) {
    let end = (now.div_euclid(60) + 1) * 60;
    (end - secs, end)
}

/// Each query's statistic over the window, by id (`None`: no data point).
async fn read<M: MetricsApi>(
    api: &M,
    queries: &[MetricQuery],
    (start, end): (i64, i64),
    period: i32,
) -> Result<BTreeMap<&'static str, Option<f64>>, ApiError> {
    let data = api.metric_data(queries, start, end, period).await?;
    Ok(queries.iter().map(|q| (q.id, data.get(q.id).and_then(|v| q.stat.combine(v)))).collect())
}

/// A count from CloudWatch's float (counts are whole; anything negative or not finite is 0).
fn count(v: Option<f64>) -> Option<u64> {
    v.map(|x| if x.is_finite() && x > 0.0 { x.round() as u64 } else { 0 })
}

// ------------------------------------------------------------------------------------------
// Health: the last 24 hours

/// What CloudWatch says about a deployed target over the last [`HEALTH_HOURS`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HealthMetrics {
    pub window_hours: i64,
    /// The most messages the dead-letter queue held at once (`None`: no data point).
    pub dlq_depth_max: Option<u64>,
    /// The function's errors, throttles and invocations, summed (`None`: no data point, which
    /// CloudWatch means as none happened).
    pub errors: Option<u64>,
    pub throttles: Option<u64>,
    pub invocations: Option<u64>,
    /// Alarm name → its state, or [`MISSING`]; empty when the alarms could not be read.
    pub alarms: BTreeMap<String, String>,
    /// What could not be read, and why (a warning: nothing is judged from it).
    pub unreadable: Vec<String>,
}

/// Reads a deployed target's health metrics and alarms; failures land in `unreadable`.
pub async fn read_health<M: MetricsApi>(api: &M, now: i64) -> HealthMetrics {
    let mut m = HealthMetrics { window_hours: HEALTH_HOURS, ..HealthMetrics::default() };
    match read(api, &HEALTH_QUERIES, window(now, HEALTH_HOURS * 3600), HEALTH_PERIOD_SECS).await {
        Ok(v) => {
            let get = |q: MetricQuery| count(v.get(q.id).copied().flatten());
            m.dlq_depth_max = get(DLQ_DEPTH);
            m.errors = get(ERRORS);
            m.throttles = get(THROTTLES);
            m.invocations = get(INVOCATIONS);
        }
        Err(e) => m.unreadable.push(format!("metrics: {e}")),
    }
    match api.alarm_states(&ALARMS).await {
        Ok(found) => {
            m.alarms = ALARMS
                .iter()
                .map(|n| (n.to_string(), found.get(*n).cloned().unwrap_or_else(|| MISSING.to_string())))
                .collect()
        }
        Err(e) => m.unreadable.push(format!("alarms: {e}")),
    }
    m
}

/// What to do about each alarm when it fires.
fn alarm_fix(name: &str) -> String {
    match name {
        DLQ_ALARM => format!("events wait in the DLQ {DLQ_NAME}: replay them with `ctguard redrive`"),
        ERRORS_ALARM => format!("the function is failing: read why in the log group {LOG_GROUP}"),
        SIDE_EFFECTS_ALARM => format!(
            "alerts went out, but their record, Security Hub finding or automatic containment failed: read which \
             and why in the log group {LOG_GROUP}"
        ),
        _ => "see the alarm in CloudWatch".into(),
    }
}

/// Problems (the target is unhealthy) and warnings (it is not) from a target's metrics, given
/// the queue's depth now (`GetQueueAttributes`, `None` when it could not be read).
pub fn judge(m: &HealthMetrics, dlq_now: Option<u64>) -> (Vec<String>, Vec<String>) {
    let (mut problems, mut warnings) = (Vec::new(), Vec::new());
    let h = m.window_hours;
    if let Some(n) = m.errors.filter(|n| *n > 0) {
        // Some errors are by design: an event whose alert another invocation is publishing
        // fails with AlertInFlight so that Lambda retries it. With nothing in the DLQ now,
        // every failed event was processed in the end; the errors alarm (sustained errors)
        // and the DLQ are what make a target unhealthy.
        if dlq_now == Some(0) {
            warnings.push(format!(
                "{n} function errors in the last {h} h, all recovered by Lambda's retries (the DLQ is empty): \
                 see the log group {LOG_GROUP} if they persist"
            ));
        } else {
            problems.push(format!(
                "{n} function errors in the last {h} h: read why in the log group {LOG_GROUP}; what still \
                 failed after Lambda's retries is in the DLQ (`ctguard redrive`)"
            ));
        }
    }
    if let Some(n) = m.dlq_depth_max.filter(|n| *n > 0) {
        match dlq_now {
            // The queue's own count already names the problem (inspect's health problems).
            Some(d) if d > 0 => {}
            Some(_) => warnings.push(format!(
                "the DLQ {DLQ_NAME} held up to {n} messages in the last {h} h and is empty now (redriven or expired)"
            )),
            None => problems.push(format!(
                "the DLQ {DLQ_NAME} held up to {n} messages in the last {h} h: replay them with `ctguard redrive`"
            )),
        }
    }
    for (name, state) in &m.alarms {
        match state.as_str() {
            "ALARM" => problems.push(format!("alarm {name} is in ALARM: {}", alarm_fix(name))),
            MISSING => problems
                .push(format!("alarm {name} is missing (the ctguard-region stack creates it): run `ctguard install`")),
            _ => {}
        }
    }
    if let Some(n) = m.throttles.filter(|n| *n > 0) {
        warnings.push(format!(
            "{n} throttled invocations in the last {h} h (Lambda retries throttled events for up to 6 h; \
             raise the account's concurrency limit if this persists)"
        ));
    }
    warnings.extend(m.unreadable.iter().map(|u| format!("CloudWatch could not be read: {u}")));
    (problems, warnings)
}

/// Judges a target's metrics into its status (problems, warnings, the metrics themselves).
pub fn attach(s: &mut TargetStatus, m: HealthMetrics) {
    let (problems, warnings) = judge(&m, s.health.dlq_depth);
    s.problems.extend(problems);
    s.warnings.extend(warnings);
    s.metrics = Some(m);
}

// ------------------------------------------------------------------------------------------
// Cost: the last 30 days

/// Public list prices, us-east-1, in USD: the one place the cost estimate takes them from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Prices {
    /// When these were read from AWS's pricing pages.
    pub as_of: &'static str,
    pub region: &'static str,
    /// Lambda: per million requests.
    pub lambda_requests_per_million: f64,
    /// Lambda on x86_64: per GB-second (the first 6 billion GB-s a month).
    pub lambda_gb_second_x86: f64,
    /// DynamoDB on-demand: per million write request units.
    pub dynamodb_writes_per_million: f64,
    /// DynamoDB on-demand: per million read request units.
    pub dynamodb_reads_per_million: f64,
    /// SNS standard topics: per million publishes (64 KB chunks).
    pub sns_publishes_per_million: f64,
    /// CloudWatch Logs: per GB ingested (standard class; Lambda's first tier).
    pub logs_ingested_per_gb: f64,
    /// EventBridge: AWS service events on the default bus are free.
    pub eventbridge_aws_events: f64,
}

/// AWS's public list prices for us-east-1, read 2026-12; other regions differ, and free tiers
/// and discounts are not applied.
pub const PRICES: Prices = Prices {
    as_of: "2026-12",
    region: "us-east-1",
    lambda_requests_per_million: 0.20,
    lambda_gb_second_x86: 0.000_016_666_7,
    dynamodb_writes_per_million: 0.625,
    dynamodb_reads_per_million: 0.125,
    sns_publishes_per_million: 0.50,
    logs_ingested_per_gb: 0.50,
    eventbridge_aws_events: 0.0,
};

/// The function's memory (`MemorySize` in the regional template; a test holds them together).
pub const LAMBDA_MEMORY_MB: u32 = 256;
/// The function's architecture (priced at the x86_64 rate).
pub const LAMBDA_ARCHITECTURE: &str = "x86_64";
/// Bytes in the GB CloudWatch Logs bills (binary, as AWS meters data).
const GB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What a target used over the cost window (`None`: not read here or no data point).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Lambda invocations: ctguard's event count (EventBridge invokes once per event).
    pub invocations: f64,
    /// Lambda duration, summed, in milliseconds.
    pub duration_ms: f64,
    /// Bytes ingested into the function's log group.
    pub log_bytes: f64,
    /// The home target only (once per account): the state table's consumed capacity and the
    /// account's alert topic's publishes.
    pub dynamodb_write_units: Option<f64>,
    pub dynamodb_read_units: Option<f64>,
    pub sns_publishes: Option<f64>,
}

/// One priced item.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostLine {
    pub item: &'static str,
    pub quantity: f64,
    pub unit: &'static str,
    pub usd: f64,
    /// An item of the whole account (the state table, the alert topic), which serves every
    /// region's events: not divided by this target's events alone.
    pub account_wide: bool,
}

/// The estimate for one target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cost {
    pub account: String,
    pub region: String,
    pub days: i64,
    /// Whether the account-level items (state table, alert topic) are counted here.
    pub home: bool,
    pub usage: Usage,
    pub lines: Vec<CostLine>,
    pub total_usd: f64,
    /// This target's own items (not the account-wide ones) per million of its invocations
    /// (`None`: no invocation). The account-wide items enter the total's per-million figure.
    pub per_million_events_usd: Option<f64>,
    /// Why this target has no estimate (the metrics could not be read).
    pub unreadable: Option<String>,
}

impl Cost {
    /// The account-wide items' part of [`Cost::total_usd`] (the home target's state table and
    /// alert topic; nothing elsewhere).
    pub fn account_wide_usd(&self) -> f64 {
        self.lines.iter().filter(|l| l.account_wide).map(|l| l.usd).sum()
    }
}

/// The priced items of one usage, and their total.
pub fn estimate(u: &Usage, p: &Prices) -> (Vec<CostLine>, f64) {
    let gb_seconds = u.duration_ms / 1000.0 * f64::from(LAMBDA_MEMORY_MB) / 1024.0;
    let log_gb = u.log_bytes / GB;
    let mut lines = vec![
        CostLine {
            item: "lambda requests",
            quantity: u.invocations,
            unit: "requests",
            usd: u.invocations / 1e6 * p.lambda_requests_per_million,
            account_wide: false,
        },
        CostLine {
            item: "lambda duration",
            quantity: gb_seconds,
            unit: "GB-s",
            usd: gb_seconds * p.lambda_gb_second_x86,
            account_wide: false,
        },
        CostLine {
            item: "logs ingestion",
            quantity: log_gb,
            unit: "GB",
            usd: log_gb * p.logs_ingested_per_gb,
            account_wide: false,
        },
        CostLine {
            item: "eventbridge (AWS service events, default bus: free)",
            quantity: 0.0,
            unit: "-",
            usd: 0.0,
            account_wide: false,
        },
    ];
    // The account-wide items, read at home only.
    let account_items = [
        (u.dynamodb_write_units, "dynamodb writes", "WRU", p.dynamodb_writes_per_million),
        (u.dynamodb_read_units, "dynamodb reads", "RRU", p.dynamodb_reads_per_million),
        (u.sns_publishes, "sns publishes", "publishes", p.sns_publishes_per_million),
    ];
    for (quantity, item, unit, per_million) in account_items {
        if let Some(q) = quantity {
            lines.push(CostLine { item, quantity: q, unit, usd: q / 1e6 * per_million, account_wide: true });
        }
    }
    let total = lines.iter().map(|l| l.usd).sum();
    (lines, total)
}

/// Cost per million events (`None` without events).
pub fn per_million(total_usd: f64, events: f64) -> Option<f64> {
    (events >= 1.0).then(|| total_usd / events * 1e6)
}

/// Reads a target's usage over the last [`COST_DAYS`] (the account-level items at home only)
/// and prices it.
pub async fn read_cost<M: MetricsApi>(api: &M, t: &Target, home: bool, now: i64) -> Cost {
    let w = window(now, COST_DAYS * 86_400);
    let mut cost = Cost {
        account: t.account.clone(),
        region: t.region.clone(),
        days: COST_DAYS,
        home,
        usage: Usage::default(),
        lines: Vec::new(),
        total_usd: 0.0,
        per_million_events_usd: None,
        unreadable: None,
    };
    let mut queries = REGION_COST_QUERIES.to_vec();
    if home {
        queries.extend(HOME_COST_QUERIES);
    }
    let v = match read(api, &queries, w, COST_PERIOD_SECS).await {
        Ok(v) => v,
        Err(e) => {
            cost.unreadable = Some(format!("metrics: {e}"));
            return cost;
        }
    };
    let get = |q: MetricQuery| v.get(q.id).copied().flatten().unwrap_or(0.0);
    cost.usage = Usage {
        invocations: get(INVOCATIONS),
        duration_ms: get(DURATION),
        log_bytes: get(LOG_BYTES),
        dynamodb_write_units: home.then(|| get(TABLE_WRITES)),
        dynamodb_read_units: home.then(|| get(TABLE_READS)),
        sns_publishes: home.then(|| get(PUBLISHES)),
    };
    let (lines, total) = estimate(&cost.usage, &PRICES);
    cost.lines = lines;
    cost.total_usd = total;
    cost.per_million_events_usd = per_million(total - cost.account_wide_usd(), cost.usage.invocations);
    cost
}

/// The sum of several targets' estimates: (total USD, events, per million events).
pub fn totals(costs: &[Cost]) -> (f64, f64, Option<f64>) {
    let total: f64 = costs.iter().map(|c| c.total_usd).sum();
    let events: f64 = costs.iter().map(|c| c.usage.invocations).sum();
    (total, events, per_million(total, events))
}

// ------------------------------------------------------------------------------------------
// Every target

/// Adds the health metrics to every directly deployed target's status and, with `cost`,
/// returns the cost estimate of each (targets a StackSet owns are judged without a role in the
/// account, so neither is read there), with the AWS API calls made.
pub async fn collect<C>(
    c: &C,
    set: &TargetSet,
    statuses: &mut [TargetStatus],
    cost: bool,
    now: i64,
    concurrency: usize,
) -> (Vec<Cost>, u64)
where
    C: Connector,
    C::Api: MetricsApi,
{
    let results: Vec<(usize, HealthMetrics, Option<Cost>, u64)> = stream::iter(
        statuses
            .iter()
            .enumerate()
            .filter(|(_, s)| s.covered_by == CoveredBy::Direct)
            .map(|(i, s)| (i, s.target.clone())),
    )
    .map(|(i, t)| async move {
        let home = set.is_home(&t);
        match c.connect(&t).await {
            Ok(api) => {
                let h = read_health(&api, now).await;
                let k = if cost { Some(read_cost(&api, &t, home, now).await) } else { None };
                (i, h, k, api.calls())
            }
            Err(e) => {
                let h = HealthMetrics {
                    window_hours: HEALTH_HOURS,
                    unreadable: vec![format!("metrics: cannot connect: {e}")],
                    ..HealthMetrics::default()
                };
                (i, h, None, 0)
            }
        }
    })
    .buffer_unordered(concurrency.max(1))
    .collect()
    .await;
    let mut costs = Vec::new();
    let mut calls = 0;
    for (i, m, k, n) in results {
        if let Some(s) = statuses.get_mut(i) {
            attach(s, m);
        }
        costs.extend(k);
        calls += n;
    }
    costs.sort_by(|a, b| (&a.account, &a.region).cmp(&(&b.account, &b.region)));
    (costs, calls)
}

// ------------------------------------------------------------------------------------------
// AWS

impl MetricsApi for CfnStacks {
    async fn metric_data(
        &self,
        queries: &[MetricQuery],
        start: i64,
        end: i64,
        period: i32,
    ) -> Result<BTreeMap<String, Vec<f64>>, ApiError> {
        use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
        let built: Vec<MetricDataQuery> = queries
            .iter()
            .map(|q| {
                let metric = Metric::builder()
                    .namespace(q.namespace)
                    .metric_name(q.name)
                    .dimensions(Dimension::builder().name(q.dimension.0).value(q.dimension.1).build())
                    .build();
                let stat = MetricStat::builder().metric(metric).period(period).stat(q.stat.as_str()).build();
                MetricDataQuery::builder().id(q.id).metric_stat(stat).return_data(true).build()
            })
            .collect();
        let cw = self.cloudwatch();
        let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = cw
                .get_metric_data()
                .set_metric_data_queries(Some(built.clone()))
                .start_time(aws_smithy_types::DateTime::from_secs(start))
                .end_time(aws_smithy_types::DateTime::from_secs(end))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| ApiError::from_sdk("GetMetricData", &e))?;
            for r in page.metric_data_results() {
                if let Some(id) = r.id() {
                    out.entry(id.to_string()).or_default().extend_from_slice(r.values());
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn alarm_states(&self, names: &[&str]) -> Result<BTreeMap<String, String>, ApiError> {
        let out = self
            .cloudwatch()
            .describe_alarms()
            .set_alarm_names(Some(names.iter().map(|n| n.to_string()).collect()))
            .send()
            .await
            .map_err(|e| ApiError::from_sdk("DescribeAlarms", &e))?;
        let metric = out.metric_alarms().iter().filter_map(|a| {
            Some((a.alarm_name()?.to_string(), a.state_value().map(|s| s.as_str().to_string()).unwrap_or_default()))
        });
        let composite = out.composite_alarms().iter().filter_map(|a| {
            Some((a.alarm_name()?.to_string(), a.state_value().map(|s| s.as_str().to_string()).unwrap_or_default()))
        });
        // Only the names asked for: an emulator (or a prefix match) may answer with more.
        Ok(metric.chain(composite).filter(|(n, _)| names.contains(&n.as_str())).collect())
    }
}

#[cfg(test)]
mod tests;
