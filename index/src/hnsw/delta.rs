//! The Rice-coded level-0 layout: each node's neighbours sorted and stored as gaps, so
//! that a graph whose rows are in a locality order (neighbours close in number) takes
//! about two thirds of the fixed bit-packed layout's bytes.
//!
//! Layout (`node_count + 1` little-endian `u32` byte offsets into the stream, then the
//! stream; node `i`'s code is the bytes `offsets[i]..offsets[i + 1]`, LSB-first bits):
//!
//! * the neighbour count, in [`count_bits`]`(m0)` bits;
//! * the first (smallest) neighbour as the zigzag of its difference from the node, in
//!   Rice code with parameter `k_first`;
//! * each following neighbour as its gap from the previous one minus one, in Rice code
//!   with parameter `k_gap`.
//!
//! A Rice code of `v` with parameter `k` is `q = v >> k` zero bits, a one bit, then the
//! low `k` bits of `v`; when `q` reaches [`ESCAPE`] it is instead `ESCAPE` zero bits, a
//! one bit and `v` in [`RAW_BITS`] bits. Decoding is bounds-checked: a damaged code
//! yields fewer neighbours (and never one out of range), never a panic.

use super::layout::{id_bits, GraphView};
use super::Graph;

/// Unary lengths from this on are escaped to a raw value.
pub const ESCAPE: u32 = 24;
/// Width of an escaped value (a zigzagged difference of two `u32` ids fits in 33).
pub const RAW_BITS: u32 = 34;
/// Largest Rice parameter.
pub const MAX_K: u32 = 24;

/// The two Rice parameters of a Rice-coded level 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiceParams {
    /// Parameter of each node's first neighbour (zigzagged difference from the node).
    pub k_first: u32,
    /// Parameter of the gaps between a node's following neighbours.
    pub k_gap: u32,
}

impl RiceParams {
    /// Packs both into one `u32` (`k_first | k_gap << 8`), as `INDEX_META` stores them.
    pub fn to_u32(self) -> u32 {
        self.k_first | (self.k_gap << 8)
    }

    /// Unpacks [`Self::to_u32`]; `None` for parameters out of range.
    pub fn from_u32(v: u32) -> Option<Self> {
        let p = RiceParams {
            k_first: v & 0xff,
            k_gap: (v >> 8) & 0xff,
        };
        (p.k_first <= MAX_K && p.k_gap <= MAX_K && v >> 16 == 0).then_some(p)
    }
}

/// Bits of a node's neighbour count for level-0 degree `m0`.
pub fn count_bits(m0: usize) -> u32 {
    id_bits(m0)
}

fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bits of `v`'s Rice code with parameter `k`.
fn code_len(v: u64, k: u32) -> u64 {
    let q = v >> k;
    if q >= ESCAPE as u64 {
        (ESCAPE + 1 + RAW_BITS) as u64
    } else {
        q + 1 + k as u64
    }
}

/// The parameter that codes `values` in the fewest bits.
fn best_k(values: &[u64]) -> u32 {
    (0..=MAX_K)
        .min_by_key(|&k| values.iter().map(|&v| code_len(v, k)).sum::<u64>())
        .unwrap_or(0)
}

/// LSB-first bit writer.
struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    used: u32,
}

impl BitWriter {
    fn put(&mut self, v: u64, bits: u32) {
        // At most 34 bits at a time: split so that `acc` never overflows.
        if bits > 32 {
            self.put(v & 0xffff_ffff, 32);
            self.put(v >> 32, bits - 32);
            return;
        }
        self.acc |= (v & ((1u64 << bits) - 1)) << self.used;
        self.used += bits;
        while self.used >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.used -= 8;
        }
    }

    fn rice(&mut self, v: u64, k: u32) {
        let q = v >> k;
        if q >= ESCAPE as u64 {
            self.put(0, ESCAPE);
            self.put(1, 1);
            self.put(v, RAW_BITS);
        } else {
            self.put(0, q as u32);
            self.put(1, 1);
            self.put(v, k);
        }
    }

    /// Pads to a whole byte.
    fn align(&mut self) {
        if self.used > 0 {
            self.bytes.push(self.acc as u8);
            self.acc = 0;
            self.used = 0;
        }
    }
}

/// Replaces `out` with `node`'s level-0 neighbours, sorted, without duplicates (the view
/// already drops ids out of range).
fn sorted_neighbors(view: &GraphView<'_>, node: u32, out: &mut Vec<u32>) {
    view.neighbors(node, 0, out);
    out.sort_unstable();
    out.dedup();
}

/// Level 0 of `view` in the Rice-coded layout, with its parameters; `None` when the
/// stream would not fit `u32` offsets.
pub fn encode_level0(view: &GraphView<'_>) -> Option<(Vec<u8>, RiceParams)> {
    let n = view.node_count() as u32;
    let mut list = Vec::new();
    // Parameters from the values of a sample of at most about 64k nodes.
    let (mut firsts, mut gaps) = (Vec::new(), Vec::new());
    for node in (0..n).step_by((n as usize / 65_536).max(1)) {
        sorted_neighbors(view, node, &mut list);
        firsts.extend(list.first().map(|&x| zigzag(x as i64 - node as i64)));
        gaps.extend(list.windows(2).map(|w| match w {
            [a, b] => (b - a - 1) as u64,
            _ => 0,
        }));
    }
    let params = RiceParams {
        k_first: best_k(&firsts),
        k_gap: best_k(&gaps),
    };
    let cbits = count_bits(view.m0());
    let mut offsets: Vec<u32> = Vec::with_capacity(n as usize + 1);
    let mut w = BitWriter {
        bytes: Vec::new(),
        acc: 0,
        used: 0,
    };
    for node in 0..n {
        sorted_neighbors(view, node, &mut list);
        offsets.push(u32::try_from(w.bytes.len()).ok()?);
        w.put(list.len() as u64, cbits);
        let mut prev = None;
        for &x in &list {
            match prev {
                None => w.rice(zigzag(x as i64 - node as i64), params.k_first),
                Some(p) => w.rice((x - p - 1) as u64, params.k_gap),
            }
            prev = Some(x);
        }
        w.align();
    }
    offsets.push(u32::try_from(w.bytes.len()).ok()?);
    let mut out = Vec::with_capacity(4 * offsets.len() + w.bytes.len());
    for o in offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    out.extend_from_slice(&w.bytes);
    Some((out, params))
}

/// A borrowed Rice-coded level 0.
#[derive(Debug, Clone, Copy)]
pub(super) struct RiceLevel0<'a> {
    offsets: &'a [u8],
    stream: &'a [u8],
    params: RiceParams,
    cbits: u32,
    m0: usize,
}

impl<'a> RiceLevel0<'a> {
    /// Splits `bytes` for `node_count` nodes, checking only the sizes (the offsets'
    /// table fits, and its last entry is the stream's length).
    pub(super) fn parse(
        bytes: &'a [u8],
        node_count: usize,
        m0: usize,
        params: RiceParams,
    ) -> Option<Self> {
        let table = node_count.checked_add(1)?.checked_mul(4)?;
        if bytes.len() < table {
            return None;
        }
        let (offsets, stream) = bytes.split_at(table);
        let last = offsets.get(table - 4..)?;
        if u32::from_le_bytes(last.try_into().ok()?) as usize != stream.len() {
            return None;
        }
        Some(RiceLevel0 {
            offsets,
            stream,
            params,
            cbits: count_bits(m0),
            m0,
        })
    }

    fn offset(&self, i: usize) -> Option<usize> {
        let b = self.offsets.get(i * 4..i * 4 + 4)?;
        Some(u32::from_le_bytes(b.try_into().ok()?) as usize)
    }

    /// The byte ranges (of the whole layout) `node`'s neighbours are read from: its two
    /// offsets, then its code. Empty ranges for a node out of range.
    pub(super) fn spans(&self, node: u32) -> [std::ops::Range<usize>; 2] {
        let i = node as usize;
        let table = self.offsets.len();
        if i * 4 + 8 > table {
            return [0..0, 0..0];
        }
        let code = match (self.offset(i), self.offset(i + 1)) {
            (Some(a), Some(b)) if a <= b && b <= self.stream.len() => table + a..table + b,
            _ => 0..0,
        };
        [i * 4..i * 4 + 8, code]
    }

    /// Starts loading `node`'s two offsets (a hint; nothing is read).
    pub(super) fn prefetch_offsets(&self, node: u32) {
        let i = node as usize * 4;
        crate::distance::prefetch(self.offsets.get(i..i + 8).unwrap_or(&[]));
    }

    /// `node`'s code bytes (empty when out of range or damaged).
    pub(super) fn code(&self, node: u32) -> &'a [u8] {
        let i = node as usize;
        match (self.offset(i), self.offset(i + 1)) {
            (Some(a), Some(b)) if a <= b => self.stream.get(a..b).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Replaces `out` with `node`'s neighbours below `node_count`.
    ///
    /// PERF: codes are read from a window of bits kept in a register, reloaded from
    /// memory only when the next code may not lie wholly within its valid bits (about
    /// one load per four codes instead of one per code, which shortened the dependency
    /// chain from one code's position to the next). Reads exactly what
    /// [`BitReader::rice`] code by code would (a test compares them on damaged codes).
    pub(super) fn neighbors(&self, node: u32, node_count: usize, out: &mut Vec<u32>) {
        out.clear();
        let code = self.code(node);
        if code.is_empty() {
            return;
        }
        let mut r = BitReader {
            bytes: code,
            pos: 0,
        };
        let end = code.len() as u64 * 8;
        let count = (r.take(self.cbits) as usize).min(self.m0);
        out.reserve(count);
        // The bits from `r.pos` on; the low `valid` of them are the code's (the rest
        // zeros shifted in).
        let (mut w, mut valid) = r.window_bits();
        let mut prev: i64 = -1;
        for j in 0..count {
            let k = if j == 0 {
                self.params.k_first
            } else {
                self.params.k_gap
            };
            let mut q = w.trailing_zeros();
            if q >= ESCAPE || q + 1 + k > valid {
                // Not wholly within the valid bits (or an escape): reload at `r.pos`,
                // after which a code with q < ESCAPE fits (q + 1 + k ≤ 49 < 57).
                (w, valid) = r.window_bits();
                q = w.trailing_zeros();
            }
            let v = if q < ESCAPE {
                let used = q + 1 + k;
                let v = ((q as u64) << k) | ((w >> (q + 1)) & ((1u64 << k) - 1));
                w >>= used;
                valid -= used;
                r.pos += used as u64;
                v
            } else if q == ESCAPE {
                r.pos += ESCAPE as u64 + 1;
                let v = r.take(RAW_BITS);
                (w, valid) = r.window_bits();
                v
            } else {
                return;
            };
            let x = if j == 0 {
                node as i64 + unzigzag(v)
            } else {
                prev.saturating_add(1).saturating_add(v as i64)
            };
            if r.pos > end || x < 0 || x as u64 >= node_count as u64 {
                return;
            }
            out.push(x as u32);
            prev = x;
        }
    }

    /// [`RiceLevel0::neighbors`] one [`BitReader::rice`] call per code: the reference
    /// the windowed decoder is tested against.
    #[cfg(test)]
    fn neighbors_code_by_code(&self, node: u32, node_count: usize, out: &mut Vec<u32>) {
        out.clear();
        let code = self.code(node);
        if code.is_empty() {
            return;
        }
        let mut r = BitReader {
            bytes: code,
            pos: 0,
        };
        let end = code.len() as u64 * 8;
        let count = r.take(self.cbits) as usize;
        let mut prev: i64 = -1;
        for j in 0..count.min(self.m0) {
            let x = if j == 0 {
                let Some(v) = r.rice(self.params.k_first) else {
                    return;
                };
                node as i64 + unzigzag(v)
            } else {
                let Some(v) = r.rice(self.params.k_gap) else {
                    return;
                };
                prev.saturating_add(1).saturating_add(v as i64)
            };
            if r.pos > end || x < 0 || x as u64 >= node_count as u64 {
                return;
            }
            out.push(x as u32);
            prev = x;
        }
    }
}

/// LSB-first bit reader over a node's code (reads past the end see zeros).
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: u64,
}

impl BitReader<'_> {
    /// [`BitReader::window`] and how many of its bits are read from `pos` on (at least
    /// 57; the rest are zeros shifted in).
    #[inline]
    fn window_bits(&self) -> (u64, u32) {
        (self.window(), 64 - (self.pos % 8) as u32)
    }

    /// The next 56 bits (at least) from `pos`.
    #[inline]
    fn window(&self) -> u64 {
        let at = (self.pos / 8) as usize;
        let word = match self.bytes.get(at..at + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
            None => {
                let mut w = [0u8; 8];
                let tail = self.bytes.get(at..).unwrap_or(&[]);
                w.iter_mut().zip(tail).for_each(|(d, &s)| *d = s);
                u64::from_le_bytes(w)
            }
        };
        word >> (self.pos % 8)
    }

    #[inline]
    fn take(&mut self, bits: u32) -> u64 {
        let v = self.window() & ((1u64 << bits) - 1);
        self.pos += bits as u64;
        v
    }

    /// One Rice code; `None` when its unary part runs past the code (damage). The
    /// definition [`RiceLevel0::neighbors`] is tested against.
    #[cfg(test)]
    fn rice(&mut self, k: u32) -> Option<u64> {
        let w = self.window();
        let q = w.trailing_zeros();
        if q < ESCAPE {
            // The unary part (q < 24), its stop bit and k ≤ 24 low bits lie within the
            // 56 bits one window holds: one load per code.
            let low = (w >> (q + 1)) & ((1u64 << k) - 1);
            self.pos += (q + 1 + k) as u64;
            Some(((q as u64) << k) | low)
        } else if q == ESCAPE {
            self.pos += ESCAPE as u64 + 1;
            Some(self.take(RAW_BITS))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::{Level0Layout, PackedGraph};
    use super::*;

    fn lists_of(view: &GraphView<'_>) -> Vec<Vec<u32>> {
        (0..view.node_count() as u32)
            .map(|node| {
                let mut l = Vec::new();
                sorted_neighbors(view, node, &mut l);
                l
            })
            .collect()
    }

    #[test]
    fn rice_codes_round_trip_including_escapes() {
        let values = [0u64, 1, 2, 7, 100, 4095, 1 << 20, (1 << 33) - 1, 12_345_678];
        for k in [0, 1, 5, 12, MAX_K] {
            let mut w = BitWriter {
                bytes: Vec::new(),
                acc: 0,
                used: 0,
            };
            for &v in &values {
                w.rice(v, k);
            }
            w.align();
            let mut r = BitReader {
                bytes: &w.bytes,
                pos: 0,
            };
            for &v in &values {
                assert_eq!(r.rice(k), Some(v), "k={k}");
            }
        }
        for d in [0i64, 1, -1, 77, -77, u32::MAX as i64, -(u32::MAX as i64)] {
            assert_eq!(unzigzag(zigzag(d)), d);
            assert!(zigzag(d) < 1 << 33);
        }
    }

    #[test]
    fn encoded_level0_reads_back_the_same_neighbour_sets() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for n in [1usize, 2, 3, 17, 300, 5000] {
            let m0 = 1 + (next() % 40) as usize;
            let lists: Vec<Vec<Vec<u32>>> = (0..n)
                .map(|i| {
                    let deg = (next() % (m0 as u64 + 1)) as usize;
                    // Mostly near the node (a locality order), sometimes anywhere.
                    let l = (0..deg)
                        .map(|_| {
                            if next() % 4 == 0 {
                                (next() % n as u64) as u32
                            } else {
                                ((i as u64 + next() % 64) % n as u64) as u32
                            }
                        })
                        .collect();
                    vec![l]
                })
                .collect();
            let g = PackedGraph::from_lists(&lists, m0, Some((0, 0)));
            let (bytes, params) = encode_level0(&g.view()).unwrap();
            let rice = GraphView::parse(
                n,
                m0,
                Level0Layout::Rice(params),
                Some((0, 0)),
                &bytes,
                g.upper(),
            )
            .unwrap();
            let mut out = Vec::new();
            for (node, want) in lists_of(&g.view()).iter().enumerate() {
                rice.neighbors(node as u32, 0, &mut out);
                assert_eq!(&out, want, "n={n} m0={m0} node={node}");
                let [offsets, code] = rice.level0_spans(node as u32);
                assert_eq!(offsets, node * 4..node * 4 + 8);
                assert!(code.end <= bytes.len() && code.start >= 4 * (n + 1));
            }
            assert_eq!(RiceParams::from_u32(params.to_u32()), Some(params));
        }
    }

    #[test]
    fn a_locality_order_codes_smaller_than_the_fixed_layout() {
        let n = 20_000usize;
        let m0 = 32;
        let lists: Vec<Vec<Vec<u32>>> = (0..n)
            .map(|i| {
                let l = (1..=24u32)
                    .map(|j| (i as u32 + j * 37) % n as u32)
                    .collect();
                vec![l]
            })
            .collect();
        let g = PackedGraph::from_lists(&lists, m0, Some((0, 0)));
        let (bytes, _) = encode_level0(&g.view()).unwrap();
        assert!(
            bytes.len() * 3 < g.level0().len() * 2,
            "{} vs {}",
            bytes.len(),
            g.level0().len()
        );
    }

    #[test]
    fn the_windowed_decoder_reads_what_code_by_code_decoding_reads() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let (nodes, m0) = (300usize, 32usize);
        for round in 0..40 {
            // Random codes: some sparse in one bits (long unary parts and escapes),
            // some dense, of every length up to 100 bytes.
            let density = [0.02, 0.2, 0.5, 0.9][round % 4];
            let mut stream = Vec::new();
            let mut offsets = vec![0u32];
            for _ in 0..nodes {
                let len = rng.random_range(0..100);
                for _ in 0..len {
                    let byte =
                        (0..8).fold(0u8, |b, i| b | (u8::from(rng.random_bool(density)) << i));
                    stream.push(byte);
                }
                offsets.push(stream.len() as u32);
            }
            let mut bytes: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
            bytes.extend_from_slice(&stream);
            let params = RiceParams {
                k_first: rng.random_range(0..=MAX_K),
                k_gap: [0, 1, 4, 9, MAX_K][round % 5],
            };
            let rice = RiceLevel0::parse(&bytes, nodes, m0, params).unwrap();
            let (mut got, mut want) = (Vec::new(), Vec::new());
            for node in 0..nodes as u32 + 2 {
                for count in [nodes, 40, 1 << 20] {
                    rice.neighbors(node, count, &mut got);
                    rice.neighbors_code_by_code(node, count, &mut want);
                    assert_eq!(
                        got, want,
                        "round {round} node {node} count {count} {params:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn damaged_codes_read_as_fewer_neighbours_never_out_of_range() {
        let lists: Vec<Vec<Vec<u32>>> = (0..200u32)
            .map(|i| vec![(1..9).map(|j| (i + j * 3) % 200).collect()])
            .collect();
        let g = PackedGraph::from_lists(&lists, 16, Some((0, 0)));
        let (bytes, params) = encode_level0(&g.view()).unwrap();
        let layout = Level0Layout::Rice(params);
        // The table's last offset must be the stream's length.
        assert!(GraphView::parse(
            200,
            16,
            layout,
            Some((0, 0)),
            &bytes[..bytes.len() - 1],
            g.upper()
        )
        .is_err());
        assert!(GraphView::parse(201, 16, layout, Some((0, 0)), &bytes, g.upper()).is_err());
        let mut out = Vec::new();
        for at in 0..bytes.len() {
            for bit in [0x01u8, 0x10, 0x80] {
                let mut bad = bytes.clone();
                bad[at] ^= bit;
                let Ok(v) = GraphView::parse(200, 16, layout, Some((0, 0)), &bad, g.upper()) else {
                    continue;
                };
                for node in [0u32, 1, 99, 199, 200, 5000] {
                    v.neighbors(node, 0, &mut out);
                    assert!(out.len() <= 16 && out.iter().all(|&x| x < 200));
                }
            }
        }
    }
}
