//! The compaction policy: a pure function from segment metadata to a choice.
//!
//! Two rules, in this order:
//!
//! 1. **Tombstones.** A segment whose deleted fraction reaches
//!    [`PolicyOptions::tombstone_ratio`] is rewritten alone (its live rows only). With the
//!    default 0.2 no segment carries more than a quarter of its live bytes in dead rows,
//!    which bounds space amplification near 1.25× and keeps graphs mostly live.
//! 2. **Size tiers.** Segments are grouped by live rows into tiers that grow by a factor
//!    of [`PolicyOptions::fanout`] from [`PolicyOptions::min_tier_rows`]. When a tier holds
//!    `fanout` segments, its members (the smallest [`PolicyOptions::max_inputs`] of them)
//!    are merged into one, which lands in a higher tier. After the policy has nothing to do,
//!    each tier holds fewer than `fanout` segments, so a store of `n` rows has at most
//!    `(fanout − 1) · (1 + log_fanout(n / min_tier_rows))` segments.
//!
//! The lowest tier is chosen first: small merges are cheap and remove the most segments
//! per byte written.

/// What the policy knows about one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentMeta {
    /// The segment's file number (its identity).
    pub file_no: u64,
    /// Rows stored.
    pub rows: u64,
    /// Rows marked deleted.
    pub deleted: u64,
    /// Bytes of the segment file.
    pub bytes: u64,
}

impl SegmentMeta {
    /// Rows not deleted.
    pub fn live(&self) -> u64 {
        self.rows.saturating_sub(self.deleted)
    }

    /// Deleted fraction of the rows (0 for an empty segment).
    pub fn tombstone_ratio(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.deleted.min(self.rows) as f64 / self.rows as f64
        }
    }
}

/// Tunables of [`choose`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyOptions {
    /// Segments per tier that trigger a merge, and the size ratio between tiers (≥ 2).
    pub fanout: usize,
    /// Deleted fraction at which a segment is rewritten (0 < ratio ≤ 1).
    pub tombstone_ratio: f64,
    /// Live rows at or below which every segment is in the lowest tier.
    pub min_tier_rows: u64,
    /// Most segments one merge reads (≥ 2).
    pub max_inputs: usize,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            fanout: 4,
            tombstone_ratio: 0.2,
            min_tier_rows: 4096,
            max_inputs: 16,
        }
    }
}

/// Why a compaction was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// One segment with too many deleted rows, rewritten with its live rows only.
    Tombstones,
    /// Segments of one size tier merged (tier 0 is the smallest).
    Tier(u32),
    /// Everything into one segment ([`choose_full`]).
    Full,
}

/// A compaction to run: merge `inputs` (file numbers) into one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Segments to merge, in the order given to the policy.
    pub inputs: Vec<u64>,
    /// Why.
    pub reason: Reason,
}

/// The size tier of a segment with `live` rows.
pub fn tier(live: u64, o: &PolicyOptions) -> u32 {
    let fanout = o.fanout.max(2) as u64;
    let mut bound = o.min_tier_rows.max(1);
    let mut t = 0;
    while live > bound {
        bound = bound.saturating_mul(fanout);
        t += 1;
    }
    t
}

/// The next compaction for `segments`, or `None` when the store is in shape.
pub fn choose(segments: &[SegmentMeta], o: &PolicyOptions) -> Option<Choice> {
    let ratio = o.tombstone_ratio.clamp(f64::MIN_POSITIVE, 1.0);
    let worst = segments
        .iter()
        .filter(|s| s.deleted > 0 && s.tombstone_ratio() >= ratio)
        .max_by(|a, b| a.tombstone_ratio().total_cmp(&b.tombstone_ratio()));
    if let Some(s) = worst {
        return Some(Choice {
            inputs: vec![s.file_no],
            reason: Reason::Tombstones,
        });
    }
    let fanout = o.fanout.max(2);
    let mut tiers: std::collections::BTreeMap<u32, Vec<&SegmentMeta>> = Default::default();
    for s in segments {
        tiers.entry(tier(s.live(), o)).or_default().push(s);
    }
    let (&t, members) = tiers.iter_mut().find(|(_, m)| m.len() >= fanout)?;
    members.sort_by_key(|s| (s.live(), s.file_no));
    let mut inputs: Vec<u64> = members
        .iter()
        .take(o.max_inputs.max(2))
        .map(|s| s.file_no)
        .collect();
    // Report inputs in the caller's order.
    inputs.sort_by_key(|f| segments.iter().position(|s| s.file_no == *f));
    Some(Choice {
        inputs,
        reason: Reason::Tier(t),
    })
}

/// Everything into one segment: `None` when there is one segment without deleted rows
/// (or none at all).
pub fn choose_full(segments: &[SegmentMeta]) -> Option<Choice> {
    let needed = segments.len() > 1 || segments.iter().any(|s| s.deleted > 0);
    needed.then(|| Choice {
        inputs: segments.iter().map(|s| s.file_no).collect(),
        reason: Reason::Full,
    })
}

/// File numbers that [`plan`] gives to the outputs of planned merges, counting up.
pub const PLANNED_FILE_NO: u64 = 1 << 63;

/// Most steps [`plan`] takes (the policy converges far sooner; this is a guard).
pub const MAX_PLAN_STEPS: usize = 10_000;

/// One step of a [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// What would be merged.
    pub choice: Choice,
    /// Live rows of its output (0: the inputs vanish).
    pub live_rows: u64,
}

/// The compactions the policy would run from `segments`, in order (with `full`, the one
/// full merge), each applied to a copy as the engine would, and the segments left
/// afterwards. Planned outputs have no deleted rows and file numbers from
/// [`PLANNED_FILE_NO`] up.
pub fn plan(
    segments: &[SegmentMeta],
    o: &PolicyOptions,
    full: bool,
) -> (Vec<Planned>, Vec<SegmentMeta>) {
    let mut segs = segments.to_vec();
    let mut steps = Vec::new();
    while steps.len() < MAX_PLAN_STEPS {
        let choice = if full {
            choose_full(&segs)
        } else {
            choose(&segs, o)
        };
        let Some(choice) = choice else { break };
        let live_rows: u64 = segs
            .iter()
            .filter(|s| choice.inputs.contains(&s.file_no))
            .map(SegmentMeta::live)
            .sum();
        segs.retain(|s| !choice.inputs.contains(&s.file_no));
        if live_rows > 0 {
            segs.push(SegmentMeta {
                file_no: PLANNED_FILE_NO + steps.len() as u64,
                rows: live_rows,
                deleted: 0,
                bytes: 0,
            });
        }
        steps.push(Planned { choice, live_rows });
        if full {
            break;
        }
    }
    (steps, segs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(file_no: u64, rows: u64, deleted: u64) -> SegmentMeta {
        SegmentMeta {
            file_no,
            rows,
            deleted,
            bytes: rows * 100,
        }
    }

    #[test]
    fn tiers_grow_by_the_fanout() {
        let o = PolicyOptions::default();
        assert_eq!(tier(0, &o), 0);
        assert_eq!(tier(4096, &o), 0);
        assert_eq!(tier(4097, &o), 1);
        assert_eq!(tier(16_384, &o), 1);
        assert_eq!(tier(16_385, &o), 2);
        assert_eq!(tier(u64::MAX, &o), 26);
    }

    #[test]
    fn nothing_to_do_below_the_fanout() {
        let o = PolicyOptions::default();
        let s = [seg(1, 1000, 0), seg(2, 2000, 10), seg(3, 100_000, 0)];
        assert_eq!(choose(&s, &o), None);
        assert_eq!(choose(&[], &o), None);
    }

    #[test]
    fn a_full_tier_merges_its_smallest_members() {
        let o = PolicyOptions::default();
        let s = [
            seg(1, 1_000_000, 0),
            seg(2, 3000, 0),
            seg(3, 1000, 0),
            seg(4, 2000, 0),
            seg(5, 4000, 0),
            seg(6, 50_000, 0),
        ];
        assert_eq!(
            choose(&s, &o),
            Some(Choice {
                inputs: vec![2, 3, 4, 5],
                reason: Reason::Tier(0)
            })
        );
    }

    #[test]
    fn a_long_tier_is_merged_up_to_max_inputs() {
        let o = PolicyOptions {
            max_inputs: 6,
            ..PolicyOptions::default()
        };
        let s: Vec<_> = (1..=10).map(|i| seg(i, 100 + i, 0)).collect();
        let c = choose(&s, &o).unwrap();
        assert_eq!(c.inputs, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn tombstones_come_first_and_the_worst_segment_goes_alone() {
        let o = PolicyOptions::default();
        let s = [
            seg(1, 1000, 0),
            seg(2, 1000, 0),
            seg(3, 1000, 0),
            seg(4, 1000, 0),
            seg(7, 10_000, 2500),
            seg(8, 10_000, 9000),
            seg(9, 10_000, 1999),
        ];
        assert_eq!(
            choose(&s, &o),
            Some(Choice {
                inputs: vec![8],
                reason: Reason::Tombstones
            })
        );
    }

    #[test]
    fn full_compaction_only_when_it_changes_something() {
        assert_eq!(choose_full(&[]), None);
        assert_eq!(choose_full(&[seg(1, 10, 0)]), None);
        assert_eq!(
            choose_full(&[seg(1, 10, 1)]).map(|c| c.inputs),
            Some(vec![1])
        );
        assert_eq!(
            choose_full(&[seg(1, 10, 0), seg(2, 5, 0)]).map(|c| c.reason),
            Some(Reason::Full)
        );
    }

    proptest! {
        #[test]
        fn settled_stores_are_bounded_and_keep_every_live_row(
            sizes in prop::collection::vec((1u64..200_000, 0u64..100), 0..60),
        ) {
            let o = PolicyOptions::default();
            let segs: Vec<_> = sizes
                .iter()
                .enumerate()
                .map(|(i, &(rows, pct))| seg(i as u64 + 1, rows, rows * pct / 100))
                .collect();
            let live: u64 = segs.iter().map(SegmentMeta::live).sum();
            let (steps, after) = plan(&segs, &o, false);
            prop_assert!(steps.len() < MAX_PLAN_STEPS, "the policy does not converge");
            prop_assert_eq!(after.iter().map(SegmentMeta::live).sum::<u64>(), live);
            for s in &after {
                prop_assert!(s.tombstone_ratio() < o.tombstone_ratio);
            }
            let tiers = tier(live, &o) as usize + 1;
            prop_assert!(
                after.len() <= (o.fanout - 1) * tiers,
                "{} segments for {} live rows", after.len(), live
            );
        }
    }
}
