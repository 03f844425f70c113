//! Counters of the cache, one set per node, and their snapshot for `mountctl status`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one shard; every field only grows except the resident bytes.
#[derive(Debug, Default)]
pub struct NodeCounters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) unit_hits: AtomicU64,
    pub(super) unit_misses: AtomicU64,
    pub(super) ahead_generated: AtomicU64,
    pub(super) ahead_used: AtomicU64,
    pub(super) ahead_wasted: AtomicU64,
    pub(super) resident: AtomicU64,
}

impl NodeCounters {
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A consistent-enough copy for display: each counter is read once.
    pub fn snapshot(&self) -> NodeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NodeStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            unit_hits: get(&self.unit_hits),
            unit_misses: get(&self.unit_misses),
            ahead_generated: get(&self.ahead_generated),
            ahead_used: get(&self.ahead_used),
            ahead_wasted: get(&self.ahead_wasted),
            resident_bytes: get(&self.resident),
        }
    }
}

/// What one node's shard has done since the mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Block lookups answered by a block already cached or being generated ahead.
    pub hits: u64,
    /// Block lookups that generated the block on the reading thread.
    pub misses: u64,
    /// Dedup units copied from the unit store instead of generated.
    pub unit_hits: u64,
    /// Dedup units generated because the unit store did not hold them.
    pub unit_misses: u64,
    /// Blocks generated ahead by the node's pool.
    pub ahead_generated: u64,
    /// Blocks generated ahead that a read then used.
    pub ahead_used: u64,
    /// Blocks generated ahead and evicted before any read used them.
    pub ahead_wasted: u64,
    /// Bytes held in blocks and dedup units now.
    pub resident_bytes: u64,
}

impl NodeStats {
    /// The sum of two nodes' statistics.
    pub fn plus(self, o: NodeStats) -> NodeStats {
        NodeStats {
            hits: self.hits + o.hits,
            misses: self.misses + o.misses,
            unit_hits: self.unit_hits + o.unit_hits,
            unit_misses: self.unit_misses + o.unit_misses,
            ahead_generated: self.ahead_generated + o.ahead_generated,
            ahead_used: self.ahead_used + o.ahead_used,
            ahead_wasted: self.ahead_wasted + o.ahead_wasted,
            resident_bytes: self.resident_bytes + o.resident_bytes,
        }
    }

    /// Share of block lookups that hit, 0 to 1 (0 when there were none).
    pub fn hit_rate(&self) -> f64 {
        ratio(self.hits, self.hits + self.misses)
    }

    /// Share of dedup units served from the unit store, 0 to 1 (0 when there were none).
    pub fn unit_hit_rate(&self) -> f64 {
        ratio(self.unit_hits, self.unit_hits + self.unit_misses)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Statistics of a whole cache: per node, in shard order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheStats {
    /// One entry per node (shard).
    pub nodes: Vec<NodeStats>,
    /// The byte budget of the whole cache.
    pub capacity_bytes: u64,
}

impl CacheStats {
    /// All nodes added up.
    pub fn total(&self) -> NodeStats {
        self.nodes
            .iter()
            .fold(NodeStats::default(), |a, &b| a.plus(b))
    }
}
