//! Writing batches to a sink instance: partial accepts (`invalid-data`
//! drops one message and goes on, `unavailable` resends the unaccepted rest
//! a few times, `config` and `unauthorized` stop the rule), and small
//! batches that queued up while the plugin was busy written in one call,
//! each batch still getting its own result.

use std::time::Duration;

use bytes::Bytes;
use oort_core::{ConnectorError, SinkContext};

use crate::plugin::{ListRef, MessageRef, SinkInstance};

/// Resends of the unaccepted rest after `unavailable`, before the batch
/// fails and the runtime's own retry (or resend cache) takes over.
const RESEND_ATTEMPTS: u32 = 3;

/// The writer adds batches waiting behind the one it took to the same
/// `write` while they add up to at most this many messages...
pub(super) const GROUP_MESSAGES: usize = 64;
/// ...and this many payload bytes: batches the rule made small (batch size
/// 1, a linger that expired) share the cost of a call, large ones go alone.
pub(super) const GROUP_BYTES: usize = 64 << 10;

pub(super) type Meta = Vec<(String, String)>;

/// Batches for the writer, handed off together: their payloads one after
/// another, their rendered dynamic properties (empty, or one per payload),
/// and per batch where its payloads end and the errors of its items left
/// out. The batches' tickets are `first`, `first + 1`, ...
pub(super) struct WriteJob {
    pub first: u64,
    pub payloads: Vec<Bytes>,
    pub metas: Vec<Meta>,
    pub batches: Vec<(usize, Vec<String>)>,
}

impl WriteJob {
    pub fn bytes(&self) -> usize {
        self.payloads.iter().map(|p| p.len()).sum()
    }
}

/// Where a write stopped, by message index over the whole call.
#[derive(Debug, Clone)]
enum Stop {
    /// The plugin stayed unavailable after the resends.
    Unavailable(String),
    /// The plugin reported a configuration error: the rule stops.
    Config(String),
    /// Any other failure, as reported.
    Other(ConnectorError),
}

/// What became of the messages of one call.
#[derive(Debug, Default)]
struct Written {
    /// Messages the plugin refused as invalid (dropped, the rest went on).
    dropped: Vec<(usize, String)>,
    /// The message the call stopped at: it and those after it not written.
    stopped: Option<(usize, Stop)>,
}

impl Written {
    /// The result of the batch made of messages `[a, b)`.
    fn result(&self, a: usize, b: usize, bad: &[String]) -> Result<(), ConnectorError> {
        let n = b - a;
        if let Some((at, stop)) = &self.stopped {
            // A batch with messages at or after the stop was not written.
            if *at < b && a < b {
                let accepted = at.saturating_sub(a);
                return Err(match stop {
                    Stop::Unavailable(m) => ConnectorError::Unavailable(format!(
                        "{m} ({accepted} of {n} messages accepted)"
                    )),
                    Stop::Config(m) => ConnectorError::Fatal(format!(
                        "{m} ({accepted} of {n} messages accepted; the rule stops)"
                    )),
                    Stop::Other(e) => e.clone(),
                });
            }
        }
        let dropped: Vec<&str> = self
            .dropped
            .iter()
            .filter(|(i, _)| (a..b).contains(i))
            .map(|(_, m)| m.as_str())
            .collect();
        if !dropped.is_empty() {
            return Err(ConnectorError::InvalidData(format!(
                "{} message(s) dropped: {}",
                dropped.len(),
                dropped.join("; ")
            )));
        }
        match bad.first() {
            Some(first) => Err(ConnectorError::InvalidData(format!(
                "{} message(s) not written: {first}",
                bad.len()
            ))),
            None => Ok(()),
        }
    }
}

/// Writes the batches of `group` (one job, or several small ones in order)
/// in one call and returns each batch's result, in order.
pub(super) async fn write_group(
    inst: &mut SinkInstance,
    ctx: &SinkContext,
    group: &[WriteJob],
) -> Vec<Result<(), ConnectorError>> {
    let msgs: Vec<MessageRef<'_>> = group
        .iter()
        .flat_map(|w| {
            w.payloads.iter().enumerate().map(|(i, p)| MessageRef {
                payload: &p[..],
                meta: ListRef(w.metas.get(i).map_or(&[][..], |m| &m[..])),
                timestamp_ms: None,
            })
        })
        .collect();
    let written = if msgs.is_empty() {
        Written::default()
    } else {
        write_all(inst, ctx, &msgs).await
    };
    batch_results(&written, group)
}

/// Each batch's result, in order, from what became of the call's messages.
fn batch_results(written: &Written, group: &[WriteJob]) -> Vec<Result<(), ConnectorError>> {
    let mut results = Vec::with_capacity(group.iter().map(|w| w.batches.len()).sum());
    // Where the job's messages start in the call.
    let mut base = 0;
    for w in group {
        let mut a = base;
        for (end, bad) in &w.batches {
            let b = base + end;
            results.push(written.result(a, b, bad));
            a = b;
        }
        base += w.payloads.len();
    }
    results
}

/// One call's messages, resending the unaccepted rest after `unavailable`.
async fn write_all(inst: &mut SinkInstance, ctx: &SinkContext, msgs: &[MessageRef<'_>]) -> Written {
    let mut out = Written::default();
    let mut start = 0usize;
    let mut attempts = 0u32;
    while start < msgs.len() {
        let r = inst.write_refs(&msgs[start..]).await;
        ctx.conn.set_metrics(&inst.metrics());
        match r {
            Ok(()) => break,
            Err(Err(e)) => {
                out.stopped = Some((start, Stop::Other(e)));
                break;
            }
            Err(Ok(partial)) => {
                start = (start + partial.accepted as usize).min(msgs.len());
                match partial.error {
                    ConnectorError::InvalidData(m) => {
                        out.dropped.push((start, m));
                        start += 1;
                    }
                    ConnectorError::Unavailable(m) => {
                        attempts += 1;
                        if attempts >= RESEND_ATTEMPTS || ctx.cancel.is_cancelled() {
                            ctx.conn.disconnected(m.clone());
                            out.stopped = Some((start, Stop::Unavailable(m)));
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50 << attempts)).await;
                    }
                    ConnectorError::Config(m) => {
                        ctx.conn.disconnected(m.clone());
                        out.stopped = Some((start, Stop::Config(m)));
                        break;
                    }
                    other => {
                        out.stopped = Some((start, Stop::Other(other)));
                        break;
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(dropped: &[(usize, &str)], stopped: Option<(usize, Stop)>) -> Written {
        Written {
            dropped: dropped.iter().map(|(i, m)| (*i, m.to_string())).collect(),
            stopped,
        }
    }

    #[test]
    fn each_batch_of_a_shared_call_gets_its_own_result() {
        // Three batches of 2, 1 and 3 messages: [0, 2), [2, 3), [3, 6).
        let w = written(&[(2, "not a number")], None);
        assert!(w.result(0, 2, &[]).is_ok());
        let e = w.result(2, 3, &[]).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::InvalidData(m) if m == "1 message(s) dropped: not a number"),
            "{e:?}"
        );
        assert!(w.result(3, 6, &[]).is_ok());
        // Items left out before the call are the batch's own.
        let e = w.result(3, 6, &["no site".to_string()]).unwrap_err();
        assert!(matches!(&e, ConnectorError::InvalidData(m) if m.contains("not written: no site")));
    }

    #[test]
    fn a_stop_fails_the_batch_it_falls_in_and_those_after_it() {
        let w = written(&[], Some((4, Stop::Unavailable("peer down".into()))));
        assert!(w.result(0, 2, &[]).is_ok());
        assert!(w.result(2, 3, &[]).is_ok());
        let e = w.result(3, 6, &[]).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Unavailable(m) if m == "peer down (1 of 3 messages accepted)"),
            "{e:?}"
        );
        let e = w.result(6, 8, &[]).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Unavailable(m) if m == "peer down (0 of 2 messages accepted)"),
            "{e:?}"
        );
        // A batch with no messages (all left out) is not failed by it.
        assert!(w.result(8, 8, &[]).is_ok());
        let w = written(&[], Some((0, Stop::Config("bad topic".into()))));
        let e = w.result(0, 1, &[]).unwrap_err();
        assert!(matches!(&e, ConnectorError::Fatal(m) if m.ends_with("the rule stops)")));
        let w = written(
            &[],
            Some((0, Stop::Other(ConnectorError::Fatal("trap".into())))),
        );
        assert!(matches!(w.result(0, 1, &[]), Err(ConnectorError::Fatal(m)) if m == "trap"));
    }

    #[test]
    fn batches_of_jobs_written_in_one_call_get_their_results_in_order() {
        let job = |first: u64, n: usize, batches: Vec<(usize, Vec<String>)>| WriteJob {
            first,
            payloads: vec![Bytes::from_static(b"x"); n],
            metas: Vec::new(),
            batches,
        };
        // Job 1: batches [0, 1), [1, 3); job 2: [3, 4), [4, 4) (its item
        // left out), [4, 6). The plugin dropped message 2; message 4 stopped
        // the call.
        let group = [
            job(0, 3, vec![(1, vec![]), (3, vec![])]),
            job(
                2,
                3,
                vec![(1, vec![]), (1, vec!["no site".into()]), (3, vec![])],
            ),
        ];
        let w = written(&[(2, "bad")], Some((4, Stop::Unavailable("down".into()))));
        let r = batch_results(&w, &group);
        assert_eq!(r.len(), 5);
        assert!(r[0].is_ok());
        assert!(matches!(&r[1], Err(ConnectorError::InvalidData(m)) if m.contains("bad")));
        assert!(r[2].is_ok());
        assert!(matches!(&r[3], Err(ConnectorError::InvalidData(m)) if m.contains("no site")));
        assert!(matches!(&r[4], Err(ConnectorError::Unavailable(m)) if m.contains("0 of 2")));
    }
}
