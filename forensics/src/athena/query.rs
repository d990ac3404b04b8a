//! The Athena seam and the runner that drives one query: start, poll with backoff, read the
//! results page by page, stop the query when the caller cancels.
//!
//! [`QueryService`] speaks in domain types only; `aws-sdk-athena` appears in [`super::aws`]
//! alone, so the runner is tested against fakes and against the emulator through the real client.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// Where a query runs and where Athena writes its results.
#[derive(Clone, Debug, Default)]
pub struct QueryContext {
    pub workgroup: Option<String>,
    pub database: Option<String>,
    /// `s3://…` for the results, when the workgroup does not set one.
    pub output_location: Option<String>,
}

/// The state of a query execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// What a poll returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryStatus {
    pub state: QueryState,
    /// Athena's reason for a failure or cancellation.
    pub reason: Option<String>,
    pub bytes_scanned: Option<u64>,
}

/// One page of results. Athena puts the column labels in the first row of the first page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub next_token: Option<String>,
}

/// An error from the service.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("Athena: {0}")]
    Service(String),
    #[error("query {id} failed: {reason}")]
    Failed { id: String, reason: String },
    #[error("query {id} was cancelled{}", .reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Cancelled { id: String, reason: Option<String> },
    #[error("query {id}: a result row has {got} values for {want} columns")]
    Shape { id: String, got: usize, want: usize },
}

/// Athena, as ctguard uses it.
pub trait QueryService: Sync {
    fn start(&self, sql: &str, ctx: &QueryContext) -> impl Future<Output = Result<String, QueryError>> + Send;
    fn status(&self, id: &str) -> impl Future<Output = Result<QueryStatus, QueryError>> + Send;
    fn page(&self, id: &str, token: Option<String>) -> impl Future<Output = Result<Page, QueryError>> + Send;
    fn stop(&self, id: &str) -> impl Future<Output = Result<(), QueryError>> + Send;
}

/// Poll delays: from `first`, doubling, capped at `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { first: Duration::from_millis(250), max: Duration::from_secs(5) }
    }
}

/// One result row: column → value, SQL NULLs left out.
pub type Row = BTreeMap<String, String>;

/// What the runner reports as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    Started(String),
    State(QueryState),
    Page { rows: usize },
}

/// The end of a successful run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub id: String,
    pub rows: u64,
    pub pages: u64,
    pub bytes_scanned: Option<u64>,
}

/// Runs `sql` to completion, handing every row to `on_row` as its page arrives. When `cancel`
/// completes first, the query is stopped in Athena (so it stops billing) and `Cancelled` returned.
pub async fn run<Q: QueryService>(
    q: &Q,
    sql: &str,
    ctx: &QueryContext,
    backoff: Backoff,
    cancel: impl Future<Output = ()>,
    mut progress: impl FnMut(Progress),
    mut on_row: impl FnMut(Row),
) -> Result<Finished, QueryError> {
    let id = q.start(sql, ctx).await?;
    progress(Progress::Started(id.clone()));
    tokio::pin!(cancel);
    let stop = |reason: Option<String>| QueryError::Cancelled { id: id.clone(), reason };
    let mut delay = backoff.first;
    let mut last = None;
    let status = loop {
        let s = q.status(&id).await?;
        if last != Some(s.state) {
            progress(Progress::State(s.state));
            last = Some(s.state);
        }
        match s.state {
            QueryState::Succeeded => break s,
            QueryState::Failed => {
                return Err(QueryError::Failed {
                    id: id.clone(),
                    reason: s.reason.unwrap_or_else(|| "no reason given".into()),
                })
            }
            QueryState::Cancelled => return Err(stop(s.reason)),
            QueryState::Queued | QueryState::Running => {}
        }
        tokio::select! {
            _ = &mut cancel => {
                q.stop(&id).await?;
                return Err(stop(Some("stopped by the user".into())));
            }
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(backoff.max);
    };
    let (mut token, mut first, mut rows, mut pages) = (None, true, 0u64, 0u64);
    loop {
        let page = tokio::select! {
            _ = &mut cancel => return Err(stop(Some("stopped by the user while reading results".into()))),
            p = q.page(&id, token.take()) => p?,
        };
        pages += 1;
        let mut it = page.rows.into_iter().peekable();
        // Athena repeats the column labels as the first row of the first page.
        if first
            && it
                .peek()
                .is_some_and(|r| r.iter().map(|v| v.as_deref()).eq(page.columns.iter().map(|c| Some(c.as_str()))))
        {
            it.next();
        }
        first = false;
        let mut n = 0;
        for values in it {
            if values.len() != page.columns.len() {
                return Err(QueryError::Shape { id: id.clone(), got: values.len(), want: page.columns.len() });
            }
            let row: Row = page.columns.iter().cloned().zip(values).filter_map(|(c, v)| v.map(|v| (c, v))).collect();
            on_row(row);
            n += 1;
        }
        rows += n as u64;
        progress(Progress::Page { rows: n });
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    Ok(Finished { id, rows, pages, bytes_scanned: status.bytes_scanned })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A scripted Athena: a list of states, then pages.
    struct FakeAthena {
        states: Mutex<Vec<QueryState>>,
        pages: Vec<Page>,
        stopped: Mutex<bool>,
    }

    impl QueryService for FakeAthena {
        async fn start(&self, _sql: &str, _ctx: &QueryContext) -> Result<String, QueryError> {
            Ok("q-1".into())
        }
        async fn status(&self, _id: &str) -> Result<QueryStatus, QueryError> {
            let mut s = self.states.lock().map_err(|_| QueryError::Service("poisoned".into()))?;
            let state = if s.len() > 1 { s.remove(0) } else { s.first().copied().unwrap_or(QueryState::Running) };
            Ok(QueryStatus { state, reason: Some("boom".into()), bytes_scanned: Some(42) })
        }
        async fn page(&self, _id: &str, token: Option<String>) -> Result<Page, QueryError> {
            let i: usize = token.as_deref().unwrap_or("0").parse().map_err(|_| QueryError::Service("token".into()))?;
            self.pages.get(i).cloned().ok_or_else(|| QueryError::Service("no page".into()))
        }
        async fn stop(&self, _id: &str) -> Result<(), QueryError> {
            *self.stopped.lock().map_err(|_| QueryError::Service("poisoned".into()))? = true;
            Ok(())
        }
    }

    fn page(rows: &[&[Option<&str>]], next: Option<&str>) -> Page {
        Page {
            columns: vec!["a".into(), "b".into()],
            rows: rows.iter().map(|r| r.iter().map(|v| v.map(str::to_string)).collect()).collect(),
            next_token: next.map(str::to_string),
        }
    }

    fn fast() -> Backoff {
        Backoff { first: Duration::from_millis(1), max: Duration::from_millis(4) }
    }

    #[tokio::test]
    async fn polls_then_streams_every_page_without_the_header() {
        use QueryState::*;
        let fake = FakeAthena {
            states: Mutex::new(vec![Queued, Running, Running, Succeeded]),
            pages: vec![
                page(&[&[Some("a"), Some("b")], &[Some("1"), None]], Some("1")),
                page(&[&[Some("2"), Some("x")]], Some("")),
            ],
            stopped: Mutex::new(false),
        };
        let (mut rows, mut events) = (Vec::new(), Vec::new());
        let done = run(
            &fake,
            "SELECT 1",
            &QueryContext::default(),
            fast(),
            std::future::pending(),
            |p| events.push(p),
            |r| rows.push(r),
        )
        .await
        .expect("run");
        assert_eq!((done.rows, done.pages, done.bytes_scanned), (2, 2, Some(42)));
        assert_eq!(rows[0].get("a").map(String::as_str), Some("1"));
        assert!(!rows[0].contains_key("b"), "NULL is left out");
        assert_eq!(events.first(), Some(&Progress::Started("q-1".into())));
        assert!(events.contains(&Progress::State(Succeeded)));
    }

    #[tokio::test]
    async fn failures_and_cancellations_are_errors() {
        let fake =
            FakeAthena { states: Mutex::new(vec![QueryState::Failed]), pages: vec![], stopped: Mutex::new(false) };
        let e = run(&fake, "x", &QueryContext::default(), fast(), std::future::pending(), |_| {}, |_| {}).await;
        assert!(matches!(e, Err(QueryError::Failed { ref reason, .. }) if reason == "boom"), "{e:?}");

        let fake =
            FakeAthena { states: Mutex::new(vec![QueryState::Running]), pages: vec![], stopped: Mutex::new(false) };
        let cancel = tokio::time::sleep(Duration::from_millis(20));
        let e = run(&fake, "x", &QueryContext::default(), fast(), cancel, |_| {}, |_| {}).await;
        assert!(matches!(e, Err(QueryError::Cancelled { .. })), "{e:?}");
        assert!(*fake.stopped.lock().expect("lock"), "the query is stopped in Athena");
    }

    #[tokio::test]
    async fn ragged_rows_are_refused() {
        let fake = FakeAthena {
            states: Mutex::new(vec![QueryState::Succeeded]),
            pages: vec![page(&[&[Some("only one")]], None)],
            stopped: Mutex::new(false),
        };
        let e = run(&fake, "x", &QueryContext::default(), fast(), std::future::pending(), |_| {}, |_| {}).await;
        assert!(matches!(e, Err(QueryError::Shape { got: 1, want: 2, .. })), "{e:?}");
    }
}
