//! Reading the frames a read brought: the length of the next whole frame,
//! runs of PUBLISH frames cut from one reusable chunk, and the other
//! packets' effect on the connection's state.

use super::*;

impl EventLoop {
    /// The length of the next whole frame in the read buffer, if there is one.
    pub(super) fn frame(&self) -> Result<Option<usize>, String> {
        self.frame_within(self.max_packet)
    }

    pub(super) fn frame_within(&self, max: usize) -> Result<Option<usize>, String> {
        match codec::frame_len(&self.rbuf, max) {
            Ok(n) if n <= self.rbuf.len() => Ok(Some(n)),
            Ok(_) | Err(codec::FrameError::Incomplete) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Handles every whole frame in the read buffer.
    pub(super) fn read_frames(&mut self) -> Result<(), String> {
        while let Some(n) = self.frame()? {
            if !codec::is_publish(self.rbuf[0]) {
                let frame = self.rbuf.split_to(n);
                let got = self.read_other(frame)?;
                self.on_packet(got)?;
                continue;
            }
            // The whole PUBLISH frames at the head of the buffer are copied
            // out in one piece, each message a view into it, while the read
            // buffer is reused in place. The pieces are cut from one chunk
            // (`runs`), which is reused from its start once every message
            // cut from it is gone (they are dropped once decoded): no
            // allocation per message, and none per read, where a fresh
            // copy of a read would be a large allocation each time (for
            // glibc, a sweep of its free small chunks).
            // A run larger than the chunk (large messages) gets a copy of
            // its own, so the chunk stays at its size.
            let end = self.publish_run(n);
            let mut run = if end > RUN_CHUNK {
                Bytes::copy_from_slice(&self.rbuf[..end])
            } else {
                if self.runs.capacity() < end {
                    self.runs.reserve(RUN_CHUNK);
                }
                self.runs.extend_from_slice(&self.rbuf[..end]);
                self.runs.split().freeze()
            };
            self.rbuf.advance(end);
            while !run.is_empty() {
                let m = codec::frame_len(&run, usize::MAX).map_err(|e| e.to_string())?;
                let p = codec::read_publish(self.version, run.split_to(m))
                    .map_err(|e| e.to_string())?;
                if !self.session.manual_acks {
                    match p.qos {
                        1 => self.put_simple(Simple::PubAck(p.pkid))?,
                        2 => self.put_simple(Simple::PubRec(p.pkid))?,
                        _ => {}
                    }
                }
                self.events.push_back(Ev::Publish {
                    topic: p.topic,
                    payload: p.payload,
                    qos: p.qos,
                    pkid: p.pkid,
                });
            }
        }
        Ok(())
    }

    /// Where the run of whole PUBLISH frames that starts the read buffer
    /// ends (`first` is the first frame's length). A frame that is not a
    /// PUBLISH, is incomplete or is refused ends the run; the next call of
    /// [`Self::frame`] then deals with it.
    fn publish_run(&self, first: usize) -> usize {
        let mut end = first;
        while end < self.rbuf.len() && codec::is_publish(self.rbuf[end]) {
            match codec::frame_len(&self.rbuf[end..], self.max_packet) {
                Ok(m) if end + m <= self.rbuf.len() => end += m,
                _ => break,
            }
        }
        end
    }

    fn on_packet(&mut self, p: In) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        match p {
            In::Refused(id, why) => {
                let slot = &mut conn.ids[id as usize];
                if *slot != FREE {
                    *slot = FREE;
                    conn.inflight -= 1;
                    self.events.push_back(Ev::Refused(id, why));
                }
            }
            In::PubAck(id) | In::PubComp(id) => {
                let slot = &mut conn.ids[id as usize];
                if *slot != FREE {
                    *slot = FREE;
                    conn.inflight -= 1;
                    self.events.push_back(Ev::Acked(id));
                }
            }
            In::PubRec(id) => {
                if conn.ids[id as usize] == AWAIT_ACK {
                    conn.ids[id as usize] = AWAIT_COMP;
                }
                self.put_simple(Simple::PubRel(id))?;
            }
            In::PubRel(id) => self.put_simple(Simple::PubComp(id))?,
            In::SubAck { refused } => self.events.push_back(Ev::SubAck { refused }),
            In::PingResp => conn.ping_out = false,
            In::Disconnect(why) => return Err(format!("the broker disconnected: {why}")),
            In::Other => {}
        }
        Ok(())
    }
}
