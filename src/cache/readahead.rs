//! Sequential-read detection and the read-ahead window of one open file.
//!
//! [`Sequence`] is pure bookkeeping: told of each read, it answers which blocks should be
//! generated ahead. A read that starts where the previous one ended (or at offset 0) is
//! sequential: the window opens at one block and doubles with every further sequential
//! read, up to a cap, and is topped up in batches of half of it (a sleeping pool thread is
//! woken once per batch). Any other read collapses the window to zero, so a random reader
//! never causes read-ahead work. Blocks already asked for are not asked for again.
//!
//! With asynchronous direct I/O the kernel may have several reads of one file in flight,
//! and two session threads may take them out of order; a read that lands within the
//! current window of the expected offset therefore still counts as sequential.

use std::ops::Range;

/// Read-ahead state of one open file handle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sequence {
    /// Where the next sequential read would start, in bytes of the file.
    next: u64,
    /// Blocks to keep generated ahead of the reader; 0 when not sequential.
    window: u64,
    /// First block not yet handed out for read-ahead.
    ahead_to: u64,
}

/// The geometry a [`Sequence`] works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Block size in bytes.
    pub block: u64,
    /// Blocks in the file.
    pub file_blocks: u64,
    /// Largest window, in blocks.
    pub max_window: u64,
}

impl Sequence {
    /// Records a read of `len` bytes at `offset` and returns the blocks to generate ahead.
    pub fn on_read(&mut self, offset: u64, len: u64, geo: Geometry) -> Range<u64> {
        let end = offset.saturating_add(len);
        let near = self.window > 0 && offset.abs_diff(self.next) <= self.window * geo.block;
        let sequential = len > 0 && (offset == self.next || near);
        self.next = if sequential { end.max(self.next) } else { end };
        if !sequential || geo.max_window == 0 {
            self.window = 0;
            self.ahead_to = 0;
            return 0..0;
        }
        self.window = (self.window * 2).clamp(1, geo.max_window);

        let current = (offset + len - 1) / geo.block;
        let end = (current + 1 + self.window).min(geo.file_blocks);
        let start = (current + 1).max(self.ahead_to);
        // Top the window up in batches of half of it, so a sleeping pool thread is woken
        // once per batch rather than once per block.
        if end < geo.file_blocks && end.saturating_sub(start) < (self.window / 2).max(1) {
            return 0..0;
        }
        self.ahead_to = end.max(self.ahead_to);
        start..end.max(start)
    }

    /// The current window in blocks.
    pub fn window(&self) -> u64 {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GEO: Geometry = Geometry {
        block: 100,
        file_blocks: 1000,
        max_window: 8,
    };

    #[test]
    fn sequential_reads_open_and_grow_the_window() {
        let mut s = Sequence::default();
        assert_eq!(s.on_read(0, 100, GEO), 1..2);
        assert_eq!(s.on_read(100, 100, GEO), 2..4);
        assert_eq!(s.on_read(200, 100, GEO), 4..7);
        assert_eq!(s.on_read(300, 100, GEO), 7..12);
        assert_eq!(s.window(), 8);
        // Topped up only once half the window has been read.
        assert_eq!(s.on_read(400, 100, GEO), 0..0);
        assert_eq!(s.on_read(500, 100, GEO), 0..0);
        assert_eq!(s.on_read(600, 100, GEO), 0..0);
        assert_eq!(s.on_read(700, 100, GEO), 12..16);
    }

    #[test]
    fn small_reads_inside_a_block_ask_for_nothing_new() {
        let mut s = Sequence::default();
        assert_eq!(s.on_read(0, 10, GEO), 1..2);
        assert_eq!(s.on_read(10, 10, GEO), 2..3);
        assert_eq!(s.on_read(20, 10, GEO), 3..5);
        assert_eq!(s.on_read(30, 10, GEO), 5..9);
        assert_eq!(s.on_read(40, 10, GEO), 0..0);
    }

    #[test]
    fn random_reads_collapse_and_never_read_ahead() {
        let mut s = Sequence::default();
        s.on_read(0, 100, GEO);
        s.on_read(100, 100, GEO);
        assert_eq!(s.on_read(5000, 100, GEO), 0..0);
        assert_eq!(s.window(), 0);
        for offset in [700, 300, 90_000, 12, 4000] {
            assert_eq!(s.on_read(offset, 100, GEO), 0..0);
        }
        assert_eq!(s.on_read(4100, 100, GEO), 42..43);
    }

    #[test]
    fn reads_reordered_within_the_window_stay_sequential() {
        let mut s = Sequence::default();
        s.on_read(0, 100, GEO);
        s.on_read(100, 100, GEO);
        assert_eq!(s.on_read(300, 100, GEO), 4..8);
        assert_eq!(s.on_read(200, 100, GEO), 0..0);
        assert_eq!(s.window(), 8);
        assert_eq!(s.on_read(400, 100, GEO), 8..13);
    }

    #[test]
    fn the_window_stops_at_the_end_of_the_file() {
        let geo = Geometry {
            file_blocks: 3,
            ..GEO
        };
        let mut s = Sequence::default();
        assert_eq!(s.on_read(0, 100, geo), 1..2);
        assert_eq!(s.on_read(100, 100, geo), 2..3);
        assert_eq!(s.on_read(200, 100, geo), 3..3);
        assert_eq!(s.on_read(300, 0, geo), 0..0);
    }
}
