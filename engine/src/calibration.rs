//! Recall calibration: for each indexed segment, the recall@10 its two-stage search
//! reaches at each beam width of a fixed ladder, measured against exact answers on a
//! sample of queries; and the choice, per search, of the cheapest beam width whose
//! recall meets a target ([`crate::SearchOptions::target_recall`]).
//!
//! A segment is first calibrated on a sample of its own rows, each searched for as if
//! held out (a prior: queries of another population, for example text questions against
//! passage embeddings, can reach less recall at the same width, so a target is met with
//! a margin on it); once the store holds enough recent queries (sampled as they are
//! served, or handed to [`crate::Db::calibrate`]), on those. The tables and the query
//! sample persist in the store's `CALIBRATION` file (`docs/calibration.md`), which is
//! advisory: missing or damaged, it is rebuilt.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use strata_vfs::Vfs;

/// Results per calibration query: the recall a table holds is recall@10.
pub(crate) const CALIBRATION_K: usize = 10;

/// Beam widths a segment is calibrated at (the search interpolates between them).
pub(crate) const LADDER: [usize; 22] = [
    10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256, 320, 384, 512,
];

/// A calibration stops climbing the ladder once its mean recall reaches this.
pub(crate) const SATURATED: f64 = 0.999;

/// One-sided 95 % normal quantile: a width is chosen when the lower confidence bound of
/// its recall, not its mean, meets the target.
const Z: f64 = 1.645;

/// Recent queries a store keeps for calibration.
pub(crate) const SAMPLE_CAPACITY: usize = 256;

/// Recent queries needed before segments are calibrated on queries instead of rows.
pub(crate) const MIN_QUERIES: usize = 64;

/// One served query in this many is kept in the recent-query sample.
pub(crate) const SAMPLE_EVERY: u64 = 16;

/// The file name of a store's calibration.
pub(crate) const FILE_NAME: &str = "CALIBRATION";

const MAGIC: &[u8; 8] = b"STRACAL1";

/// What a calibration's queries were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibrationSource {
    /// A sample of the segment's rows, each searched for as if held out (a prior).
    Rows,
    /// Recent queries of the store.
    Queries,
}

/// Recall reached at one beam width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub ef: u32,
    /// Mean recall@10 over the calibration queries.
    pub mean: f32,
    /// Standard deviation of the per-query recall.
    pub sd: f32,
}

/// A segment's calibration: recall@10 per beam width, increasing widths.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Calibration {
    pub source: CalibrationSource,
    /// Queries measured.
    pub queries: u32,
    pub points: Vec<Point>,
}

impl Calibration {
    /// The calibration of per-query recalls `recalls[i]` measured at width `efs[i]`.
    pub fn from_recalls(source: CalibrationSource, efs: &[usize], recalls: &[Vec<f64>]) -> Self {
        let queries = recalls.first().map_or(0, Vec::len);
        let points = efs
            .iter()
            .zip(recalls)
            .map(|(&ef, r)| {
                let n = r.len().max(1) as f64;
                let mean = r.iter().sum::<f64>() / n;
                let var = r.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
                Point {
                    ef: ef as u32,
                    mean: mean as f32,
                    sd: var.sqrt() as f32,
                }
            })
            .collect();
        Calibration {
            source,
            queries: queries as u32,
            points,
        }
    }

    /// Lower confidence bound of the recall at point `p`.
    fn lower_bound(&self, p: &Point) -> f64 {
        let n = f64::from(self.queries.max(1));
        f64::from(p.mean) - Z * f64::from(p.sd) / n.sqrt()
    }

    /// The recall a search must be calibrated to reach for `target`: a calibration on
    /// rows is a prior that real queries can find harder (queries of another
    /// population), so it must leave half the target's miss rate (0.975 for 0.95), and
    /// never gives less than [`crate::SearchOptions::DEFAULT_EF`].
    fn required(&self, target: f64) -> f64 {
        match self.source {
            CalibrationSource::Queries => target,
            CalibrationSource::Rows => 1.0 - (1.0 - target) / 2.0,
        }
    }

    /// The smallest beam width whose recall meets `target` for `k` results: between two
    /// ladder widths, interpolated on their recalls; past the last one measured, the
    /// last one. Widths for `k` above 10 grow with `k`.
    pub fn ef_for(&self, target: f64, k: usize) -> usize {
        let need = self.required(target);
        let mut prev: Option<(f64, f64)> = None; // (ef, bound), bounds made non-decreasing
        let mut chosen = None;
        for p in &self.points {
            let bound = self
                .lower_bound(p)
                .max(prev.map_or(f64::NEG_INFINITY, |(_, b)| b));
            let ef = f64::from(p.ef);
            if bound >= need {
                chosen = Some(match prev {
                    Some((pe, pb)) if bound > pb => pe + (need - pb) / (bound - pb) * (ef - pe),
                    _ => ef,
                });
                break;
            }
            prev = Some((ef, bound));
        }
        let mut ef10 = chosen
            .or(prev.map(|(ef, _)| ef))
            .unwrap_or(crate::SearchOptions::DEFAULT_EF as f64)
            .ceil() as usize;
        if self.source == CalibrationSource::Rows {
            // A prior only ever widens the default search: until queries are known, a
            // store searches at least as well as without a calibration.
            ef10 = ef10.max(crate::SearchOptions::DEFAULT_EF);
        }
        if k > CALIBRATION_K {
            ef10.saturating_mul(k).div_ceil(CALIBRATION_K)
        } else {
            ef10.max(k)
        }
    }
}

/// A segment's calibration as [`crate::Db::calibration`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentCalibration {
    /// The segment's file number.
    pub segment: u64,
    /// Its rows (deleted ones included).
    pub rows: usize,
    /// What it was calibrated on.
    pub source: CalibrationSource,
    /// Calibration queries measured.
    pub queries: u32,
    /// Mean recall@10 per beam width measured, increasing widths.
    pub recall_at: Vec<(usize, f64)>,
    /// The width a search at [`crate::SearchOptions::DEFAULT_TARGET_RECALL`] uses for
    /// 10 results.
    pub default_ef: usize,
}

/// A segment's calibration cell, shared by every version holding the segment. Read on
/// every search and replaced by the idle-priority calibrator: lock-free, so that a
/// search never waits on a thread the scheduler may not run for a while.
pub(crate) type CalibrationCell = Arc<arc_swap::ArcSwapOption<Calibration>>;

/// Recent queries (normalised as searched), oldest first, at most
/// [`SAMPLE_CAPACITY`].
#[derive(Debug, Default)]
pub(crate) struct QuerySample {
    pub queries: VecDeque<Vec<f32>>,
    /// Queries added since open (or since the file was read).
    pub added: u64,
}

impl QuerySample {
    /// Adds `q`, dropping the oldest past capacity.
    pub fn push(&mut self, q: Vec<f32>) {
        if self.queries.len() == SAMPLE_CAPACITY {
            self.queries.pop_front();
        }
        self.queries.push_back(q);
        self.added += 1;
    }
}

/// A store's calibration state: the recent-query sample and the calibrator's wake-up.
#[derive(Debug, Default)]
pub(crate) struct CalibrationState {
    pub sample: Mutex<QuerySample>,
    /// Searches seen (which ones join the sample).
    served: AtomicU64,
    /// Set when there may be calibration work; the calibrator waits on `wake`.
    pub pending: Mutex<bool>,
    pub wake: Condvar,
    /// Held while the `CALIBRATION` file is written.
    pub persisting: Mutex<()>,
}

impl CalibrationState {
    /// Offers a served query (normalised) to the sample: one in [`SAMPLE_EVERY`] joins
    /// (skipped when the sample is locked: a search never waits for it).
    pub fn offer(&self, query: &[f32]) {
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        if n % SAMPLE_EVERY == SAMPLE_EVERY - 1 {
            let Some(mut s) = self.sample.try_lock() else {
                return;
            };
            s.push(query.to_vec());
            let enough = s.queries.len() >= MIN_QUERIES;
            drop(s);
            // Each time, not only at the count: a wake-up can be missed. A calibrator
            // with nothing to do only looks at each segment's cell.
            if enough {
                self.nudge();
            }
        }
    }

    /// Wakes the calibrator: a segment may lack a calibration, or the store closes.
    pub fn notify(&self) {
        *self.pending.lock() = true;
        self.wake.notify_all();
    }

    /// Wakes the calibrator without waiting for its lock (from a search): when the lock
    /// is taken, the calibrator is awake or wakes within a second anyway.
    pub fn nudge(&self) {
        if let Some(mut p) = self.pending.try_lock() {
            *p = true;
        }
        self.wake.notify_all();
    }

    /// Whether the sample holds enough queries to calibrate on.
    pub fn has_queries(&self) -> bool {
        self.sample.lock().queries.len() >= MIN_QUERIES
    }

    /// The sample's queries when there are enough to calibrate on.
    pub fn queries(&self) -> Option<Vec<Vec<f32>>> {
        let s = self.sample.lock();
        (s.queries.len() >= MIN_QUERIES).then(|| s.queries.iter().cloned().collect())
    }
}

/// The bytes of a `CALIBRATION` file holding `tables` and the query sample
/// (`docs/calibration.md`).
pub(crate) fn encode(
    dim: usize,
    tables: &[(u64, Arc<Calibration>)],
    sample: &QuerySample,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    out.extend_from_slice(&(tables.len() as u32).to_le_bytes());
    for (file_no, c) in tables {
        out.extend_from_slice(&file_no.to_le_bytes());
        out.push(match c.source {
            CalibrationSource::Rows => 0,
            CalibrationSource::Queries => 1,
        });
        out.extend_from_slice(&c.queries.to_le_bytes());
        out.extend_from_slice(&(c.points.len() as u32).to_le_bytes());
        for p in &c.points {
            out.extend_from_slice(&p.ef.to_le_bytes());
            out.extend_from_slice(&p.mean.to_le_bytes());
            out.extend_from_slice(&p.sd.to_le_bytes());
        }
    }
    let queries: Vec<&Vec<f32>> = sample.queries.iter().filter(|q| q.len() == dim).collect();
    out.extend_from_slice(&(queries.len() as u32).to_le_bytes());
    for q in queries {
        for x in q {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A decoded `CALIBRATION` file.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Decoded {
    pub tables: Vec<(u64, Calibration)>,
    pub queries: Vec<Vec<f32>>,
}

/// Why a `CALIBRATION` file was not used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unusable(pub &'static str);

/// Reads little-endian fields from a byte slice.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Unusable> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(Unusable("truncated"))?;
        self.0 = rest;
        Ok(*head)
    }
    fn u32(&mut self) -> Result<u32, Unusable> {
        self.take().map(u32::from_le_bytes)
    }
    fn f32(&mut self) -> Result<f32, Unusable> {
        self.take().map(f32::from_le_bytes)
    }
}

/// Parses a `CALIBRATION` file of a store of dimension `dim`.
pub(crate) fn decode(bytes: &[u8], dim: usize) -> Result<Decoded, Unusable> {
    let (body, crc) = bytes.split_last_chunk::<4>().ok_or(Unusable("truncated"))?;
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return Err(Unusable("checksum mismatch"));
    }
    let mut f = Fields(body);
    if &f.take::<8>()? != MAGIC {
        return Err(Unusable("not a calibration file"));
    }
    if f.u32()? as usize != dim {
        return Err(Unusable("written for another dimension"));
    }
    let mut out = Decoded::default();
    for _ in 0..f.u32()? {
        let file_no = u64::from_le_bytes(f.take()?);
        let source = match f.take::<1>()?[0] {
            0 => CalibrationSource::Rows,
            1 => CalibrationSource::Queries,
            _ => return Err(Unusable("unknown calibration source")),
        };
        let queries = f.u32()?;
        let n = f.u32()? as usize;
        if n > LADDER.len() {
            return Err(Unusable("more points than the ladder has"));
        }
        let mut points = Vec::with_capacity(n);
        for _ in 0..n {
            let p = Point {
                ef: f.u32()?,
                mean: f.f32()?,
                sd: f.f32()?,
            };
            let sane = LADDER.contains(&(p.ef as usize))
                && (0.0..=1.0).contains(&p.mean)
                && (0.0..=1.0).contains(&p.sd)
                && points.last().is_none_or(|q: &Point| q.ef < p.ef);
            if !sane {
                return Err(Unusable("a point out of range"));
            }
            points.push(p);
        }
        let c = Calibration {
            source,
            queries,
            points,
        };
        out.tables.push((file_no, c));
    }
    let nq = f.u32()? as usize;
    if nq > SAMPLE_CAPACITY {
        return Err(Unusable("more queries than a sample holds"));
    }
    for _ in 0..nq {
        let q = (0..dim).map(|_| f.f32()).collect::<Result<Vec<f32>, _>>()?;
        if q.iter().any(|x| !x.is_finite()) {
            return Err(Unusable("a query with a non-finite component"));
        }
        out.queries.push(q);
    }
    if !f.0.is_empty() {
        return Err(Unusable("trailing bytes"));
    }
    Ok(out)
}

/// Writes `dir`'s `CALIBRATION` file with `bytes` (atomically: the old file or the new
/// one).
pub(crate) fn store(fs: &dyn Vfs, dir: &Path, bytes: &[u8]) -> crate::Result<()> {
    strata_format::fsutil::write_atomic(fs, &dir.join(FILE_NAME), bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(source: CalibrationSource, means: &[f64]) -> Calibration {
        let recalls: Vec<Vec<f64>> = means.iter().map(|&m| vec![m; 100]).collect();
        Calibration::from_recalls(source, &LADDER[..means.len()], &recalls)
    }

    #[test]
    fn picks_the_first_width_meeting_the_target_and_interpolates() {
        // Widths 10, 12, 14, 16 with recalls 0.80, 0.90, 0.96, 0.99 (no spread).
        let c = table(CalibrationSource::Queries, &[0.80, 0.90, 0.96, 0.99]);
        assert_eq!(c.ef_for(0.80, 10), 10);
        assert_eq!(c.ef_for(0.955, 10), 14);
        // 0.92 lies a third of the way from 12 (0.90) to 14 (0.96): 12.67, rounded up.
        assert_eq!(c.ef_for(0.92, 10), 13);
        // Unreachable: the widest measured.
        assert_eq!(c.ef_for(0.999, 10), 16);
        // More results: wider in proportion; fewer: at least k.
        assert_eq!(c.ef_for(0.955, 40), 56);
        assert_eq!(c.ef_for(0.80, 1), 10);
        assert_eq!(c.ef_for(0.80, 3), 10);
    }

    #[test]
    fn a_calibration_on_rows_aims_higher_than_the_target_and_the_default() {
        let means = [
            0.50, 0.60, 0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.93, 0.935, 0.94, 0.945, 0.95,
            0.955, 0.96, 0.98, 0.99,
        ];
        let q = table(CalibrationSource::Queries, &means);
        let r = table(CalibrationSource::Rows, &means);
        // 0.938: between widths 56 (0.935) and 64 (0.94), at 60.8.
        assert_eq!(q.ef_for(0.938, 10), 61);
        // Rows: 0.938 needs 0.969, between 128 (0.96) and 160 (0.98), at 142.4.
        assert_eq!(r.ef_for(0.938, 10), 143);
        assert_eq!(q.ef_for(0.969, 10), 143);
        // A low target on rows: no narrower than the default width.
        assert_eq!(q.ef_for(0.5, 10), 10);
        assert_eq!(r.ef_for(0.5, 10), 128);
    }

    #[test]
    fn spread_and_few_queries_widen_the_choice() {
        let mut c = table(CalibrationSource::Queries, &[0.80, 0.90, 0.96, 0.99]);
        let exact = c.ef_for(0.95, 10);
        c.points[2].sd = 0.2;
        c.queries = 16; // bound at 14: 0.96 - 1.645 * 0.05 < 0.95
        assert!(c.ef_for(0.95, 10) > exact);
    }

    #[test]
    fn recall_that_drops_with_width_does_not_pick_the_dip() {
        let c = table(CalibrationSource::Queries, &[0.96, 0.94, 0.97]);
        assert_eq!(c.ef_for(0.95, 10), 10);
    }

    #[test]
    fn file_round_trips_and_rejects_damage() {
        let c = table(CalibrationSource::Rows, &[0.5, 0.75, 1.0]);
        let mut sample = QuerySample::default();
        sample.push(vec![1.0, 2.0]);
        sample.push(vec![3.0, 4.0]);
        let bytes = encode(2, &[(7, Arc::new(c.clone()))], &sample);
        let d = decode(&bytes, 2).unwrap();
        assert_eq!(d.tables, vec![(7, c)]);
        assert_eq!(d.queries, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        assert_eq!(
            decode(&bytes, 3),
            Err(Unusable("written for another dimension"))
        );
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(decode(&bad, 2).is_err(), "flipped byte {i} accepted");
        }
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n], 2).is_err(), "truncated to {n} accepted");
        }
    }

    /// `bytes` with its checksum computed again (so that a field, not the CRC, is tested).
    fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
        let n = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn every_field_out_of_range_is_refused_behind_a_valid_checksum() {
        let c = table(CalibrationSource::Queries, &[0.5, 0.75, 1.0]);
        let mut sample = QuerySample::default();
        sample.push(vec![1.0, 2.0]);
        let good = encode(2, &[(7, Arc::new(c))], &sample);
        assert!(decode(&resealed(good.clone()), 2).is_ok());
        // Offsets: magic 0..8, dim 8..12, tables 12..16, file_no 16..24, source 24,
        // queries 25..29, points 29..33, first point 33..45 (ef, mean, sd), then two
        // more points to 69, the sample count 69..73, one query 73..81, CRC.
        let set = |at: usize, v: &[u8]| {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(v);
            resealed(b)
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("magic", set(0, b"STRACAL9")),
            ("source", set(24, &[2])),
            ("points", set(29, &23u32.to_le_bytes())),
            ("off-ladder width", set(33, &11u32.to_le_bytes())),
            ("huge width", set(33, &u32::MAX.to_le_bytes())),
            ("widths not increasing", set(45, &10u32.to_le_bytes())),
            ("mean above 1", set(37, &1.5f32.to_le_bytes())),
            ("mean NaN", set(37, &f32::NAN.to_le_bytes())),
            ("sd below 0", set(41, &(-0.1f32).to_le_bytes())),
            ("sample too large", set(69, &257u32.to_le_bytes())),
            ("query not finite", set(73, &f32::INFINITY.to_le_bytes())),
            ("tables beyond the bytes", set(12, &1000u32.to_le_bytes())),
        ];
        for (what, bytes) in cases {
            assert!(decode(&bytes, 2).is_err(), "{what} accepted");
        }
        let mut trailing = good.clone();
        trailing.insert(good.len() - 4, 0);
        assert!(
            decode(&resealed(trailing), 2).is_err(),
            "trailing byte accepted"
        );
    }
}
