//! [`VecPool`]: emptied vectors carried back from where they are consumed
//! to where they are filled, so that a pipeline stage which hands a batch
//! per round to another task does not allocate a vector per round. A batch
//! of a few hundred items is a large request for glibc's allocator, which
//! sweeps its fast bins before serving one (`malloc_consolidate` was 2-4%
//! of the MQTT pipeline's profile before the pools).

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use parking_lot::Mutex;

/// Emptied vectors kept for reuse: at most `keep` of them, none with room
/// for more than `max_capacity` items (a rare large batch is freed).
pub struct VecPool<T> {
    spares: Arc<Mutex<Vec<Vec<T>>>>,
    keep: usize,
    max_capacity: usize,
}

impl<T> Clone for VecPool<T> {
    fn clone(&self) -> Self {
        VecPool {
            spares: self.spares.clone(),
            keep: self.keep,
            max_capacity: self.max_capacity,
        }
    }
}

impl<T> fmt::Debug for VecPool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VecPool")
            .field("spares", &self.spares.lock().len())
            .field("keep", &self.keep)
            .finish()
    }
}

impl<T> VecPool<T> {
    pub fn new(keep: usize, max_capacity: usize) -> VecPool<T> {
        VecPool {
            spares: Arc::default(),
            keep,
            max_capacity,
        }
    }

    /// An empty vector: a kept one when there is one.
    pub fn take(&self) -> Vec<T> {
        self.spares.lock().pop().unwrap_or_default()
    }

    /// Empties `v` (its items are dropped here) and keeps it if there is
    /// room in the pool.
    pub fn give(&self, mut v: Vec<T>) {
        if v.capacity() == 0 || v.capacity() > self.max_capacity {
            return;
        }
        v.clear();
        let mut spares = self.spares.lock();
        if spares.len() < self.keep {
            spares.push(v);
        }
    }

    /// Vectors kept now.
    pub fn kept(&self) -> usize {
        self.spares.lock().len()
    }
}

/// A batch that gives its vector back to its pool when dropped: shared
/// (`Arc<Pooled<T>>`) by several consumers, the last one to drop it
/// returns the vector.
pub struct Pooled<T> {
    items: Vec<T>,
    pool: Option<VecPool<T>>,
}

impl<T> Pooled<T> {
    pub fn new(items: Vec<T>, pool: &VecPool<T>) -> Pooled<T> {
        Pooled {
            items,
            pool: Some(pool.clone()),
        }
    }
}

impl<T> From<Vec<T>> for Pooled<T> {
    /// A batch whose vector is simply freed.
    fn from(items: Vec<T>) -> Self {
        Pooled { items, pool: None }
    }
}

impl<T> Deref for Pooled<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T: fmt::Debug> fmt::Debug for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.items.fmt(f)
    }
}

impl<T> Drop for Pooled<T> {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give(std::mem::take(&mut self.items));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_given_back_is_taken_again_emptied() {
        let pool: VecPool<Arc<u32>> = VecPool::new(2, 100);
        let mut v = pool.take();
        assert_eq!(v.capacity(), 0);
        let item = Arc::new(7);
        v.extend((0..50).map(|_| item.clone()));
        let at = v.as_ptr();
        pool.give(v);
        // Its items are dropped at once, not when it is taken again.
        assert_eq!(Arc::strong_count(&item), 1);
        let v = pool.take();
        assert!(v.is_empty());
        assert_eq!(v.as_ptr(), at);
        assert!(v.capacity() >= 50);
    }

    #[test]
    fn the_pool_keeps_few_and_no_large_ones() {
        let pool: VecPool<u8> = VecPool::new(2, 100);
        for _ in 0..5 {
            pool.give(Vec::with_capacity(10));
        }
        assert_eq!(pool.kept(), 2);
        let _ = (pool.take(), pool.take());
        pool.give(Vec::with_capacity(101));
        pool.give(Vec::new());
        assert_eq!(pool.kept(), 0);
    }

    #[test]
    fn a_shared_batch_goes_back_when_its_last_holder_drops_it() {
        let pool: VecPool<u8> = VecPool::new(4, 100);
        let batch = Arc::new(Pooled::new(vec![1, 2, 3], &pool));
        let other = batch.clone();
        assert_eq!(&other[..], &[1, 2, 3]);
        drop(batch);
        assert_eq!(pool.kept(), 0);
        drop(other);
        assert_eq!(pool.kept(), 1);
        drop(Pooled::from(vec![1u8]));
        assert_eq!(pool.kept(), 1);
    }
}
