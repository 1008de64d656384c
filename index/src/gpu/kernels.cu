// Strata's segment-building kernels, compiled at run time by NVRTC (index/src/gpu/mod.rs).
//
// pq_nearest  - the nearest of 256 centroids for every (row, sub-quantizer): PQ encoding
//               and the assignment step of k-means. Bit-identical to the CPU reference
//               (pq::nearest_codes): the same operations in the same order, each rounded
//               once (no fused multiply-add), ties to the lower centroid.
// l2_tile     - a tile of squared L2 distances between query rows and data rows,
//               |q|^2 + |x|^2 - 2 q.x, with rows at or after the query masked out
//               (neighbour lists look only at earlier rows).
// topk_merge  - merges one row of a distance tile into that query's running list of the
//               k nearest (ties to the lower row), as exact::earlier_neighbors does.

#define KSUB 256
#define NO_NEIGHBOR 0xFFFFFFFFu

extern "C" __global__ void pq_nearest(const float* rows, long long n, int dim, int m,
                                      const int* bounds, const float* centroids,
                                      unsigned char* codes, float* dists)
{
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n * m) return;
    long long i = t / m;
    int j = (int)(t % m);
    int a = bounds[j];
    int w = bounds[j + 1] - a;
    const float* v = rows + i * dim + a;
    const float* c = centroids + (long long)KSUB * a;
    float best = __int_as_float(0x7f800000);
    int arg = 0;
    for (int k = 0; k < KSUB; k++) {
        float d = 0.0f;
        for (int x = 0; x < w; x++) {
            float e = __fsub_rn(v[x], c[k * w + x]);
            d = __fadd_rn(d, __fmul_rn(e, e));
        }
        if (d < best) {
            best = d;
            arg = k;
        }
    }
    codes[t] = (unsigned char)arg;
    dists[t] = best;
}

#define TQ 64
#define TD 64
#define TK 16

// Block of exactly 256 threads (a 16 x 16 layout) computes a TQ x TD tile; each thread
// 4 x 4 of it.
// D[qi * nd + dj] = distance between row q0 + qi and row d0 + dj, or +inf when
// d0 + dj >= q0 + qi (not an earlier row).
extern "C" __global__ void l2_tile(const float* rows, const float* norms, int dim,
                                   long long q0, int nq, long long d0, int nd, float* D)
{
    __shared__ float sq[TK][TQ + 1];
    __shared__ float sx[TK][TD + 1];
    int tx = threadIdx.x % 16;
    int ty = threadIdx.x / 16;
    int qb = blockIdx.y * TQ;
    int db = blockIdx.x * TD;
    float acc[4][4];
    for (int u = 0; u < 4; u++)
        for (int v = 0; v < 4; v++) acc[u][v] = 0.0f;
    // A block whose every data row comes at or after every query row is all masked:
    // skip its arithmetic (the same for all threads of the block, so the barriers
    // below are not divergent).
    bool all_masked = d0 + db >= q0 + qb + TQ - 1;
    for (int k0 = 0; k0 < dim && !all_masked; k0 += TK) {
        for (int e = threadIdx.x; e < TQ * TK; e += blockDim.x) {
            int r = e / TK;
            int c = e % TK;
            int gk = k0 + c;
            sq[c][r] = (qb + r < nq && gk < dim) ? rows[(q0 + qb + r) * dim + gk] : 0.0f;
            sx[c][r] = (db + r < nd && gk < dim) ? rows[(d0 + db + r) * dim + gk] : 0.0f;
        }
        __syncthreads();
        for (int c = 0; c < TK; c++) {
            float a[4], b[4];
            for (int u = 0; u < 4; u++) {
                a[u] = sq[c][ty + 16 * u];
                b[u] = sx[c][tx + 16 * u];
            }
            for (int u = 0; u < 4; u++)
                for (int v = 0; v < 4; v++) acc[u][v] = fmaf(a[u], b[v], acc[u][v]);
        }
        __syncthreads();
    }
    for (int u = 0; u < 4; u++) {
        int qi = qb + ty + 16 * u;
        if (qi >= nq) continue;
        long long gq = q0 + qi;
        for (int v = 0; v < 4; v++) {
            int dj = db + tx + 16 * v;
            if (dj >= nd) continue;
            long long gd = d0 + dj;
            // Rounding can make the expansion slightly negative; NaN stays NaN (and is
            // never selected), as in the CPU scan.
            float r = norms[gq] + norms[gd] - 2.0f * acc[u][v];
            float d = r < 0.0f ? 0.0f : r;
            if (gd >= gq) d = __int_as_float(0x7f800000);
            D[(long long)qi * nd + dj] = d;
        }
    }
}

#define BUF 2048

__device__ bool after(float da, unsigned ia, float db, unsigned ib)
{
    return da > db || (da == db && ia > ib);
}

// Sorts sd/si[0..BUF) ascending by (distance, row); every thread of the block calls it.
__device__ void sort_buffer(float* sd, unsigned* si)
{
    for (int k = 2; k <= BUF; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int t = threadIdx.x; t < BUF; t += blockDim.x) {
                int p = t ^ j;
                if (p > t) {
                    bool ascending = (t & k) == 0;
                    if (after(sd[t], si[t], sd[p], si[p]) == ascending) {
                        float fd = sd[t];
                        sd[t] = sd[p];
                        sd[p] = fd;
                        unsigned fi = si[t];
                        si[t] = si[p];
                        si[p] = fi;
                    }
                }
            }
            __syncthreads();
        }
    }
}

// One block per query row qi of the tile (blockDim.x <= BUF - k). best_d/best_i hold
// the query's k nearest so far, ascending (+inf / NO_NEIGHBOR when fewer); tiles must
// come in ascending d0, so a later row never displaces an equal earlier one.
extern "C" __global__ void topk_merge(const float* D, int nd, long long d0, int k,
                                      float* best_d, unsigned* best_i)
{
    __shared__ float sd[BUF];
    __shared__ unsigned si[BUF];
    __shared__ int count;
    __shared__ float thresh;
    const float* row = D + (long long)blockIdx.x * nd;
    float* bd = best_d + (long long)blockIdx.x * k;
    unsigned* bi = best_i + (long long)blockIdx.x * k;
    for (int x = threadIdx.x; x < k; x += blockDim.x) {
        sd[x] = bd[x];
        si[x] = bi[x];
    }
    if (threadIdx.x == 0) {
        count = k;
        thresh = bd[k - 1];
    }
    __syncthreads();
    for (int base = 0; base < nd; base += blockDim.x) {
        int x = base + threadIdx.x;
        if (x < nd) {
            float d = row[x];
            if (d < thresh) {
                int slot = atomicAdd(&count, 1);
                sd[slot] = d;
                si[slot] = (unsigned)(d0 + x);
            }
        }
        __syncthreads();
        // Room for another full round of blockDim.x arrivals? Else keep the best k.
        if (count > BUF - (int)blockDim.x) {
            for (int t = count + threadIdx.x; t < BUF; t += blockDim.x) {
                sd[t] = __int_as_float(0x7f800000);
                si[t] = NO_NEIGHBOR;
            }
            __syncthreads();
            sort_buffer(sd, si);
            if (threadIdx.x == 0) {
                count = k;
                thresh = sd[k - 1];
            }
        }
        __syncthreads();
    }
    if (count > k) {
        for (int t = count + threadIdx.x; t < BUF; t += blockDim.x) {
            sd[t] = __int_as_float(0x7f800000);
            si[t] = NO_NEIGHBOR;
        }
        __syncthreads();
        sort_buffer(sd, si);
    }
    for (int x = threadIdx.x; x < k; x += blockDim.x) {
        bd[x] = sd[x];
        bi[x] = si[x];
    }
}
