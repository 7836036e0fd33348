//! Transform + encode: turns the rows of a batch into sink items, building
//! only what the sink consumes ([`Consumes`]). Rows are encoded with the
//! schema-cached row encoder (`Encoder::append_each_row` / `encode_rows`);
//! a row map is built only for a template, `dataField`, a sink that reads
//! rows, or a dynamic property. The payload then goes through compression
//! and encryption ([`PayloadStage`]).

use bytes::Bytes;
use oort_core::codec::{self, EncodeOptions, Encoder};
use oort_core::{ConnectorError, Consumes, Row, SinkItem, Value};

use super::compress::PayloadStage;
use super::config::SinkCommon;
use super::template::Template;
use super::transform::{Transformed, ValueTransform};

/// The prepared transform, encode, compress and encrypt stages of one node.
pub struct Stages {
    send_single: bool,
    omit_if_empty: bool,
    encoder: Box<dyn Encoder>,
    values: ValueTransform,
    payload_stage: PayloadStage,
    want_payload: bool,
    want_data: bool,
    /// `data` is the result row before the transforms: the sink reads only
    /// the payload and wants the row for its dynamic properties, which
    /// eKuiper renders against the raw result.
    raw_data: bool,
    /// Reused row buffer (projected rows, or rows of an array payload that
    /// span emissions).
    scratch: Vec<Row>,
    /// Size of the last one-buffer encoding, to size the next one.
    last_len: usize,
    /// That buffer, taken back for the next batch once the sink dropped its
    /// payloads (saves a large allocation per batch).
    spare: Option<Bytes>,
    /// Reused payload end offsets in that buffer.
    ends: Vec<usize>,
    /// Rows dropped by failed shaping, not yet counted ([`Stages::take_failed`]).
    failed_rows: u64,
}

impl Stages {
    /// Validates and builds every stage; no IO. `dynamic_props`: a
    /// connector property is a template and needs the row.
    pub fn new(
        common: &SinkCommon,
        consumes: Consumes,
        dynamic_props: bool,
    ) -> Result<Stages, ConnectorError> {
        let encoder = codec::encoder(
            &common.format.to_ascii_lowercase(),
            &EncodeOptions {
                delimiter: (!common.delimiter.is_empty()).then(|| common.delimiter.clone()),
                has_header: common.has_header,
                proto: common.proto.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| ConnectorError::Config(format!("invalid property format: {e}")))?;
        let template = match common.data_template.as_str() {
            "" => None,
            t => Some(Template::compile(t)?),
        };
        let payload_stage = PayloadStage::new(
            &common.compression,
            common.compression_props.as_ref(),
            &common.encryption,
            common.enc_props.as_ref(),
        )?;
        if !consumes.payload() && !payload_stage.is_noop() {
            let key = if common.compression.is_empty() {
                "encryption"
            } else {
                "compression"
            };
            return Err(ConnectorError::Config(format!(
                "invalid property {key}: this sink consumes rows, not encoded bytes"
            )));
        }
        Ok(Stages {
            send_single: common.send_single,
            omit_if_empty: common.omit_if_empty,
            encoder,
            values: ValueTransform::new(common, template),
            payload_stage,
            want_payload: consumes.payload(),
            want_data: consumes.rows() || dynamic_props,
            raw_data: !consumes.rows() && dynamic_props,
            scratch: Vec::new(),
            last_len: 0,
            spare: None,
            ends: Vec::new(),
            failed_rows: 0,
        })
    }

    /// Shapes the rows of `parts` (consecutive slices of one batch) into
    /// items: one per row with `sendSingle`, else one for all of them. On an
    /// error the items that could be made are still pushed.
    pub fn shape(&mut self, parts: &[&[Row]], out: &mut Vec<SinkItem>) -> Result<(), String> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if self.omit_if_empty && total == 0 {
            return Ok(());
        }
        let first = out.len();
        let mut r = if self.values.needs_maps() {
            self.shape_maps(parts, out)
        } else {
            self.shape_rows(parts, out)
        };
        if !self.payload_stage.is_noop() {
            // An item whose compression or encryption fails is not sent.
            let mut i = first;
            while i < out.len() {
                match self
                    .payload_stage
                    .apply(std::mem::take(&mut out[i].payload))
                {
                    Ok(p) => {
                        out[i].payload = p;
                        i += 1;
                    }
                    Err(e) => {
                        out.remove(i);
                        if r.is_ok() {
                            r = Err(e);
                        }
                    }
                }
            }
        }
        // Rows that did not become an item are dropped: counted.
        let made = out.len() - first;
        let missing = if self.send_single {
            total.saturating_sub(made)
        } else if made == 0 {
            total
        } else {
            0
        };
        self.failed_rows += missing as u64;
        r
    }

    /// Shapes consecutive batches of `batch` rows (the last may be shorter)
    /// into `out`, pushing where each batch's items end to `ends` (a batch
    /// that made no item gets no end). Errors as for [`Self::shape`]; the
    /// items that could be made are still pushed. One row per item without
    /// a template or payload stage: all the batches are encoded in one pass
    /// into one buffer.
    pub fn shape_batches(
        &mut self,
        parts: &[&[Row]],
        batch: usize,
        out: &mut Vec<SinkItem>,
        ends: &mut Vec<usize>,
    ) -> Result<(), String> {
        let batch = batch.max(1);
        if self.send_single && !self.values.needs_maps() && self.payload_stage.is_noop() {
            // Item i is row i here: a failed encoding ends the pass, it
            // does not skip a row.
            let first = out.len();
            let r = self.shape(parts, out);
            let mut end = first;
            while end < out.len() {
                end = (end + batch).min(out.len());
                ends.push(end);
            }
            return r;
        }
        let mut failed = None;
        let mut chunk: Vec<&[Row]> = Vec::new();
        let mut rest = parts.iter().copied().filter(|p| !p.is_empty());
        let mut part: &[Row] = &[];
        loop {
            chunk.clear();
            let mut need = batch;
            while need > 0 {
                if part.is_empty() {
                    match rest.next() {
                        Some(p) => part = p,
                        None => break,
                    }
                }
                let k = part.len().min(need);
                chunk.push(&part[..k]);
                part = &part[k..];
                need -= k;
            }
            if chunk.is_empty() {
                break;
            }
            let before = out.len();
            if let Err(e) = self.shape(&chunk, out) {
                failed = Some(e);
            }
            if out.len() > before {
                ends.push(out.len());
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Rows dropped by failed shaping (a template or an encoding that
    /// failed) since the last call.
    pub fn take_failed(&mut self) -> u64 {
        std::mem::take(&mut self.failed_rows)
    }

    /// Template and/or `dataField`: on row maps.
    fn shape_maps(&mut self, parts: &[&[Row]], out: &mut Vec<SinkItem>) -> Result<(), String> {
        let rows = parts.iter().flat_map(|p| p.iter());
        let mut failed = None;
        if self.send_single {
            for r in rows {
                let v = r.to_value();
                match self.values.apply(v.clone()).and_then(|t| self.item(t)) {
                    Ok(mut it) => {
                        if self.raw_data {
                            it.data = v;
                        }
                        out.push(it)
                    }
                    Err(e) => failed = Some(e),
                }
            }
        } else {
            let arr: Vec<Value> = rows.map(Row::to_value).collect();
            let v = Value::Array(std::sync::Arc::new(arr));
            let mut it = self.values.apply(v.clone()).and_then(|t| self.item(t))?;
            if self.raw_data {
                it.data = v;
            }
            out.push(it);
        }
        failed.map_or(Ok(()), Err)
    }

    fn item(&self, t: Transformed) -> Result<SinkItem, String> {
        Ok(match t {
            Transformed::Text(text) => SinkItem {
                data: if self.want_data {
                    // A template that renders JSON is parsed back so row sinks see structure.
                    serde_json::from_str::<serde_json::Value>(&text)
                        .map(|j| Value::from_json(&j))
                        .unwrap_or_else(|_| Value::str(&text))
                } else {
                    Value::Null
                },
                payload: if self.want_payload {
                    Bytes::from(text)
                } else {
                    Bytes::new()
                },
            },
            Transformed::Value(v) => SinkItem {
                payload: if self.want_payload {
                    self.encoder.encode(&v).map_err(|e| e.to_string())?
                } else {
                    Bytes::new()
                },
                data: if self.want_data { v } else { Value::Null },
            },
        })
    }

    /// No template or `dataField`: rows (projected for `fields`/`excludeFields`).
    fn shape_rows(&mut self, parts: &[&[Row]], out: &mut Vec<SinkItem>) -> Result<(), String> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let projected = !self.values.projection.is_all();
        if projected {
            for r in parts.iter().flat_map(|p| p.iter()) {
                scratch.push(self.values.projection.row(r));
            }
        } else if !self.send_single && parts.len() > 1 {
            scratch.extend(parts.iter().flat_map(|p| p.iter()).cloned());
        }
        let own: [&[Row]; 1] = [&scratch[..]];
        let whole: &[&[Row]] = if projected || (!self.send_single && parts.len() > 1) {
            &own
        } else {
            parts
        };
        let r = if self.send_single {
            let first = out.len();
            let rows = || whole.iter().flat_map(|p| p.iter());
            let r = if self.want_payload {
                self.encode_each(&mut rows(), out)
            } else {
                out.extend(rows().map(|_| SinkItem {
                    data: Value::Null,
                    payload: Bytes::new(),
                }));
                Ok(())
            };
            if self.raw_data {
                let raw = parts.iter().flat_map(|p| p.iter());
                for (it, row) in out[first..].iter_mut().zip(raw) {
                    it.data = row.to_value();
                }
            } else if self.want_data {
                for (it, row) in out[first..].iter_mut().zip(rows()) {
                    it.data = row.to_value();
                }
            }
            r
        } else {
            let rows: &[Row] = whole.first().copied().unwrap_or(&[]);
            let payload = if self.want_payload {
                self.encoder.encode_rows(rows).map_err(|e| e.to_string())
            } else {
                Ok(Bytes::new())
            };
            match payload {
                Ok(payload) => {
                    let data = if self.raw_data {
                        let raw = parts.iter().flat_map(|p| p.iter());
                        Value::Array(std::sync::Arc::new(raw.map(Row::to_value).collect()))
                    } else if self.want_data {
                        Value::Array(std::sync::Arc::new(
                            rows.iter().map(Row::to_value).collect(),
                        ))
                    } else {
                        Value::Null
                    };
                    out.push(SinkItem { data, payload });
                    Ok(())
                }
                Err(e) => Err(e),
            }
        };
        scratch.clear();
        self.scratch = scratch;
        r
    }

    /// One payload per row, all encoded into one buffer and handed out as
    /// slices of it: no allocation per row, and the buffer itself is reused
    /// once the sink has dropped the previous batch's payloads.
    fn encode_each(
        &mut self,
        rows: &mut dyn Iterator<Item = &Row>,
        out: &mut Vec<SinkItem>,
    ) -> Result<(), String> {
        let mut buf = self
            .spare
            .take()
            .and_then(|b| b.try_into_mut().ok())
            .map(Vec::from)
            .unwrap_or_default();
        buf.clear();
        buf.reserve(self.last_len.max(64));
        self.ends.clear();
        let failed = self
            .encoder
            .append_each_row(rows, &mut buf, &mut self.ends)
            .err()
            .map(|e| e.to_string());
        self.last_len = buf.len();
        let buf = Bytes::from(buf);
        let mut start = 0;
        for &end in &self.ends {
            out.push(SinkItem {
                data: Value::Null,
                payload: buf.slice(start..end),
            });
            start = end;
        }
        self.spare = Some(buf);
        failed.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oort_core::Schema;
    use std::sync::Arc;

    fn rows(from: i64, n: usize) -> Vec<Row> {
        let schema = Arc::new(Schema::from_strs(&["id", "t"]));
        (0..n as i64)
            .map(|i| Row::new(schema.clone(), vec![Value::Int(from + i), Value::str("x")]))
            .collect()
    }

    fn stages(v: serde_json::Value, consumes: Consumes) -> Stages {
        let c = SinkCommon::from_props(v.as_object().unwrap()).unwrap();
        Stages::new(&c, consumes, false).unwrap()
    }

    #[test]
    fn encode_buffer_is_reused_once_payloads_are_dropped() {
        let mut sh = stages(serde_json::json!({"sendSingle": true}), Consumes::Payload);
        let batch = rows(0, 8);
        let mut items = Vec::new();
        sh.shape(&[&batch[..]], &mut items).unwrap();
        let first = items[0].payload.as_ptr();
        let kept = items[0].payload.clone();
        items.clear();
        // A payload still held elsewhere: a fresh buffer, the old bytes intact.
        sh.shape(&[&batch[..]], &mut items).unwrap();
        assert_ne!(items[0].payload.as_ptr(), first);
        assert_eq!(&kept[..], br#"{"id":0,"t":"x"}"#);
        drop(kept);
        let second = items[0].payload.as_ptr();
        items.clear();
        sh.shape(&[&batch[1..]], &mut items).unwrap();
        assert_eq!(items[0].payload.as_ptr(), second);
        assert_eq!(&items[0].payload[..], br#"{"id":1,"t":"x"}"#);
        assert_eq!(items.len(), 7);
    }

    #[test]
    fn batches_are_cut_the_same_in_one_pass_or_one_by_one() {
        let all = rows(0, 5);
        let parts: [&[Row]; 2] = [&all[..3], &all[3..]];
        // One row per item: one pass, cut every 2 items.
        let mut sh = stages(serde_json::json!({"sendSingle": true}), Consumes::Payload);
        let (mut items, mut ends) = (Vec::new(), Vec::new());
        sh.shape_batches(&parts, 2, &mut items, &mut ends).unwrap();
        assert_eq!(ends, [2, 4, 5]);
        assert_eq!(&items[3].payload[..], br#"{"id":3,"t":"x"}"#);
        // A batch per item: shaped one by one across the parts.
        let mut sh = stages(serde_json::json!({}), Consumes::Payload);
        let (mut items, mut ends) = (Vec::new(), Vec::new());
        sh.shape_batches(&parts, 2, &mut items, &mut ends).unwrap();
        assert_eq!(ends, [1, 2, 3]);
        assert_eq!(
            &items[1].payload[..],
            br#"[{"id":2,"t":"x"},{"id":3,"t":"x"}]"#
        );
    }

    #[test]
    fn only_what_the_sink_consumes_is_built() {
        let batch = rows(0, 2);
        for (consumes, payload, data) in [
            (Consumes::Payload, true, false),
            (Consumes::Rows, false, true),
            (Consumes::Both, true, true),
        ] {
            for props in [
                serde_json::json!({"sendSingle": true}),
                serde_json::json!({}),
                serde_json::json!({"fields": ["t"]}),
                serde_json::json!({"dataField": "t", "sendSingle": true}),
            ] {
                let mut sh = stages(props.clone(), consumes);
                let mut items = Vec::new();
                sh.shape(&[&batch[..1], &batch[1..]], &mut items).unwrap();
                for it in &items {
                    assert_eq!(!it.payload.is_empty(), payload, "{consumes:?} {props}");
                    assert_eq!(!it.data.is_null(), data, "{consumes:?} {props}");
                }
            }
        }
    }

    #[test]
    fn fields_project_rows_without_maps() {
        let mut sh = stages(
            serde_json::json!({"fields": ["t", "nope"]}),
            Consumes::Payload,
        );
        let batch = rows(0, 2);
        let mut items = Vec::new();
        sh.shape(&[&batch[..]], &mut items).unwrap();
        assert_eq!(
            &items[0].payload[..],
            br#"[{"nope":null,"t":"x"},{"nope":null,"t":"x"}]"#
        );
    }

    #[test]
    fn compression_needs_a_payload_sink() {
        let c = SinkCommon::from_props(
            serde_json::json!({"compression": "gzip"})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let e = Stages::new(&c, Consumes::Rows, false).err().unwrap();
        assert!(e.to_string().contains("compression"), "{e}");
        let mut sh = Stages::new(&c, Consumes::Payload, false).unwrap();
        let batch = rows(0, 1);
        let mut items = Vec::new();
        sh.shape(&[&batch[..]], &mut items).unwrap();
        assert_eq!(&items[0].payload[..2], &[0x1f, 0x8b], "gzip magic");
    }

    #[test]
    fn dynamic_props_see_the_row_before_the_transforms() {
        let c = SinkCommon::from_props(
            serde_json::json!({"sendSingle": true, "fields": ["t"]})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let mut sh = Stages::new(&c, Consumes::Payload, true).unwrap();
        let batch = rows(5, 1);
        let mut items = Vec::new();
        sh.shape(&[&batch[..]], &mut items).unwrap();
        assert_eq!(&items[0].payload[..], br#"{"t":"x"}"#);
        assert_eq!(
            items[0].data.to_json(),
            serde_json::json!({"id": 5, "t": "x"})
        );
    }
}
