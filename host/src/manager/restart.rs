//! `restartStrategy`: a rule stopped by an error is started again, up to
//! `attempts` times in a row, after a growing delay (`delay`, `multiplier`,
//! `maxDelay`, `jitterFactor`: [`oort_core::backoff::Backoff`]). A run that
//! the user stopped, restarted, replaced or deleted meanwhile is left alone;
//! a start by the user begins a new count.

use std::sync::Arc;

use oort_core::backoff::Backoff;

use super::rule_def::RestartStrategy;
use super::Manager;
use crate::runtime::rule::{RuleState, RuleStatus, RunningRule};

/// How long a restarted run must last to count as recovered.
const RECOVERED: std::time::Duration = std::time::Duration::from_secs(60);

/// Where a run is in its strategy: restarts used so far and the delays.
pub(super) struct Retry {
    pub used: u32,
    pub backoff: Backoff,
}

impl Manager {
    /// Watches `run` of rule `id`; when it ends by an error, starts the rule
    /// again as `strategy` says.
    pub(super) fn supervise(
        &self,
        id: &str,
        run: &Arc<RunningRule>,
        status: Arc<RuleStatus>,
        strategy: RestartStrategy,
        retry: Option<Retry>,
    ) {
        if strategy.attempts == 0 {
            return;
        }
        let mut retry = retry.unwrap_or_else(|| Retry {
            used: 0,
            backoff: strategy.backoff(),
        });
        let mgr = self.clone();
        let id = id.to_string();
        let mut done = run.done.clone();
        let this = Arc::as_ptr(run) as usize;
        let started = tokio::time::Instant::now();
        tokio::spawn(async move {
            while !*done.borrow() {
                if done.changed().await.is_err() {
                    break;
                }
            }
            // A run that lasted (the longest delay, at least a minute) has
            // recovered: the count starts again.
            if started.elapsed() >= strategy.max_delay.max(RECOVERED) {
                retry.used = 0;
                retry.backoff.reset();
            }
            loop {
                let RuleState::Failed(why) = status.state() else {
                    return;
                };
                if retry.used >= strategy.attempts {
                    tracing::warn!(rule = %id, attempts = strategy.attempts, error = %why, "rule stopped by error; no restart attempt left");
                    return;
                }
                let wait = retry.backoff.next_delay();
                retry.used += 1;
                tracing::warn!(rule = %id, attempt = retry.used, of = strategy.attempts, wait_ms = wait.as_millis() as u64, error = %why, "rule stopped by error; restarting");
                tokio::time::sleep(wait).await;
                // Still the failed run the user left it in?
                {
                    let rules = mgr.inner.rules.lock().await;
                    let current = rules
                        .get(&id)
                        .and_then(|e| e.running.as_ref())
                        .map(|r| Arc::as_ptr(r) as usize);
                    if current != Some(this) || !matches!(status.state(), RuleState::Failed(_)) {
                        return;
                    }
                }
                match mgr.launch_rule(&id).await {
                    Ok(Some((run, status, strategy))) => {
                        mgr.supervise(&id, &run, status, strategy, Some(retry));
                        return;
                    }
                    Ok(None) => return,
                    // The launch itself failed: the rule is failed with
                    // that message; try again while attempts are left.
                    Err(e) => {
                        tracing::warn!(rule = %id, error = %e, "rule restart failed");
                        status.set_stopped(Some(e.to_string()));
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use oort_core::{
        ConnectorEnv, ConnectorError, ConnectorInfo, Props, Sink, SinkContext, SinkFactory,
        SinkItem,
    };

    use super::super::Manager;

    /// A sink whose first `fail` connects fail fatally.
    struct Flaky {
        fail: usize,
        connects: Arc<AtomicUsize>,
    }

    struct FlakySink {
        fail: usize,
        connects: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl Sink for FlakySink {
        async fn connect(&mut self, _: &SinkContext) -> Result<(), ConnectorError> {
            let n = self.connects.fetch_add(1, Ordering::SeqCst);
            if n < self.fail {
                return Err(ConnectorError::Fatal(format!("flaky: connect {n} refused")));
            }
            Ok(())
        }
        async fn collect(&mut self, _: &SinkContext, _: &[SinkItem]) -> Result<(), ConnectorError> {
            Ok(())
        }
    }

    impl SinkFactory for Flaky {
        fn kind(&self) -> &str {
            "flaky"
        }
        fn info(&self) -> ConnectorInfo {
            ConnectorInfo::new("fails its first connects")
        }
        fn create(&self, _: &ConnectorEnv, _: &Props) -> Result<Box<dyn Sink>, ConnectorError> {
            Ok(Box::new(FlakySink {
                fail: self.fail,
                connects: self.connects.clone(),
            }))
        }
    }

    async fn manager(dir: &std::path::Path, fail: usize) -> (Manager, Arc<AtomicUsize>) {
        let registry = oort_core::Registry::default();
        oort_connectors::builtin(&registry);
        let connects = Arc::new(AtomicUsize::new(0));
        registry.add_sink(Arc::new(Flaky {
            fail,
            connects: connects.clone(),
        }));
        let mgr = Manager::open(dir, registry).expect("manager");
        mgr.exec_stream_sql(r#"CREATE STREAM s () WITH (DATASOURCE="t", TYPE="memory")"#)
            .await
            .expect("stream");
        (mgr, connects)
    }

    /// Waits (virtual time) until the rule's status is `want` with `connects`.
    async fn wait_for(mgr: &Manager, id: &str, want: &str, connects: &AtomicUsize, n: usize) {
        for _ in 0..10_000 {
            let st = mgr.rule_status(id).await.expect("status");
            if st["status"] == want && connects.load(Ordering::SeqCst) == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let st = mgr.rule_status(id).await.expect("status");
        panic!(
            "{id}: wanted {want} after {n} connects, got {} after {}",
            st["status"],
            connects.load(Ordering::SeqCst)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_rule_is_restarted_within_its_attempts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mgr, connects) = manager(dir.path(), 2).await;
        let t0 = tokio::time::Instant::now();
        mgr.create_rule(
            r#"{"id":"r","sql":"SELECT * FROM s","actions":[{"flaky":{}}],
               "options":{"restartStrategy":{"attempts":3,"delay":1000,"multiplier":2,"jitterFactor":0}}}"#,
        )
        .await
        .expect("rule");
        // Connect 1 fails, 1 s, connect 2 fails, 2 s, connect 3 holds.
        wait_for(&mgr, "r", "running", &connects, 3).await;
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(3000) && waited < Duration::from_millis(3500),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_run_out_and_a_rule_without_a_strategy_stays_failed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mgr, connects) = manager(dir.path(), 10).await;
        mgr.create_rule(
            r#"{"id":"r","sql":"SELECT * FROM s","actions":[{"flaky":{}}],
               "options":{"restartStrategy":{"attempts":2,"delay":100,"jitterFactor":0}}}"#,
        )
        .await
        .expect("rule");
        // The first run and two restarts, then it stays stopped by error.
        wait_for(&mgr, "r", "stopped by error", &connects, 3).await;
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(connects.load(Ordering::SeqCst), 3);
        let st = mgr.rule_status("r").await.expect("status");
        assert!(
            st["message"]
                .as_str()
                .unwrap_or("")
                .contains("flaky: connect 2 refused"),
            "{st:?}"
        );

        mgr.create_rule(r#"{"id":"plain","sql":"SELECT * FROM s","actions":[{"flaky":{}}]}"#)
            .await
            .expect("rule");
        wait_for(&mgr, "plain", "stopped by error", &connects, 4).await;
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(
            connects.load(Ordering::SeqCst),
            4,
            "no strategy, no restart"
        );
    }
}
