//! What a [`Client`] asks of the event loop: requests queued for it to
//! write (publishes, acknowledgements, subscriptions).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

#[derive(Debug)]
pub(crate) enum Request {
    Publish {
        topic: Arc<str>,
        payload: Bytes,
        qos: u8,
        retain: bool,
    },
    /// PUBACK (QoS 1) or PUBREC (QoS 2) of an incoming publish.
    Ack {
        qos: u8,
        pkid: u16,
    },
    Subscribe(Vec<(String, u8)>),
    Unsubscribe(String),
    Disconnect,
}

/// A handle that queues requests for the event loop.
#[derive(Clone)]
pub(crate) struct Client {
    pub(super) tx: mpsc::Sender<Request>,
}

impl Client {
    /// Queues a PUBLISH (waits only for room in the queue).
    pub async fn publish(
        &self,
        topic: Arc<str>,
        qos: u8,
        retain: bool,
        payload: Bytes,
    ) -> Result<(), String> {
        self.tx
            .send(Request::Publish {
                topic,
                payload,
                qos,
                retain,
            })
            .await
            .map_err(|_| "the connection is closed".to_string())
    }

    /// Queues a PUBLISH if the queue has room now; when it is full,
    /// `Err(Some((topic, payload)))` gives them back; `Err(None)`: the
    /// connection is closed.
    #[allow(clippy::type_complexity)]
    pub fn try_publish(
        &self,
        topic: Arc<str>,
        qos: u8,
        retain: bool,
        payload: Bytes,
    ) -> Result<(), Option<(Arc<str>, Bytes)>> {
        let r = Request::Publish {
            topic,
            payload,
            qos,
            retain,
        };
        match self.tx.try_send(r) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(Request::Publish { topic, payload, .. })) => {
                Err(Some((topic, payload)))
            }
            Err(_) => Err(None),
        }
    }

    fn try_send(&self, r: Request) -> Result<(), String> {
        self.tx.try_send(r).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "the request queue is full".to_string(),
            mpsc::error::TrySendError::Closed(_) => "the connection is closed".to_string(),
        })
    }

    /// Queues one SUBSCRIBE for all filters with one QoS, without waiting.
    pub fn try_subscribe(&self, topics: &[String], qos: u8) -> Result<(), String> {
        self.try_send(Request::Subscribe(
            topics.iter().map(|t| (t.clone(), qos)).collect(),
        ))
    }

    /// Queues one SUBSCRIBE holding every `(filter, qos)` pair, without waiting.
    pub fn try_subscribe_each(&self, filters: &[(String, u8)]) -> Result<(), String> {
        self.try_send(Request::Subscribe(filters.to_vec()))
    }

    /// Queues an UNSUBSCRIBE for one filter without waiting.
    pub fn try_unsubscribe(&self, filter: &str) -> Result<(), String> {
        self.try_send(Request::Unsubscribe(filter.to_string()))
    }

    /// Queues a DISCONNECT without waiting.
    pub fn try_disconnect(&self) {
        let _ = self.try_send(Request::Disconnect);
    }
}
