//! [`BatchRoom`]: the runtime's bound on messages a source has handed over
//! in batches and the runtime has not taken in yet.

use std::sync::Arc;

use tokio::sync::{Semaphore, TryAcquireError};
use tokio_util::sync::CancellationToken;

use crate::{RawBatch, VecPool};

/// Room for messages that come in batches ([`crate::SourceMsg::BytesBatch`]).
/// The queue between a source and the runtime holds a number of source
/// messages, and a batch takes one place there; this counts a batch by its
/// messages, so that a source that batches what one read brought queues no
/// more data than one that hands messages over one by one. The source side
/// takes room before sending a batch ([`crate::SourceContext::emit`]); the
/// runtime gives it back as it takes the batch from the queue.
///
/// It also carries emptied batch vectors back from the runtime to the
/// source ([`Self::recycle`], [`Self::vector`]; see [`VecPool`]).
#[derive(Clone, Debug)]
pub struct BatchRoom {
    permits: Arc<Semaphore>,
    messages: usize,
    spares: VecPool<(bytes::Bytes, Option<Arc<crate::Meta>>)>,
}

/// Emptied batch vectors kept for reuse, at most.
const SPARES: usize = 4;
/// A vector larger than this many messages is freed, not kept.
const SPARE_CAPACITY: usize = 1024;

impl BatchRoom {
    /// Room for `messages` messages in batches (at least 1).
    pub fn new(messages: usize) -> BatchRoom {
        let messages = messages.clamp(1, Semaphore::MAX_PERMITS);
        BatchRoom {
            permits: Arc::new(Semaphore::new(messages)),
            messages,
            spares: VecPool::new(SPARES, SPARE_CAPACITY),
        }
    }

    /// What a batch of `len` messages takes: a batch larger than the whole
    /// room takes all of it (it waits for an empty queue, not forever).
    fn weight(&self, len: usize) -> u32 {
        len.clamp(1, self.messages).try_into().unwrap_or(u32::MAX)
    }

    /// Takes room for a batch of `len` messages, waiting while the queue is
    /// full; false when `cancel` fired first.
    pub async fn take(&self, len: usize, cancel: &CancellationToken) -> bool {
        let n = self.weight(len);
        match self.permits.try_acquire_many(n) {
            Ok(p) => {
                p.forget();
                return true;
            }
            Err(TryAcquireError::Closed) => return false,
            Err(TryAcquireError::NoPermits) => {}
        }
        tokio::select! {
            p = self.permits.acquire_many(n) => match p {
                Ok(p) => {
                    p.forget();
                    true
                }
                Err(_) => false,
            },
            _ = cancel.cancelled() => false,
        }
    }

    /// Gives back the room of a batch of `len` messages taken in.
    pub fn give_back(&self, len: usize) {
        self.permits.add_permits(self.weight(len) as usize);
    }

    /// Keeps the vector of a batch taken in, emptied, for [`Self::vector`].
    pub fn recycle(&self, batch: RawBatch) {
        self.spares.give(batch);
    }

    /// An empty vector for a batch: a recycled one when there is one.
    pub fn vector(&self) -> RawBatch {
        self.spares.take()
    }

    /// Room left, in messages.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_until_the_runtime_gives_room_back() {
        let room = BatchRoom::new(100);
        let cancel = CancellationToken::new();
        assert!(room.take(60, &cancel).await);
        assert_eq!(room.available(), 40);
        // 60 more do not fit: the batch waits.
        let waiting = tokio::time::timeout(Duration::from_secs(1), room.take(60, &cancel)).await;
        assert!(waiting.is_err(), "a batch beyond the room must wait");
        room.give_back(60);
        assert!(room.take(60, &cancel).await);
        // A batch larger than the room takes all of it once it is free.
        room.give_back(60);
        assert!(room.take(500, &cancel).await);
        assert_eq!(room.available(), 0);
        room.give_back(500);
        assert_eq!(room.available(), 100);
        // A waiting batch gives up when cancelled.
        assert!(room.take(100, &cancel).await);
        cancel.cancel();
        assert!(!room.take(1, &cancel).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_source_context_counts_a_batch_by_its_messages() {
        use crate::{SourceContext, SourceMsg};
        let batch = |n: usize| {
            SourceMsg::BytesBatch(
                (0..n)
                    .map(|_| (bytes::Bytes::from_static(b"{}"), None))
                    .collect(),
            )
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let room = BatchRoom::new(10);
        let ctx =
            SourceContext::new("s", CancellationToken::new(), tx).with_batch_room(room.clone());
        assert!(ctx.emit(batch(8)).await);
        // The queue has 1,023 free places, but not room for 8 more messages.
        let second = tokio::time::timeout(Duration::from_secs(1), ctx.emit(batch(8))).await;
        assert!(second.is_err(), "the second batch must wait for room");
        // Single messages are bounded by the queue's places, not the room.
        assert!(ctx.emit_bytes(bytes::Bytes::from_static(b"{}"), None).await);
        let Some(SourceMsg::BytesBatch(first)) = rx.recv().await else {
            panic!("the first batch");
        };
        room.give_back(first.len());
        assert!(ctx.emit(batch(8)).await);
    }

    #[test]
    fn a_batch_vector_taken_in_goes_back_to_the_source_emptied() {
        use crate::SourceContext;
        let (tx, _rx) = tokio::sync::mpsc::channel(4);
        let room = BatchRoom::new(10);
        let ctx =
            SourceContext::new("s", CancellationToken::new(), tx).with_batch_room(room.clone());
        let mut v = ctx.batch_vector();
        assert_eq!(v.capacity(), 0);
        v.extend((0..100).map(|_| (bytes::Bytes::from_static(b"{}"), None)));
        let at = v.as_ptr();
        room.recycle(v);
        let v = ctx.batch_vector();
        assert!(v.is_empty());
        assert_eq!(v.as_ptr(), at);
        assert!(v.capacity() >= 100);
        // At most a few are kept, none too large (see `VecPool`'s tests).
        for _ in 0..10 {
            room.recycle(Vec::with_capacity(8));
        }
        assert_eq!(room.spares.kept(), SPARES);
        // Without a room (a wrapper's inner source) nothing is kept.
        let (tx, _rx) = tokio::sync::mpsc::channel(4);
        let plain = SourceContext::new("s", CancellationToken::new(), tx);
        assert_eq!(plain.batch_vector().capacity(), 0);
    }
}
