// Pippenger multi-scalar multiplication on BLS12-381 G1 and G2 for seqnet.
//
// Compiled at run time by NVRTC (no CUDA toolkit at build time), and also by
// the host C++ compiler in an emulation harness (tests, no GPU needed): every
// kernel only uses its global thread index, so the harness runs it as a loop.
//
// Field elements are arkworks' Montgomery form (R = 2^384) as 12 little-endian
// 32-bit limbs; G2 coordinates are Fp2 = Fp[u]/(u^2 + 1) as (c0, c1). Scalars
// are canonical 256-bit integers as 8 little-endian 32-bit limbs.
//
// Pipeline (the host driver launches these in order):
//   1. count_digits      signed window digits of every scalar; bucket histogram
//   2. scan_chunks / scan_chunk_sums / add_chunk_offsets
//                        exclusive prefix sum of the histogram = bucket offsets
//   3. scatter_digits    (bucket, point) pairs sorted by bucket (counting sort)
//   4. bucket_chunks_* / bucket_merge_*
//                        XYZZ += affine mixed additions in equal chunks of the
//                        sorted pairs, then the chunks of long buckets merged
//   5. window_segments_* parallel running-sum reduction of each window's buckets
//   6. sum_groups_*      two levels of small sums: segments -> windows
// The host finishes with sum_w 2^(c w) * T_w (a handful of doublings).

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
#define SEQ_DEVICE __device__ __forceinline__
// Curve operations (and Fp2 products) are real calls, each with the Fp
// multiplications inlined: inlining everything into every kernel makes NVRTC
// take minutes and the PTX tens of megabytes.
#define SEQ_CALL __device__ __noinline__
#define SEQ_GLOBAL extern "C" __global__
#define SEQ_TID (blockIdx.x * blockDim.x + threadIdx.x)
#define SEQ_ATOMIC_ADD(p, v) atomicAdd((p), (v))
#else
// Host emulation: the harness sets seq_emu_tid before each "thread".
#define SEQ_DEVICE static inline
#define SEQ_CALL static inline
#define SEQ_GLOBAL static
static unsigned int seq_emu_tid;
#define SEQ_TID seq_emu_tid
static inline unsigned int seq_emu_atomic_add(unsigned int* p, unsigned int v) {
    unsigned int old = *p;
    *p = old + v;
    return old;
}
#define SEQ_ATOMIC_ADD(p, v) seq_emu_atomic_add((p), (v))
#endif

typedef unsigned int u32;
typedef unsigned long long u64;

#define NLIMBS 12

struct Fp {
    u32 v[NLIMBS];
};
struct Fp2 {
    Fp c0, c1;
};

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
__constant__
#else
static
#endif
const u32 P_MOD[NLIMBS] = {0xffffaaab, 0xb9feffff, 0xb153ffff, 0x1eabfffe,
                           0xf6b0f624, 0x6730d2a0, 0xf38512bf, 0x64774b84,
                           0x434bacd7, 0x4b1ba7b6, 0x397fe69a, 0x1a0111ea};

#if defined(__CUDACC_RTC__) || defined(__CUDACC__)
__constant__
#else
static
#endif
const u32 R_MOD_P[NLIMBS] = {0x0002fffd, 0x76090000, 0xc40c0002, 0xebf4000b,
                             0x53c758ba, 0x5f489857, 0x70525745, 0x77ce5853,
                             0xa256ec6d, 0x5c071a97, 0xfa80e493, 0x15f65ec3};

#define P_INV 0xfffcfffdu  // -p^-1 mod 2^32

// ---------------------------------------------------------------- Fp

SEQ_DEVICE bool fp_is_zero(const Fp& a) {
    u32 acc = 0;
    for (int i = 0; i < NLIMBS; i++) acc |= a.v[i];
    return acc == 0;
}

SEQ_DEVICE bool fp_eq(const Fp& a, const Fp& b) {
    u32 acc = 0;
    for (int i = 0; i < NLIMBS; i++) acc |= a.v[i] ^ b.v[i];
    return acc == 0;
}

SEQ_DEVICE void fp_zero(Fp& r) {
    for (int i = 0; i < NLIMBS; i++) r.v[i] = 0;
}

SEQ_DEVICE void fp_one(Fp& r) {
    for (int i = 0; i < NLIMBS; i++) r.v[i] = R_MOD_P[i];
}

// r = a - p if a >= p (a < 2p).
SEQ_DEVICE void fp_reduce_once(Fp& a) {
    u32 t[NLIMBS];
    u64 borrow = 0;
    for (int i = 0; i < NLIMBS; i++) {
        u64 d = (u64)a.v[i] - P_MOD[i] - borrow;
        t[i] = (u32)d;
        borrow = (d >> 32) & 1;
    }
    if (!borrow) {
        for (int i = 0; i < NLIMBS; i++) a.v[i] = t[i];
    }
}

SEQ_DEVICE void fp_add(Fp& r, const Fp& a, const Fp& b) {
    u64 carry = 0;
    for (int i = 0; i < NLIMBS; i++) {
        u64 s = (u64)a.v[i] + b.v[i] + carry;
        r.v[i] = (u32)s;
        carry = s >> 32;
    }
    // p < 2^381, so a + b < 2^382 never carries out of 384 bits.
    fp_reduce_once(r);
}

SEQ_DEVICE void fp_sub(Fp& r, const Fp& a, const Fp& b) {
    u64 borrow = 0;
    for (int i = 0; i < NLIMBS; i++) {
        u64 d = (u64)a.v[i] - b.v[i] - borrow;
        r.v[i] = (u32)d;
        borrow = (d >> 32) & 1;
    }
    if (borrow) {
        u64 carry = 0;
        for (int i = 0; i < NLIMBS; i++) {
            u64 s = (u64)r.v[i] + P_MOD[i] + carry;
            r.v[i] = (u32)s;
            carry = s >> 32;
        }
    }
}

SEQ_DEVICE void fp_neg(Fp& r, const Fp& a) {
    if (fp_is_zero(a)) {
        fp_zero(r);
    } else {
        Fp p;
        for (int i = 0; i < NLIMBS; i++) p.v[i] = P_MOD[i];
        fp_sub(r, p, a);
    }
}

// Montgomery multiplication, CIOS: r = a * b / 2^384 mod p.
SEQ_DEVICE void fp_mul(Fp& r, const Fp& a, const Fp& b) {
    u32 t[NLIMBS + 2];
    for (int i = 0; i < NLIMBS + 2; i++) t[i] = 0;
    for (int i = 0; i < NLIMBS; i++) {
        u64 carry = 0;
        const u32 bi = b.v[i];
        for (int j = 0; j < NLIMBS; j++) {
            u64 s = (u64)a.v[j] * bi + t[j] + carry;
            t[j] = (u32)s;
            carry = s >> 32;
        }
        u64 s = (u64)t[NLIMBS] + carry;
        t[NLIMBS] = (u32)s;
        t[NLIMBS + 1] = (u32)(s >> 32);
        const u32 m = t[0] * P_INV;
        s = (u64)m * P_MOD[0] + t[0];
        carry = s >> 32;
        for (int j = 1; j < NLIMBS; j++) {
            s = (u64)m * P_MOD[j] + t[j] + carry;
            t[j - 1] = (u32)s;
            carry = s >> 32;
        }
        s = (u64)t[NLIMBS] + carry;
        t[NLIMBS - 1] = (u32)s;
        t[NLIMBS] = t[NLIMBS + 1] + (u32)(s >> 32);
    }
    for (int i = 0; i < NLIMBS; i++) r.v[i] = t[i];
    // 4p < 2^384, so the result is below 2p: one subtraction at most.
    fp_reduce_once(r);
}

SEQ_DEVICE void fp_sqr(Fp& r, const Fp& a) { fp_mul(r, a, a); }

// ---------------------------------------------------------------- Fp2

SEQ_DEVICE bool fp_is_zero(const Fp2& a) { return fp_is_zero(a.c0) && fp_is_zero(a.c1); }
SEQ_DEVICE bool fp_eq(const Fp2& a, const Fp2& b) { return fp_eq(a.c0, b.c0) && fp_eq(a.c1, b.c1); }
SEQ_DEVICE void fp_zero(Fp2& r) {
    fp_zero(r.c0);
    fp_zero(r.c1);
}
SEQ_DEVICE void fp_one(Fp2& r) {
    fp_one(r.c0);
    fp_zero(r.c1);
}
SEQ_DEVICE void fp_add(Fp2& r, const Fp2& a, const Fp2& b) {
    fp_add(r.c0, a.c0, b.c0);
    fp_add(r.c1, a.c1, b.c1);
}
SEQ_DEVICE void fp_sub(Fp2& r, const Fp2& a, const Fp2& b) {
    fp_sub(r.c0, a.c0, b.c0);
    fp_sub(r.c1, a.c1, b.c1);
}
SEQ_DEVICE void fp_neg(Fp2& r, const Fp2& a) {
    fp_neg(r.c0, a.c0);
    fp_neg(r.c1, a.c1);
}
// (a0 + a1 u)(b0 + b1 u) with u^2 = -1, Karatsuba.
SEQ_CALL void fp_mul(Fp2& r, const Fp2& a, const Fp2& b) {
    Fp t0, t1, s0, s1;
    fp_mul(t0, a.c0, b.c0);
    fp_mul(t1, a.c1, b.c1);
    fp_add(s0, a.c0, a.c1);
    fp_add(s1, b.c0, b.c1);
    fp_mul(s0, s0, s1);
    fp_sub(r.c0, t0, t1);
    fp_sub(s0, s0, t0);
    fp_sub(r.c1, s0, t1);
}
// (a0 + a1 u)^2 = (a0 + a1)(a0 - a1) + 2 a0 a1 u.
SEQ_CALL void fp_sqr(Fp2& r, const Fp2& a) {
    Fp s, d, m;
    fp_add(s, a.c0, a.c1);
    fp_sub(d, a.c0, a.c1);
    fp_mul(m, a.c0, a.c1);
    fp_mul(r.c0, s, d);
    fp_add(r.c1, m, m);
}

// ---------------------------------------------------------------- curve (a = 0)

template <class F>
struct Affine {
    F x, y;
};

// Extended Jacobian "XYZZ": x = X / ZZ, y = Y / ZZZ, ZZ^3 = ZZZ^2; infinity has ZZ = 0.
template <class F>
struct Xyzz {
    F x, y, zz, zzz;
};

template <class F>
SEQ_DEVICE void xyzz_set_inf(Xyzz<F>& p) {
    fp_zero(p.x);
    fp_zero(p.y);
    fp_zero(p.zz);
    fp_zero(p.zzz);
}

template <class F>
SEQ_DEVICE bool xyzz_is_inf(const Xyzz<F>& p) {
    return fp_is_zero(p.zz);
}

// p = 2 p (dbl-2008-s-1).
template <class F>
SEQ_CALL void xyzz_double(Xyzz<F>& p) {
    if (xyzz_is_inf(p)) return;
    F u, v, w, s, m, t;
    fp_add(u, p.y, p.y);
    fp_sqr(v, u);
    fp_mul(w, u, v);
    fp_mul(s, p.x, v);
    fp_sqr(m, p.x);
    fp_add(t, m, m);
    fp_add(m, t, m);
    fp_sqr(t, m);
    fp_sub(t, t, s);
    fp_sub(p.x, t, s);            // X3 = M^2 - 2S
    fp_sub(s, s, p.x);
    fp_mul(s, m, s);
    fp_mul(t, w, p.y);
    fp_sub(p.y, s, t);            // Y3 = M (S - X3) - W Y1
    fp_mul(p.zz, v, p.zz);
    fp_mul(p.zzz, w, p.zzz);
}

// p = 2 q for affine q (mdbl-2008-s-1).
template <class F>
SEQ_CALL void xyzz_double_affine(Xyzz<F>& p, const F& qx, const F& qy) {
    F u, v, w, s, m, t;
    fp_add(u, qy, qy);
    fp_sqr(v, u);
    fp_mul(w, u, v);
    fp_mul(s, qx, v);
    fp_sqr(m, qx);
    fp_add(t, m, m);
    fp_add(m, t, m);
    fp_sqr(t, m);
    fp_sub(t, t, s);
    fp_sub(p.x, t, s);
    fp_sub(s, s, p.x);
    fp_mul(s, m, s);
    fp_mul(t, w, qy);
    fp_sub(p.y, s, t);
    p.zz = v;
    p.zzz = w;
}

// p += (qx, qy) (madd-2008-s), qy already negated for negative digits. Inlined
// into the bucket kernels (the hot loop: the accumulator stays in registers).
template <class F>
SEQ_DEVICE void xyzz_add_affine(Xyzz<F>& p, const F& qx, const F& qy) {
    if (xyzz_is_inf(p)) {
        p.x = qx;
        p.y = qy;
        fp_one(p.zz);
        fp_one(p.zzz);
        return;
    }
    F u2, s2, pp, ppp, q, r, t;
    fp_mul(u2, qx, p.zz);
    fp_mul(s2, qy, p.zzz);
    fp_sub(u2, u2, p.x);   // P = U2 - X1
    fp_sub(r, s2, p.y);    // R = S2 - Y1
    if (fp_is_zero(u2)) {
        if (fp_is_zero(r)) {
            xyzz_double_affine(p, qx, qy);
        } else {
            xyzz_set_inf(p);
        }
        return;
    }
    fp_sqr(pp, u2);
    fp_mul(ppp, u2, pp);
    fp_mul(q, p.x, pp);
    fp_sqr(t, r);
    fp_sub(t, t, ppp);
    fp_sub(t, t, q);
    fp_sub(t, t, q);       // X3 = R^2 - PPP - 2Q
    fp_sub(q, q, t);
    fp_mul(q, r, q);
    fp_mul(s2, p.y, ppp);
    fp_sub(p.y, q, s2);    // Y3 = R (Q - X3) - Y1 PPP
    p.x = t;
    fp_mul(p.zz, p.zz, pp);
    fp_mul(p.zzz, p.zzz, ppp);
}

// p += q (add-2008-s).
template <class F>
SEQ_CALL void xyzz_add(Xyzz<F>& p, const Xyzz<F>& q) {
    if (xyzz_is_inf(q)) return;
    if (xyzz_is_inf(p)) {
        p = q;
        return;
    }
    F u1, u2, s1, s2, pp, ppp, qq, r, t;
    fp_mul(u1, p.x, q.zz);
    fp_mul(u2, q.x, p.zz);
    fp_mul(s1, p.y, q.zzz);
    fp_mul(s2, q.y, p.zzz);
    fp_sub(u2, u2, u1);  // P
    fp_sub(r, s2, s1);   // R
    if (fp_is_zero(u2)) {
        if (fp_is_zero(r)) {
            xyzz_double(p);
        } else {
            xyzz_set_inf(p);
        }
        return;
    }
    fp_sqr(pp, u2);
    fp_mul(ppp, u2, pp);
    fp_mul(qq, u1, pp);
    fp_sqr(t, r);
    fp_sub(t, t, ppp);
    fp_sub(t, t, qq);
    fp_sub(t, t, qq);    // X3
    fp_sub(qq, qq, t);
    fp_mul(qq, r, qq);
    fp_mul(s1, s1, ppp);
    fp_sub(p.y, qq, s1); // Y3
    p.x = t;
    fp_mul(p.zz, p.zz, q.zz);
    fp_mul(p.zz, p.zz, pp);
    fp_mul(p.zzz, p.zzz, q.zzz);
    fp_mul(p.zzz, p.zzz, ppp);
}

// ---------------------------------------------------------------- digits

// Signed digit of window w of a 256-bit scalar (8 limbs), window width c <= 16,
// windows processed from the least significant with the carry in *carry.
// Returns a value in [-(2^(c-1)) + 1, 2^(c-1)].
SEQ_DEVICE int window_digit(const u32* s, u32 c, u32 w, u32* carry) {
    u32 bit = w * c;
    u32 raw = 0;
    if (bit < 256) {
        u32 limb = bit >> 5, off = bit & 31;
        u64 pair = s[limb];
        if (limb + 1 < 8) pair |= (u64)s[limb + 1] << 32;
        raw = (u32)(pair >> off) & ((1u << c) - 1);
    }
    u32 v = raw + *carry;
    u32 half = 1u << (c - 1);
    if (v > half) {
        *carry = 1;
        return (int)v - (int)(1u << c);
    }
    *carry = 0;
    return (int)v;
}

// 1. Histogram of buckets: counts[w * nb + |d| - 1] for every nonzero digit.
SEQ_GLOBAL void count_digits(const u32* scalars, u32 n, u32 c, u32 windows, u32* counts) {
    u32 i = SEQ_TID;
    if (i >= n) return;
    const u32* s = scalars + 8 * (u64)i;
    u32 nb = 1u << (c - 1);
    u32 carry = 0;
    for (u32 w = 0; w < windows; w++) {
        int d = window_digit(s, c, w, &carry);
        if (d != 0) {
            u32 mag = d < 0 ? (u32)(-d) : (u32)d;
            SEQ_ATOMIC_ADD(&counts[w * nb + mag - 1], 1u);
        }
    }
}

// 2a. Each thread scans one chunk of `chunk` counts: local exclusive prefix in
// offsets, chunk total in chunk_sums.
SEQ_GLOBAL void scan_chunks(const u32* counts, u32 total, u32 chunk, u32* offsets, u32* chunk_sums) {
    u32 t = SEQ_TID;
    u64 lo = (u64)t * chunk;
    if (lo >= total) return;
    u64 hi = lo + chunk < total ? lo + chunk : total;
    u32 acc = 0;
    for (u64 k = lo; k < hi; k++) {
        offsets[k] = acc;
        acc += counts[k];
    }
    chunk_sums[t] = acc;
}

// 2b. One thread: exclusive prefix of the chunk sums; offsets[total] = grand total.
SEQ_GLOBAL void scan_chunk_sums(u32* chunk_sums, u32 nchunks, u32* offsets, u32 total) {
    if (SEQ_TID != 0) return;
    u32 acc = 0;
    for (u32 k = 0; k < nchunks; k++) {
        u32 v = chunk_sums[k];
        chunk_sums[k] = acc;
        acc += v;
    }
    offsets[total] = acc;
}

// 2c. Adds each chunk's base; cursors start as a copy of offsets for the scatter.
SEQ_GLOBAL void add_chunk_offsets(u32* offsets, u32 total, u32 chunk, const u32* chunk_sums, u32* cursors) {
    u32 k = SEQ_TID;
    if (k >= total) return;
    u32 v = offsets[k] + chunk_sums[k / chunk];
    offsets[k] = v;
    cursors[k] = v;
}

// 3. Counting-sort scatter: refs[pos] = point index | sign bit.
SEQ_GLOBAL void scatter_digits(const u32* scalars, u32 n, u32 c, u32 windows, u32* cursors, u32* refs) {
    u32 i = SEQ_TID;
    if (i >= n) return;
    const u32* s = scalars + 8 * (u64)i;
    u32 nb = 1u << (c - 1);
    u32 carry = 0;
    for (u32 w = 0; w < windows; w++) {
        int d = window_digit(s, c, w, &carry);
        if (d != 0) {
            u32 mag = d < 0 ? (u32)(-d) : (u32)d;
            u32 pos = SEQ_ATOMIC_ADD(&cursors[w * nb + mag - 1], 1u);
            refs[pos] = i | (d < 0 ? 0x80000000u : 0u);
        }
    }
}

// 4a. Bucket sums in fixed-size chunks of the sorted pairs, so no thread adds
// more than `chunk` points however skewed the buckets are (a sparse top window,
// witness scalars that are mostly 0 or 1, all scalars equal). Thread k takes
// pairs [k chunk, (k + 1) chunk): a bucket wholly inside goes straight to
// buckets[b]; the first run, if its bucket began earlier, goes to heads[k]; the
// last run, if its bucket goes on past the chunk, goes to tails[k].
template <class F>
SEQ_DEVICE void bucket_chunks(const Affine<F>* points, const u32* refs, const u32* offsets, u32 total,
                              u32 chunk, Xyzz<F>* buckets, Xyzz<F>* heads, Xyzz<F>* tails) {
    u32 k = SEQ_TID;
    const u32 pairs = offsets[total];
    const u64 start64 = (u64)k * chunk;
    if (start64 >= pairs) return;
    const u32 start = (u32)start64;
    const u32 end = start + chunk < pairs ? start + chunk : pairs;
    // The bucket of pair `start`: the last b with offsets[b] <= start.
    u32 lo = 0, hi = total;
    while (lo < hi) {
        u32 mid = lo + (hi - lo + 1) / 2;
        if (offsets[mid] <= start) lo = mid; else hi = mid - 1;
    }
    u32 b = lo;
    u32 pos = start;
    while (pos < end) {
        while (offsets[b + 1] <= pos) b++;
        const u32 run_end = offsets[b + 1] < end ? offsets[b + 1] : end;
        Xyzz<F> acc;
        xyzz_set_inf(acc);
        for (; pos < run_end; pos++) {
            const u32 r = refs[pos];
            const Affine<F>& q = points[r & 0x7fffffffu];
            F y = q.y;
            if (r & 0x80000000u) fp_neg(y, q.y);
            xyzz_add_affine(acc, q.x, y);
        }
        const bool began_before = offsets[b] < start;
        const bool goes_on = offsets[b + 1] > end;
        if (began_before) {
            heads[k] = acc;
        } else if (goes_on) {
            tails[k] = acc;
        } else {
            buckets[b] = acc;
        }
    }
}

// 4b. One thread per bucket that spans chunks: its tail in the first chunk plus
// the heads of the chunks it reaches into.
template <class F>
SEQ_DEVICE void bucket_merge(const u32* offsets, u32 total, u32 chunk, const Xyzz<F>* heads,
                             const Xyzz<F>* tails, Xyzz<F>* buckets) {
    u32 b = SEQ_TID;
    if (b >= total) return;
    const u32 first = offsets[b], last = offsets[b + 1];
    if (first == last) return;
    const u32 cs = first / chunk, ce = (last - 1) / chunk;
    if (cs == ce) return;
    Xyzz<F> acc = tails[cs];
    for (u32 k = cs + 1; k <= ce; k++) xyzz_add(acc, heads[k]);
    buckets[b] = acc;
}

// 5. Thread (w, s) reduces buckets [lo, hi) of window w:
//    sum_{j in [lo,hi)} (j + 1) B_j = sum (j - lo + 1) B_j + lo * sum B_j.
template <class F>
SEQ_DEVICE void window_segments(const Xyzz<F>* buckets, u32 nb, u32 windows, u32 segs, Xyzz<F>* out) {
    u32 t = SEQ_TID;
    if (t >= windows * segs) return;
    u32 w = t / segs, s = t % segs;
    u32 len = (nb + segs - 1) / segs;
    u32 lo = s * len;
    u32 hi = lo + len < nb ? lo + len : nb;
    Xyzz<F> running, acc;
    xyzz_set_inf(running);
    xyzz_set_inf(acc);
    for (u32 j = hi; j > lo; j--) {
        xyzz_add(running, buckets[(u64)w * nb + j - 1]);
        xyzz_add(acc, running);
    }
    // acc += lo * running, double-and-add from the top bit.
    Xyzz<F> mul;
    xyzz_set_inf(mul);
    for (int bit = 31; bit >= 0; bit--) {
        xyzz_double(mul);
        if ((lo >> bit) & 1) xyzz_add(mul, running);
    }
    xyzz_add(acc, mul);
    out[t] = acc;
}

// 6. Thread t sums in[t * group .. (t + 1) * group): launched twice (segments to
// groups of 32, groups to windows) so no thread adds more than a few dozen points.
template <class F>
SEQ_DEVICE void sum_groups(const Xyzz<F>* in, u32 groups, u32 group, Xyzz<F>* out) {
    u32 t = SEQ_TID;
    if (t >= groups) return;
    Xyzz<F> acc;
    xyzz_set_inf(acc);
    for (u32 k = 0; k < group; k++) xyzz_add(acc, in[(u64)t * group + k]);
    out[t] = acc;
}

SEQ_GLOBAL void bucket_chunks_g1(const Affine<Fp>* p, const u32* r, const u32* o, u32 t, u32 c, Xyzz<Fp>* b,
                                 Xyzz<Fp>* h, Xyzz<Fp>* tl) {
    bucket_chunks<Fp>(p, r, o, t, c, b, h, tl);
}
SEQ_GLOBAL void bucket_chunks_g2(const Affine<Fp2>* p, const u32* r, const u32* o, u32 t, u32 c, Xyzz<Fp2>* b,
                                 Xyzz<Fp2>* h, Xyzz<Fp2>* tl) {
    bucket_chunks<Fp2>(p, r, o, t, c, b, h, tl);
}
SEQ_GLOBAL void bucket_merge_g1(const u32* o, u32 t, u32 c, const Xyzz<Fp>* h, const Xyzz<Fp>* tl, Xyzz<Fp>* b) {
    bucket_merge<Fp>(o, t, c, h, tl, b);
}
SEQ_GLOBAL void bucket_merge_g2(const u32* o, u32 t, u32 c, const Xyzz<Fp2>* h, const Xyzz<Fp2>* tl, Xyzz<Fp2>* b) {
    bucket_merge<Fp2>(o, t, c, h, tl, b);
}
SEQ_GLOBAL void window_segments_g1(const Xyzz<Fp>* b, u32 nb, u32 w, u32 s, Xyzz<Fp>* o) {
    window_segments<Fp>(b, nb, w, s, o);
}
SEQ_GLOBAL void window_segments_g2(const Xyzz<Fp2>* b, u32 nb, u32 w, u32 s, Xyzz<Fp2>* o) {
    window_segments<Fp2>(b, nb, w, s, o);
}
SEQ_GLOBAL void sum_groups_g1(const Xyzz<Fp>* i, u32 n, u32 g, Xyzz<Fp>* o) {
    sum_groups<Fp>(i, n, g, o);
}
SEQ_GLOBAL void sum_groups_g2(const Xyzz<Fp2>* i, u32 n, u32 g, Xyzz<Fp2>* o) {
    sum_groups<Fp2>(i, n, g, o);
}
