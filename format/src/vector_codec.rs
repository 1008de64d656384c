//! How a segment stores its full vectors (`VECTORS` section, format version 5 on):
//! `f32`, IEEE `f16`, or `int8` (8 bits per value, affine per dimension:
//! `x ≈ lo[j] + q · step[j]`, `q` in `0..=255`). The codec and its parameters are the
//! `VECTOR_CODEC` section (`docs/format.md`); segments of earlier versions hold `f32`.

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

use crate::codec::Reader;
use crate::error::{CorruptionKind, DecodeError};

/// The encoding of a store's full vectors. Chosen when the store is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum VectorCodec {
    /// 4 bytes per value, exact.
    #[default]
    F32,
    /// 2 bytes per value: IEEE half precision (11 significant bits; magnitudes above
    /// 65,504 are stored as ±65,504).
    F16,
    /// 1 byte per value: each dimension quantised to 256 evenly spaced levels between
    /// that dimension's minimum and maximum in the segment.
    Int8,
}

/// `f32` values stored little-endian in `bytes` (a whole number of them): viewed in place
/// where their alignment allows, else decoded into `scratch`.
#[inline]
pub fn f32_values<'a>(bytes: &'a [u8], scratch: &'a mut Vec<f32>) -> &'a [f32] {
    if cfg!(target_endian = "little") {
        if let Ok(v) = bytemuck::try_cast_slice(bytes) {
            return v;
        }
    }
    scratch.clear();
    scratch.resize(bytes.len() / 4, 0.0);
    decode_f32(bytes, scratch);
    scratch
}

/// Little-endian `f32` values of `bytes` into `dst` (as many as both hold).
fn decode_f32(bytes: &[u8], dst: &mut [f32]) {
    for (d, b) in dst.iter_mut().zip(bytes.chunks_exact(4)) {
        *d = f32::from_le_bytes(b.try_into().unwrap_or([0; 4]));
    }
}

/// Every codec, in code order.
pub const VECTOR_CODECS: [VectorCodec; 3] = [VectorCodec::F32, VectorCodec::F16, VectorCodec::Int8];

impl VectorCodec {
    /// `f32`, `f16` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            VectorCodec::F32 => "f32",
            VectorCodec::F16 => "f16",
            VectorCodec::Int8 => "int8",
        }
    }

    /// Whether a segment of this codec may be walked on its rows rather than on PQ codes
    /// (`int8`: distances on the codes; `f32`: on the rows as they are), and so be written
    /// without PQ codes. `f16` rows would be decoded at every distance: they keep PQ.
    pub fn walkable(self) -> bool {
        matches!(self, VectorCodec::F32 | VectorCodec::Int8)
    }

    /// The codec called `name` ([`Self::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        VECTOR_CODECS.into_iter().find(|c| c.name() == name)
    }

    /// The code stored in `VECTOR_CODEC` and in the manifest.
    pub fn code(self) -> u8 {
        match self {
            VectorCodec::F32 => 0,
            VectorCodec::F16 => 1,
            VectorCodec::Int8 => 2,
        }
    }

    /// The codec with code `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        VECTOR_CODECS.into_iter().find(|c| c.code() == code)
    }

    /// Bytes per stored value.
    pub fn value_bytes(self) -> usize {
        match self {
            VectorCodec::F32 => 4,
            VectorCodec::F16 => 2,
            VectorCodec::Int8 => 1,
        }
    }
}

/// Vectors encoded for a segment: the `VECTOR_CODEC` and `VECTORS` sections.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedVectors {
    /// The `VECTOR_CODEC` section.
    pub params: Vec<u8>,
    /// The `VECTORS` section.
    pub data: Vec<u8>,
}

/// Encodes `vectors` (`dim` values per row, row-major) with `codec` (`int8`: rounded as
/// `rounding` says).
pub fn encode(
    codec: VectorCodec,
    dim: usize,
    vectors: &[f32],
    rounding: Int8Rounding,
) -> EncodedVectors {
    let mut params = Vec::with_capacity(8);
    params.extend_from_slice(&u32::from(codec.code()).to_le_bytes());
    params.extend_from_slice(&0u32.to_le_bytes());
    let data = match codec {
        VectorCodec::F32 => bytemuck::cast_slice(vectors).to_vec(),
        VectorCodec::F16 => {
            let clamped: Vec<f32> = vectors
                .iter()
                .map(|x| x.clamp(-65_504.0, 65_504.0))
                .collect();
            let mut half = vec![half::f16::ZERO; vectors.len()];
            half.convert_from_f32_slice(&clamped);
            half.iter()
                .flat_map(|h| h.to_bits().to_le_bytes())
                .collect()
        }
        VectorCodec::Int8 => {
            let (lo, step, codes) = int8_codes(dim, vectors, rounding);
            lo.iter()
                .for_each(|v| params.extend_from_slice(&v.to_le_bytes()));
            step.iter()
                .for_each(|v| params.extend_from_slice(&v.to_le_bytes()));
            codes
        }
    };
    EncodedVectors { params, data }
}

/// How [`int8_codes`] rounds each value onto its dimension's grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Rounding {
    /// The nearest level: each value within half a step.
    Nearest,
    /// The nearest level, then, cheapest first, some values moved to the level on their
    /// other side (each still within one step) while that brings the decoded row's
    /// squared norm nearer the row's own. For cosine rows (unit vectors) the error of a
    /// nearby query's distance is then mostly gone: the part along the row is what
    /// changes its norm. Recall@10 of an exact scan of GloVe-50 on its `int8` codes
    /// went from 0.978 to 0.987.
    KeepNorm,
}

/// The `int8` codec's grid for `vectors` (`dim` values per row) and every row's codes on
/// it: per dimension `lo` and `step`, and `x ≈ lo + code · step` (also the segment's
/// scalar walk codes of `f32` and `f16` rows, `docs/format.md`).
pub fn int8_codes(
    dim: usize,
    vectors: &[f32],
    rounding: Int8Rounding,
) -> (Vec<f32>, Vec<f32>, Vec<u8>) {
    let (lo, step) = int8_grid(dim, vectors);
    let mut codes: Vec<u8> = vectors
        .chunks_exact(dim.max(1))
        .flat_map(|row| {
            row.iter().zip(lo.iter().zip(&step)).map(|(&x, (&l, &s))| {
                // The nearest level, ties up (as `round` for values ≥ 0): the conversion
                // truncates and saturates to 0..=255 (NaN to 0), and needs no call.
                if s > 0.0 {
                    ((x - l) / s + 0.5) as u8
                } else {
                    0
                }
            })
        })
        .collect();
    if rounding == Int8Rounding::KeepNorm {
        let mut moves = Vec::with_capacity(dim);
        for (row, c) in vectors
            .chunks_exact(dim.max(1))
            .zip(codes.chunks_exact_mut(dim.max(1)))
        {
            keep_norm(row, &lo, &step, c, &mut moves);
        }
    }
    (lo, step, codes)
}

/// A possible move of one value to the grid level on its other side: the squared error
/// it adds per unit of change of the decoded squared norm, and the dimension.
#[derive(Clone, Copy)]
struct NormMove {
    cost: f32,
    dim: u32,
}

/// [`Int8Rounding::KeepNorm`] for one row already rounded to the nearest levels.
fn keep_norm(row: &[f32], lo: &[f32], step: &[f32], codes: &mut [u8], moves: &mut Vec<NormMove>) {
    let level = |j: usize, c: u8| {
        lo.get(j).copied().unwrap_or(0.0) + f32::from(c) * step.get(j).copied().unwrap_or(0.0)
    };
    // The level on the other side of `x` from code `c`, if the grid has one.
    let other = |x: f32, now: f32, c: u8| match now.partial_cmp(&x) {
        Some(std::cmp::Ordering::Less) if c < 255 => Some(c + 1),
        Some(std::cmp::Ordering::Greater) if c > 0 => Some(c - 1),
        _ => None,
    };
    // In eight running sums (they vectorise).
    let mut sums = [0.0f32; 8];
    for (((x, c), l), s) in row
        .chunks(8)
        .zip(codes.chunks(8))
        .zip(lo.chunks(8))
        .zip(step.chunks(8))
    {
        for ((((sum, &x), &c), &l), &s) in sums.iter_mut().zip(x).zip(c).zip(l).zip(s) {
            let now = l + f32::from(c) * s;
            *sum += now * now - x * x;
        }
    }
    let mut excess: f32 = sums.iter().sum();
    // Only moves against the excess help. Every dimension's move is written and the
    // count advanced by whether it helps: no branch on it (it is unpredictable).
    moves.clear();
    moves.resize(row.len().min(codes.len()), NormMove { cost: 0.0, dim: 0 });
    let mut n = 0;
    for (j, ((&x, &c), (&l, &s))) in row
        .iter()
        .zip(codes.iter())
        .zip(lo.iter().zip(step.iter()))
        .enumerate()
    {
        let now = l + f32::from(c) * s;
        let o = if now < x {
            c.saturating_add(1)
        } else {
            c.saturating_sub(1)
        };
        let then = l + f32::from(o) * s;
        let change = then * then - now * now;
        let cost = ((then - x) * (then - x) - (now - x) * (now - x)) / change.abs();
        if let Some(m) = moves.get_mut(n) {
            *m = NormMove {
                cost,
                dim: j as u32,
            };
        }
        n += usize::from(change * excess < 0.0 && now != x);
    }
    moves.truncate(n);
    // Cheapest per unit of norm first, each taken only while it brings the norm nearer.
    // Few are taken: the cheapest few are sorted first, the rest only when the last of
    // those still helped.
    let by_cost = |a: &NormMove, b: &NormMove| a.cost.total_cmp(&b.cost);
    let first = moves.len().min(FIRST_MOVES);
    if first < moves.len() {
        moves.select_nth_unstable_by(first, by_cost);
    }
    let (cheapest, rest) = moves.split_at_mut(first);
    cheapest.sort_unstable_by(by_cost);
    let mut take = |m: &NormMove| {
        let j = m.dim as usize;
        let (Some(&x), Some(c)) = (row.get(j), codes.get_mut(j)) else {
            return false;
        };
        let now = level(j, *c);
        let Some(o) = other(x, now, *c) else {
            return false;
        };
        let then = level(j, o);
        let change = then * then - now * now;
        let helps = (excess + change).abs() < excess.abs();
        if helps {
            *c = o;
            excess += change;
        }
        helps
    };
    let mut last_taken = false;
    for m in cheapest.iter() {
        last_taken = take(m);
    }
    if last_taken && !rest.is_empty() {
        rest.sort_unstable_by(by_cost);
        for m in rest.iter() {
            take(m);
        }
    }
}

/// Moves [`keep_norm`] sorts before it looks at the rest.
const FIRST_MOVES: usize = 16;

/// Per dimension: the minimum, and the step that spreads 256 levels up to the maximum.
fn int8_grid(dim: usize, vectors: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut lo = vec![f32::INFINITY; dim];
    let mut hi = vec![f32::NEG_INFINITY; dim];
    for row in vectors.chunks_exact(dim.max(1)) {
        for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
            *l = l.min(x);
            *h = h.max(x);
        }
    }
    let step = lo
        .iter()
        .zip(&hi)
        .map(|(&l, &h)| if h > l { (h - l) / 255.0 } else { 0.0 })
        .collect();
    let lo = lo
        .into_iter()
        .map(|l| if l.is_finite() { l } else { 0.0 })
        .collect();
    (lo, step)
}

/// Decodes rows of a `VECTORS` section: the parsed `VECTOR_CODEC` section.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorDecoder {
    codec: VectorCodec,
    dim: usize,
    lo: Vec<f32>,
    step: Vec<f32>,
}

impl VectorDecoder {
    /// The decoder of `f32` rows (segments before version 5).
    pub fn f32(dim: usize) -> Self {
        VectorDecoder {
            codec: VectorCodec::F32,
            dim,
            lo: Vec::new(),
            step: Vec::new(),
        }
    }

    /// Parses a `VECTOR_CODEC` section found at file offset `at`.
    pub fn parse(section: &[u8], dim: usize, at: u64) -> Result<Self, DecodeError> {
        let mut r = Reader::new(section, at);
        let code_at = r.offset();
        let code = r.u32()?;
        let codec = u8::try_from(code)
            .ok()
            .and_then(VectorCodec::from_code)
            .ok_or_else(|| Reader::fault_at(code_at, CorruptionKind::Invalid("vector codec")))?;
        if r.u32()? != 0 {
            return Err(Reader::fault_at(
                code_at + 4,
                CorruptionKind::Invalid("vector codec"),
            ));
        }
        let mut d = VectorDecoder {
            codec,
            dim,
            lo: Vec::new(),
            step: Vec::new(),
        };
        if codec == VectorCodec::Int8 {
            let mut floats = |n: usize| -> Result<Vec<f32>, DecodeError> {
                (0..n).map(|_| r.u32().map(f32::from_bits)).collect()
            };
            d.lo = floats(dim)?;
            d.step = floats(dim)?;
            let bad = d.lo.iter().chain(&d.step).any(|x| !x.is_finite())
                || d.step.iter().any(|&s| s < 0.0);
            if bad {
                return Err(Reader::fault_at(
                    at + 8,
                    CorruptionKind::Invalid("int8 vector grid"),
                ));
            }
        }
        if r.remaining() != 0 {
            return Err(Reader::fault_at(
                r.offset(),
                CorruptionKind::Invalid("vector codec length"),
            ));
        }
        Ok(d)
    }

    /// The codec.
    pub fn codec(&self) -> VectorCodec {
        self.codec
    }

    /// The `int8` grid (`lo`, `step` per dimension); `None` for other codecs.
    pub fn int8_grid(&self) -> Option<(&[f32], &[f32])> {
        (self.codec == VectorCodec::Int8).then_some((&self.lo, &self.step))
    }

    /// Bytes of one stored row.
    pub fn row_bytes(&self) -> usize {
        self.dim * self.codec.value_bytes()
    }

    /// Appends the rows stored in `bytes` (whole rows) to `out` as `f32`.
    pub fn decode_into(&self, bytes: &[u8], out: &mut Vec<f32>) {
        let n = bytes.len() / self.codec.value_bytes();
        let start = out.len();
        out.resize(start + n, 0.0);
        let dst = out.get_mut(start..).unwrap_or(&mut []);
        match self.codec {
            VectorCodec::F32 => decode_f32(bytes, dst),
            VectorCodec::F16 => match bytemuck::try_cast_slice::<u8, u16>(bytes) {
                Ok(bits) => bits
                    .reinterpret_cast::<half::f16>()
                    .convert_to_f32_slice(dst),
                Err(_) => {
                    for (d, b) in dst.iter_mut().zip(bytes.chunks_exact(2)) {
                        let bits = u16::from_le_bytes(b.try_into().unwrap_or([0; 2]));
                        *d = half::f16::from_bits(bits).to_f32();
                    }
                }
            },
            VectorCodec::Int8 => {
                for (row, src) in dst
                    .chunks_mut(self.dim.max(1))
                    .zip(bytes.chunks(self.dim.max(1)))
                {
                    for (((d, &q), &l), &s) in row.iter_mut().zip(src).zip(&self.lo).zip(&self.step)
                    {
                        *d = l + f32::from(q) * s;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn rows(n: usize, dim: usize) -> Vec<f32> {
        (0..n * dim)
            .map(|i| ((i * 2_654_435_761) % 1000) as f32 / 37.0 - 13.0)
            .collect()
    }

    fn round_trip(codec: VectorCodec, dim: usize, v: &[f32]) -> Vec<f32> {
        let e = encode(codec, dim, v, Int8Rounding::Nearest);
        assert_eq!(e.data.len(), v.len() * codec.value_bytes());
        let d = VectorDecoder::parse(&e.params, dim, 0).unwrap();
        assert_eq!(d.codec(), codec);
        let mut out = vec![9.0];
        d.decode_into(&e.data, &mut out);
        assert_eq!(out.remove(0), 9.0, "decoding appends");
        out
    }

    #[test]
    fn f32_is_exact() {
        let v = rows(10, 7);
        assert_eq!(round_trip(VectorCodec::F32, 7, &v), v);
    }

    #[test]
    fn f16_keeps_eleven_significant_bits_and_clamps_its_range() {
        let mut v = rows(10, 7);
        v[3] = 1e6;
        v[4] = -1e6;
        let out = round_trip(VectorCodec::F16, 7, &v);
        assert_eq!((out[3], out[4]), (65_504.0, -65_504.0));
        for (a, b) in v.iter().zip(&out).filter(|(a, _)| a.abs() < 60_000.0) {
            assert!((a - b).abs() <= a.abs() / 1024.0, "{a} vs {b}");
        }
    }

    #[test]
    fn int8_error_is_at_most_half_a_step_per_dimension() {
        let dim = 5;
        let mut v = rows(50, dim);
        // A constant dimension and an extreme one.
        v.iter_mut().skip(1).step_by(dim).for_each(|x| *x = 0.25);
        v[2] = 1e4;
        let out = round_trip(VectorCodec::Int8, dim, &v);
        for j in 0..dim {
            let col: Vec<f32> = v.iter().skip(j).step_by(dim).copied().collect();
            let (lo, hi) = col
                .iter()
                .fold((f32::MAX, f32::MIN), |(l, h), &x| (l.min(x), h.max(x)));
            let step = (hi - lo) / 255.0;
            for (i, &x) in col.iter().enumerate() {
                let got = out[i * dim + j];
                assert!(
                    (got - x).abs() <= step / 2.0 + 1e-3 * step.max(1e-6),
                    "dim {j}: {x} vs {got}"
                );
            }
        }
        assert!(out.iter().skip(1).step_by(dim).all(|&x| x == 0.25));
    }

    /// Unit rows of `dim` values (cosine rows), from a seeded generator.
    fn unit_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut v = rows(n * dim, 1)
            .into_iter()
            .enumerate()
            .map(|(i, x)| x * ((i as u64 * 7 + seed) % 13) as f32 / 13.0)
            .collect::<Vec<_>>();
        for r in v.chunks_exact_mut(dim) {
            let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            r.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }

    fn decode(lo: &[f32], step: &[f32], codes: &[u8]) -> Vec<f32> {
        let dim = lo.len();
        codes
            .iter()
            .enumerate()
            .map(|(i, &c)| lo[i % dim] + f32::from(c) * step[i % dim])
            .collect()
    }

    #[test]
    fn norm_keeping_rounding_stays_within_a_step_and_nearer_the_norm() {
        for dim in [3usize, 16, 50, 384] {
            let v = unit_rows(300, dim, dim as u64);
            let (lo, step, near) = int8_codes(dim, &v, Int8Rounding::Nearest);
            let (lo2, step2, kept) = int8_codes(dim, &v, Int8Rounding::KeepNorm);
            assert_eq!((&lo, &step), (&lo2, &step2), "the same grid");
            let (a, b) = (decode(&lo, &step, &near), decode(&lo, &step, &kept));
            let mut moved = 0;
            for (i, ((&x, &n), &k)) in v.iter().zip(&a).zip(&b).enumerate() {
                let s = step[i % dim];
                assert!((n - x).abs() <= s / 2.0 + 1e-6, "dim {dim} value {i}");
                assert!((k - x).abs() <= s + 1e-6, "dim {dim} value {i}");
                moved += usize::from(near[i] != kept[i]);
            }
            let sq = |r: &[f32]| r.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>();
            let (mut err_near, mut err_kept) = (0.0, 0.0);
            for ((x, n), k) in v.chunks(dim).zip(a.chunks(dim)).zip(b.chunks(dim)) {
                let (en, ek) = ((sq(n) - sq(x)).abs(), (sq(k) - sq(x)).abs());
                assert!(ek <= en + 1e-6, "dim {dim}: a row's norm moved away");
                err_near += en;
                err_kept += ek;
            }
            println!("dim {dim}: {moved} values moved, norm error {err_near:.4} -> {err_kept:.4}");
            if dim >= 16 {
                assert!(moved > 0 && err_kept < err_near / 2.0, "dim {dim}");
            }
        }
    }

    /// What the rounding is for: a query near a unit row scores it (dot product) nearer
    /// to its true value on the norm-keeping codes than on the nearest ones.
    #[test]
    fn norm_keeping_codes_score_nearby_queries_more_exactly() {
        let dim = 50;
        let v = unit_rows(2000, dim, 3);
        let (lo, step, near) = int8_codes(dim, &v, Int8Rounding::Nearest);
        let (_, _, kept) = int8_codes(dim, &v, Int8Rounding::KeepNorm);
        let (a, b) = (decode(&lo, &step, &near), decode(&lo, &step, &kept));
        let noise = unit_rows(2000, dim, 11);
        let (mut err_near, mut err_kept) = (0.0f64, 0.0f64);
        for (((x, n), k), e) in v
            .chunks(dim)
            .zip(a.chunks(dim))
            .zip(b.chunks(dim))
            .zip(noise.chunks(dim))
        {
            // A query at cosine distance about 0.1 from the row.
            let mut q: Vec<f32> = x.iter().zip(e).map(|(x, e)| x + 0.45 * e).collect();
            let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
            q.iter_mut().for_each(|x| *x /= norm);
            let dot = |r: &[f32]| q.iter().zip(r).map(|(a, b)| f64::from(a * b)).sum::<f64>();
            err_near += (dot(n) - dot(x)).abs();
            err_kept += (dot(k) - dot(x)).abs();
        }
        println!("mean |error| of q·x: nearest {err_near:.4}, norm-keeping {err_kept:.4}");
        assert!(err_kept < 0.8 * err_near, "{err_kept} vs {err_near}");
    }

    #[test]
    fn names_and_codes_round_trip() {
        for c in VECTOR_CODECS {
            assert_eq!(VectorCodec::from_name(c.name()), Some(c));
            assert_eq!(VectorCodec::from_code(c.code()), Some(c));
        }
        assert_eq!(VectorCodec::from_name("bf16"), None);
        assert_eq!(VectorCodec::from_code(3), None);
    }

    #[test]
    fn damaged_parameters_are_refused() {
        let e = encode(VectorCodec::Int8, 3, &rows(4, 3), Int8Rounding::Nearest);
        assert!(VectorDecoder::parse(&e.params, 4, 0).is_err(), "length");
        let mut p = e.params.clone();
        p[0] = 7;
        assert!(VectorDecoder::parse(&p, 3, 0).is_err(), "code");
        let mut p = e.params.clone();
        p[8 + 12..8 + 16].copy_from_slice(&(-1.0f32).to_le_bytes());
        assert!(VectorDecoder::parse(&p, 3, 0).is_err(), "negative step");
        let mut p = e.params;
        p[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(VectorDecoder::parse(&p, 3, 0).is_err(), "NaN");
    }
}
