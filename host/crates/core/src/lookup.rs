//! Lookup tables (`CREATE TABLE ... WITH (KIND="lookup")`): a connector
//! that answers "the rows whose key columns equal these values" on demand,
//! for a rule's lookup join. The runtime puts its cache (`lookup.cache`,
//! `cacheTtl`, `cacheMissingKey`) in front; connectors only look up.

use std::sync::Arc;

use async_trait::async_trait;

use crate::connector::{ConnectorError, PingFuture, Props};
use crate::env::ConnectorEnv;
use crate::schema::ConnectorInfo;
use crate::value::{Row, Value};

/// A lookup table's connection, shared by the rule runs that join it.
#[async_trait]
pub trait LookupSource: Send + Sync {
    /// The rows whose columns `keys` equal `values` (same length, none of
    /// them NULL). An empty result is a miss, not an error.
    /// `Unavailable` errors are counted as the join's exceptions.
    async fn lookup(&self, keys: &[Arc<str>], values: &[Value])
        -> Result<Vec<Row>, ConnectorError>;
    /// Rows the table could not keep (a full in-memory table), since it
    /// was made: shown in the rule status so that no drop is silent.
    fn dropped(&self) -> u64 {
        0
    }
}

/// Creates lookup sources of one type (`memory`, `redis`, `httppull`...).
pub trait LookupFactory: Send + Sync {
    fn kind(&self) -> &str;
    /// Traits, default conf keys and property schema ([`ConnectorInfo`]).
    fn info(&self) -> ConnectorInfo;
    /// Checks DATASOURCE and props (a table is stored only when this
    /// passes). No IO. The default builds an instance and drops it.
    fn validate(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<(), ConnectorError> {
        self.create(env, datasource, props).map(drop)
    }
    /// Builds an instance when a rule using the table starts. No network IO
    /// (connections open at the first lookup).
    fn create(
        &self,
        env: &ConnectorEnv,
        datasource: &str,
        props: &Props,
    ) -> Result<Arc<dyn LookupSource>, ConnectorError>;
    /// A connectivity check, as [`crate::SourceFactory::ping`].
    fn ping(&self, _env: &ConnectorEnv, _props: &Props) -> Option<PingFuture> {
        None
    }
}

/// Rows whose `keys` fields equal `values` (lookup keys: `1.0` finds `1`),
/// for connectors that filter rows they hold or fetched.
pub fn matching<'a>(
    rows: impl IntoIterator<Item = &'a Row>,
    keys: &[Arc<str>],
    values: &[Value],
) -> Vec<Row> {
    let want = crate::key::Key::lookup(values);
    rows.into_iter()
        .filter(|r| {
            let got: Vec<Value> = keys
                .iter()
                .map(|k| r.get(k).cloned().unwrap_or(Value::Null))
                .collect();
            crate::key::Key::lookup(&got) == want
        })
        .cloned()
        .collect()
}
