//! The sink's publish path: a batch handed to the connection (queued at
//! once while its queue has room), then confirmed by the broker's
//! acknowledgements at QoS >= 1.

use super::*;

impl MqttSink {
    /// Publishes a batch on `topic`, or on `resendDestination` for
    /// `resend` (when set); waits for the broker's acknowledgements at QoS >= 1.
    pub(super) async fn publish(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
        resend: bool,
    ) -> Result<(), ConnectorError> {
        let sent = self.hand_off(ctx, items, resend).await?;
        self.confirm(ctx, sent).await
    }

    /// Hands a batch's publishes to the connection (waiting only for room
    /// in its queue).
    pub(super) async fn hand_off(
        &mut self,
        ctx: &SinkContext,
        items: &[SinkItem],
        resend: bool,
    ) -> Result<Sent, ConnectorError> {
        let topic_tpl = match (&self.resend_topic, resend) {
            (Some(t), true) => t,
            _ => &self.topic,
        };
        let (client, acks, _) = self.connection()?;
        if let Some(m) = down_now(&self.shared, &self.link) {
            return Err(ConnectorError::Unavailable(m));
        }
        let mut span: Option<Span> = None;
        let static_topic: Option<Arc<str>> = topic_tpl.static_text().map(|t| Arc::from(t.as_ref()));
        // An item whose topic cannot be rendered, or that is too large for
        // one MQTT packet, is not published; the others are, and the first
        // such error is reported at the end.
        let mut bad_topic: Option<ConnectorError> = None;
        for it in items {
            let topic = match &static_topic {
                Some(t) => t.clone(),
                None => match topic_tpl.render(&it.data) {
                    Ok(t) if t.is_empty() || t.contains(['+', '#']) => {
                        bad_topic.get_or_insert(ConnectorError::InvalidData(format!(
                            "mqtt: rendered topic {t:?} is empty or has wildcards"
                        )));
                        continue;
                    }
                    Ok(t) => Arc::from(t),
                    Err(e) => {
                        bad_topic.get_or_insert(e);
                        continue;
                    }
                },
            };
            if let Some(why) =
                crate::mqtt::codec::publish_too_large(&topic, it.payload.len(), MAX_PACKET)
            {
                bad_topic.get_or_insert(ConnectorError::InvalidData(format!("mqtt: {why}")));
                continue;
            }
            // The common case: room in the connection's queue now. Nothing
            // is awaited: no timer armed, no waiter on the rule's stop.
            let order = if self.qos > 0 { acks.try_order() } else { None };
            let (topic, payload) = if self.qos == 0 || order.is_some() {
                match client.try_publish(topic, self.qos, self.retained, it.payload.clone()) {
                    Ok(()) => {
                        if let Some(o) = order {
                            span = Some(Span::extend(span, o.next()));
                        }
                        continue;
                    }
                    Err(None) => {
                        return Err(ConnectorError::unavailable(
                            "mqtt publish: the connection is closed",
                        ))
                    }
                    Err(Some(back)) => back,
                }
            } else {
                (topic, it.payload.clone())
            };
            drop(order);
            // Waiting for room: boxed, so that the large future of the
            // rare case does not make every batch's future large.
            let queued = Box::pin(self.queue_waiting(ctx, client, acks, topic, payload)).await?;
            if let Some(seq) = queued {
                span = Some(Span::extend(span, seq));
            }
        }
        Ok(Sent {
            span,
            bad: bad_topic,
        })
    }

    /// Queues one publish, waiting for room in the connection's queue (at
    /// most [`PUBLISH_TIMEOUT`], or until the rule stops); at QoS >= 1 its
    /// number in the order of hand-offs.
    async fn queue_waiting(
        &self,
        ctx: &SinkContext,
        client: &Client,
        acks: &Acks,
        topic: Arc<str>,
        payload: bytes::Bytes,
    ) -> Result<Option<u64>, ConnectorError> {
        let publish = client.publish(topic, self.qos, self.retained, payload);
        let handed = async {
            if self.qos > 0 {
                acks.hand_off(publish).await.map(Some)
            } else {
                publish.await.map(|()| None)
            }
        };
        tokio::select! {
            r = tokio::time::timeout(PUBLISH_TIMEOUT, handed) => match r {
                Ok(Ok(seq)) => Ok(seq),
                Ok(Err(e)) => Err(ConnectorError::Unavailable(format!("mqtt publish: {e}"))),
                Err(_) => Err(ConnectorError::unavailable("mqtt publish: timed out waiting for the connection")),
            },
            _ = ctx.cancel.cancelled() => Err(ConnectorError::unavailable("mqtt: the rule stopped before the batch was published")),
        }
    }

    /// The connection's client, acknowledgements and state.
    pub(super) fn connection(&self) -> Result<(&Client, &Arc<Acks>, DownWatch), ConnectorError> {
        if let Some(sh) = &self.shared {
            return Ok((
                sh.lease.client(),
                sh.lease.acks(),
                DownWatch::Shared(sh.lease.state()),
            ));
        }
        let Some(link) = &self.link else {
            return Err(ConnectorError::unavailable("mqtt sink is not connected"));
        };
        Ok((&link.client, &link.acks, DownWatch::Own(link.state.clone())))
    }

    /// Waits for the broker's acknowledgements of a handed-off batch.
    pub(super) async fn confirm(
        &mut self,
        ctx: &SinkContext,
        sent: Sent,
    ) -> Result<(), ConnectorError> {
        let Sent {
            span,
            bad: bad_topic,
        } = sent;
        let (_, acks, mut down) = self.connection()?;
        if let Some(span) = span {
            tokio::select! {
                // A batch acknowledged (or refused) before the connection
                // went down ends on its acknowledgements.
                biased;
                r = acks.wait(span, ACK_STALL) => match r {
                    Ok(()) => {}
                    Err(AckWait::Broken) => return Err(ConnectorError::unavailable(
                        "mqtt: connection lost before the broker acknowledged the batch",
                    )),
                    Err(AckWait::Refused(why)) => return Err(ConnectorError::Unavailable(format!(
                        "mqtt: the broker refused a publish of the batch: {why}"
                    ))),
                    Err(AckWait::Stalled(missing)) => {
                        return Err(ConnectorError::Unavailable(format!(
                            "mqtt: {missing} publish(es) not acknowledged by the broker within {ACK_STALL:?}"
                        )));
                    }
                },
                m = down.wait() => return Err(ConnectorError::Unavailable(format!(
                    "mqtt: connection lost before the broker acknowledged the batch: {m}"
                ))),
                _ = ctx.cancel.cancelled() => return Err(ConnectorError::unavailable(
                    "mqtt: the rule stopped before the broker acknowledged the batch",
                )),
            }
        }
        match bad_topic {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
