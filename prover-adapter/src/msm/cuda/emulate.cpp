// Host emulation of the CUDA MSM pipeline in msm.cu, for tests without a GPU:
// runs every kernel as a loop over its thread indices, in the order the Rust
// driver (cuda/device.rs) launches them. Input on stdin, window sums on stdout:
//   u32 group (1 | 2), n, c, windows, segs, group1; points; scalars (8 u32 each)
#include <cstdio>
#include <vector>

#include "msm.cu"

#ifndef BUCKET_CHUNK
#define BUCKET_CHUNK 32
#endif

template <class F>
static int run(u32 n, u32 c, u32 windows, u32 segs, u32 group1) {
    std::vector<Affine<F>> points(n > 0 ? n : 1);
    std::vector<u32> scalars(8 * (size_t)n + 8);
    if (fread(points.data(), sizeof(Affine<F>), n, stdin) != n) return 2;
    if (fread(scalars.data(), sizeof(u32), 8 * (size_t)n, stdin) != 8 * (size_t)n) return 2;

    const u32 nb = 1u << (c - 1), total = windows * nb, chunk = 256;
    const u32 nchunks = (total + chunk - 1) / chunk;
    std::vector<u32> counts(total, 0), offsets(total + 1, 0), cursors(total, 0), sums(nchunks, 0);
    for (seq_emu_tid = 0; seq_emu_tid < n; seq_emu_tid++) count_digits(scalars.data(), n, c, windows, counts.data());
    for (seq_emu_tid = 0; seq_emu_tid < nchunks; seq_emu_tid++)
        scan_chunks(counts.data(), total, chunk, offsets.data(), sums.data());
    seq_emu_tid = 0;
    scan_chunk_sums(sums.data(), nchunks, offsets.data(), total);
    for (seq_emu_tid = 0; seq_emu_tid < total; seq_emu_tid++)
        add_chunk_offsets(offsets.data(), total, chunk, sums.data(), cursors.data());
    std::vector<u32> refs(offsets[total] + 1);
    for (seq_emu_tid = 0; seq_emu_tid < n; seq_emu_tid++)
        scatter_digits(scalars.data(), n, c, windows, cursors.data(), refs.data());

    std::vector<Xyzz<F>> buckets(total), segments((size_t)windows * segs);
    const u32 bucket_chunk = BUCKET_CHUNK, nchunk = (n * windows + bucket_chunk - 1) / bucket_chunk;
    std::vector<Xyzz<F>> heads(nchunk + 1), tails(nchunk + 1);
    for (auto* v : {&buckets, &heads, &tails})
        for (auto& p : *v) xyzz_set_inf(p);
    for (seq_emu_tid = 0; seq_emu_tid < nchunk; seq_emu_tid++)
        bucket_chunks<F>(points.data(), refs.data(), offsets.data(), total, bucket_chunk, buckets.data(),
                         heads.data(), tails.data());
    for (seq_emu_tid = 0; seq_emu_tid < total; seq_emu_tid++)
        bucket_merge<F>(offsets.data(), total, bucket_chunk, heads.data(), tails.data(), buckets.data());
    for (seq_emu_tid = 0; seq_emu_tid < windows * segs; seq_emu_tid++)
        window_segments<F>(buckets.data(), nb, windows, segs, segments.data());
    const u32 groups1 = windows * segs / group1;
    std::vector<Xyzz<F>> level1(groups1), out(windows);
    for (seq_emu_tid = 0; seq_emu_tid < groups1; seq_emu_tid++)
        sum_groups<F>(segments.data(), groups1, group1, level1.data());
    for (seq_emu_tid = 0; seq_emu_tid < windows; seq_emu_tid++)
        sum_groups<F>(level1.data(), windows, segs / group1, out.data());
    fwrite(out.data(), sizeof(Xyzz<F>), windows, stdout);
    return 0;
}

int main() {
    u32 h[6];
    if (fread(h, sizeof(u32), 6, stdin) != 6) return 2;
    if (h[0] == 1) return run<Fp>(h[1], h[2], h[3], h[4], h[5]);
    if (h[0] == 2) return run<Fp2>(h[1], h[2], h[3], h[4], h[5]);
    return 3;
}
