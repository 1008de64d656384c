//! Rows in another order than their ids (format 5 on): a segment whose rows were
//! written in graph order — so that a search's walk and its rerank candidates share
//! pages — keeps `IDS` in row order and adds `ID_ORDER`, its rows listed by ascending id.
//! Without `ID_ORDER` the rows are in id order, as in every earlier version. Everything
//! that needs ids in order (lookups by id, scans in id order, the highest id) goes
//! through the functions here.

use super::{first_unordered, SectionKind, SegmentReader};
use crate::codec::Reader;
use crate::error::{CorruptionKind, DecodeError};

/// Encodes `ID_ORDER` for `ids` in row order: their rows by ascending id. `None` when
/// the rows are already in id order (the section is then left out). Ids must be unique.
pub(super) fn encode(ids: &[u64]) -> Option<Vec<u8>> {
    first_unordered(ids)?;
    let mut rows: Vec<u32> = (0..ids.len() as u32).collect();
    rows.sort_unstable_by_key(|&r| ids.get(r as usize).copied().unwrap_or(u64::MAX));
    Some(rows.iter().flat_map(|r| r.to_le_bytes()).collect())
}

impl SegmentReader {
    /// `ID_ORDER` as `u32` rows, when the rows are not in id order.
    fn id_order(&self) -> Option<&[u32]> {
        if !self.sections.has(SectionKind::IdOrder) {
            return None;
        }
        bytemuck::try_cast_slice(self.section_bytes(SectionKind::IdOrder)).ok()
    }

    /// Whether rows are in ascending id order (no `ID_ORDER` section).
    pub fn rows_in_id_order(&self) -> bool {
        !self.sections.has(SectionKind::IdOrder)
    }

    /// The row holding the `rank`-th smallest id (`None` past the last row, or where a
    /// damaged `ID_ORDER` names no row).
    pub fn row_of_rank(&self, rank: usize) -> Option<usize> {
        match self.id_order() {
            None => (rank < self.rows()).then_some(rank),
            Some(order) => order
                .get(rank)
                .map(|&r| r as usize)
                .filter(|&r| r < self.rows()),
        }
    }

    /// The `rank`-th smallest id.
    fn id_of_rank(&self, rank: usize) -> Option<u64> {
        self.row_of_rank(rank)
            .and_then(|r| self.ids().get(r).copied())
    }

    /// How many of the segment's ids are at most `id`: the rank of the first id above it.
    pub fn rank_after(&self, id: u64) -> usize {
        let (mut lo, mut hi) = (0, self.rows());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.id_of_rank(mid).is_some_and(|x| x <= id) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The row holding `id`, by binary search of the ids in id order.
    pub fn find(&self, id: u64) -> Option<usize> {
        let rank = self.rank_after(id).checked_sub(1)?;
        (self.id_of_rank(rank) == Some(id))
            .then(|| self.row_of_rank(rank))
            .flatten()
    }

    /// The highest id in the segment.
    pub fn max_id(&self) -> Option<u64> {
        self.id_of_rank(self.rows().checked_sub(1)?)
    }

    /// Checks that the ids are strictly ascending in id order: along `ID_ORDER` (which
    /// must list every row once) when present, else in row order.
    pub(super) fn verify_id_order(&self) -> std::result::Result<(), DecodeError> {
        let ids_at = self.section(SectionKind::Ids).range.start;
        let Some(order) = self.id_order() else {
            return match first_unordered(self.ids()) {
                Some(i) => Err(Reader::fault_at(
                    ids_at + 8 * (i as u64 + 1),
                    CorruptionKind::Invalid("id order"),
                )),
                None => Ok(()),
            };
        };
        let at = self.section(SectionKind::IdOrder).range.start;
        let mut prev: Option<u64> = None;
        for (i, &row) in order.iter().enumerate() {
            let id = self.ids().get(row as usize).copied();
            match (id, prev) {
                (Some(id), Some(p)) if id > p => prev = Some(id),
                (Some(id), None) => prev = Some(id),
                _ => {
                    return Err(Reader::fault_at(
                        at + 4 * i as u64,
                        CorruptionKind::Invalid("id order"),
                    ))
                }
            }
        }
        Ok(())
    }
}
