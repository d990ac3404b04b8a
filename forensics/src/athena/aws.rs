//! [`QueryService`] over `aws-sdk-athena`: the only place the SDK appears.

use aws_sdk_athena::error::DisplayErrorContext;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use aws_sdk_athena::Client;

use super::query::{Page, QueryContext, QueryError, QueryService, QueryState, QueryStatus};

/// Athena through the AWS SDK.
pub struct AwsAthena {
    client: Client,
}

impl AwsAthena {
    pub fn new(conf: &aws_config::SdkConfig) -> AwsAthena {
        AwsAthena { client: Client::new(conf) }
    }
}

fn service<E: std::error::Error + 'static>(e: E) -> QueryError {
    QueryError::Service(DisplayErrorContext(e).to_string())
}

impl QueryService for AwsAthena {
    async fn start(&self, sql: &str, ctx: &QueryContext) -> Result<String, QueryError> {
        let mut req = self.client.start_query_execution().query_string(sql);
        if let Some(w) = &ctx.workgroup {
            req = req.work_group(w);
        }
        if let Some(d) = &ctx.database {
            req = req.query_execution_context(QueryExecutionContext::builder().database(d).build());
        }
        if let Some(o) = &ctx.output_location {
            req = req.result_configuration(ResultConfiguration::builder().output_location(o).build());
        }
        let out = req.send().await.map_err(service)?;
        out.query_execution_id.ok_or_else(|| QueryError::Service("StartQueryExecution returned no id".into()))
    }

    async fn status(&self, id: &str) -> Result<QueryStatus, QueryError> {
        let out = self.client.get_query_execution().query_execution_id(id).send().await.map_err(service)?;
        let exec = out.query_execution.ok_or_else(|| QueryError::Service(format!("no execution {id}")))?;
        let st = exec.status.as_ref();
        let state = match st.and_then(|s| s.state.as_ref()) {
            Some(QueryExecutionState::Queued) => QueryState::Queued,
            Some(QueryExecutionState::Running) => QueryState::Running,
            Some(QueryExecutionState::Succeeded) => QueryState::Succeeded,
            Some(QueryExecutionState::Failed) => QueryState::Failed,
            Some(QueryExecutionState::Cancelled) => QueryState::Cancelled,
            Some(other) => return Err(QueryError::Service(format!("query {id}: unknown state {}", other.as_str()))),
            None => QueryState::Queued,
        };
        Ok(QueryStatus {
            state,
            reason: st.and_then(|s| s.state_change_reason.clone()),
            bytes_scanned: exec.statistics.and_then(|s| s.data_scanned_in_bytes).and_then(|b| u64::try_from(b).ok()),
        })
    }

    async fn page(&self, id: &str, token: Option<String>) -> Result<Page, QueryError> {
        let out = self
            .client
            .get_query_results()
            .query_execution_id(id)
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .map_err(service)?;
        let rs = out.result_set;
        let columns = rs
            .as_ref()
            .and_then(|r| r.result_set_metadata.as_ref())
            .map(|m| m.column_info().iter().map(|c| c.name().to_string()).collect())
            .unwrap_or_default();
        let rows = rs
            .map(|r| {
                r.rows
                    .unwrap_or_default()
                    .into_iter()
                    .map(|row| row.data().iter().map(|d| d.var_char_value.clone()).collect())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Page { columns, rows, next_token: out.next_token })
    }

    async fn stop(&self, id: &str) -> Result<(), QueryError> {
        self.client.stop_query_execution().query_execution_id(id).send().await.map_err(service)?;
        Ok(())
    }
}
