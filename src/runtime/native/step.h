// Decoder::step (model.h): the phases of one decode step. Each thread computes the norms it
// needs itself (a few thousand floats; cheaper than a barrier), then its share of each Linear's
// output columns; the barrier after a phase publishes what the next phase reads.
#pragma once
#include <algorithm>
#include <cstring>
#include "model.h"

namespace openlora {

inline float dotf(const float* a, const float* b, int n) {
#if OPENLORA_VNNI
  __m512 acc = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
  float s = _mm512_reduce_add_ps(acc);
#else
  float s = 0;
  int i = 0;
#endif
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

#if OPENLORA_VNNI
// e^x for 16 lanes: 2^n · e^f with n = round(x / ln 2) and |f| ≤ ln 2 / 2 (ln 2 split in two
// parts so f keeps its low bits), e^f by its degree-6 Taylor polynomial (relative error < 2e-7
// on that range, about fp32's own rounding), 2^n by scalef (which also gives 0 and inf at the
// ends instead of wrapping). libm's expf one lane at a time was ~5 % of a 135M decode step
// (SiLU over the MLP width and the softmax over each head's positions).
inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.f)), _mm512_set1_ps(-104.f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  f = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), f);
  __m512 p = _mm512_set1_ps(1.f / 720);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 120));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 24));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f / 6));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}
#endif

inline float expShifted(float* x, int n, float max);

#if OPENLORA_VNNI
// lane j = the sum of a[j]'s lanes, for 16 vectors at once (~45 shuffles and adds instead of 16
// horizontal reductions of ~10 each)
inline __m512 sum16(__m512* a) {
  __m512 b[8], c[4];
  for (int k = 0; k < 8; k++)
    b[k] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * k], a[2 * k + 1]), _mm512_unpackhi_ps(a[2 * k], a[2 * k + 1]));
  for (int k = 0; k < 4; k++)
    c[k] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * k], b[2 * k + 1], 0x44), _mm512_shuffle_ps(b[2 * k], b[2 * k + 1], 0xEE));
  const __m512 e0 = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88), _mm512_shuffle_f32x4(c[0], c[1], 0xDD));
  const __m512 e1 = _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], 0x88), _mm512_shuffle_f32x4(c[2], c[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(e0, e1, 0x88), _mm512_shuffle_f32x4(e0, e1, 0xDD));
}

// One row and head of attention over positions [t0, p] for a head of 16·DV dims: scores 16
// positions at a time (sum16), softmax, and the weighted values summed in registers (one position
// at a time through memory was a chain of stores and loads per position). kp / vn: position p's
// key and value (the new ones of a decode row, not yet in the cache).
template <int DV>
inline void attendVec(const float* qr, const float* K, const float* V, const float* kp, const float* vn, int t0, int p,
                      float scale, float* scores, float* out) {
  constexpr int D = 16 * DV;
  __m512 q[DV];
  for (int v = 0; v < DV; v++) q[v] = _mm512_loadu_ps(qr + 16 * v);
  auto dot = [&](const float* k) {
    __m512 s = _mm512_mul_ps(q[0], _mm512_loadu_ps(k));
    for (int v = 1; v < DV; v++) s = _mm512_fmadd_ps(q[v], _mm512_loadu_ps(k + 16 * v), s);
    return s;
  };
  float max = -INFINITY;
  int i = t0;
  for (; i + 16 <= p + 1; i += 16) {
    __m512 a[16];
    for (int j = 0; j < 16; j++) a[j] = dot(i + j == p ? kp : K + (size_t)(i + j) * D);
    const __m512 sc = _mm512_mul_ps(sum16(a), _mm512_set1_ps(scale));
    _mm512_storeu_ps(scores + i, sc);
    max = std::max(max, _mm512_reduce_max_ps(sc));
  }
  for (; i <= p; i++) {
    const float sc = _mm512_reduce_add_ps(dot(i == p ? kp : K + (size_t)i * D)) * scale;
    scores[i] = sc;
    max = std::max(max, sc);
  }
  const float sum = expShifted(scores + t0, p + 1 - t0, max);
  __m512 o[DV];
  for (int v = 0; v < DV; v++) o[v] = _mm512_setzero_ps();
  for (i = t0; i <= p; i++) {
    const __m512 w = _mm512_set1_ps(scores[i]);
    const float* vr = i == p ? vn : V + (size_t)i * D;
    for (int v = 0; v < DV; v++) o[v] = _mm512_fmadd_ps(w, _mm512_loadu_ps(vr + 16 * v), o[v]);
  }
  const __m512 inv = _mm512_set1_ps(1.f / sum);
  for (int v = 0; v < DV; v++) _mm512_storeu_ps(out + 16 * v, _mm512_mul_ps(o[v], inv));
}

// Attention of 16 consecutive prompt rows (positions P0..P0+15 of one sequence) and one head over
// positions [kLo, P0 + 15], with the 16 rows in the 16 lanes: a key's scores for all 16 rows are
// one vector of FMAs over its dims (keys broadcast, the queries transposed and pre-scaled in qt
// [D][16]), so no score needs a horizontal sum, and every key and value is read once for 16 rows
// instead of once a row (attendVec: ~45 % of a 512-token prompt's time went to attention).
// t0[i]: row i's first position (a sliding window; else kLo). S: scratch of [P0 + 16 − kLo][16].
// out row i at out + i · ldo.
template <int DV>
inline void attendBlock(const float* qt, const float* K, const float* V, int kLo, int P0, const int* t0, float* S,
                        float* out, size_t ldo) {
  constexpr int D = 16 * DV;
  const int kHi = P0 + 15, n = kHi + 1 - kLo;
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i first = _mm512_loadu_si512(t0);
  const __m512 none = _mm512_set1_ps(-INFINITY);
  // key k counts for row i when t0[i] <= k <= P0 + i
  auto valid = [&](int k) {
    return (__mmask16)(_mm512_cmple_epi32_mask(_mm512_set1_epi32(k - P0), lane) &
                       _mm512_cmple_epi32_mask(first, _mm512_set1_epi32(k)));
  };
  __m512 max = none;
  int k = kLo;
  for (; k + 8 <= kHi + 1; k += 8) {
    __m512 acc[8];
    for (int j = 0; j < 8; j++) acc[j] = _mm512_setzero_ps();
    const float* kr = K + (size_t)k * D;
    for (int d = 0; d < D; d++) {
      const __m512 q = _mm512_loadu_ps(qt + 16 * d);
      for (int j = 0; j < 8; j++) acc[j] = _mm512_fmadd_ps(q, _mm512_set1_ps(kr[(size_t)j * D + d]), acc[j]);
    }
    for (int j = 0; j < 8; j++) {
      const __m512 sc = _mm512_mask_blend_ps(valid(k + j), none, acc[j]);
      _mm512_storeu_ps(S + (size_t)(k + j - kLo) * 16, sc);
      max = _mm512_max_ps(max, sc);
    }
  }
  for (; k <= kHi; k++) {
    __m512 acc = _mm512_setzero_ps();
    const float* kr = K + (size_t)k * D;
    for (int d = 0; d < D; d++) acc = _mm512_fmadd_ps(_mm512_loadu_ps(qt + 16 * d), _mm512_set1_ps(kr[d]), acc);
    const __m512 sc = _mm512_mask_blend_ps(valid(k), none, acc);
    _mm512_storeu_ps(S + (size_t)(k - kLo) * 16, sc);
    max = _mm512_max_ps(max, sc);
  }
  __m512 sum = _mm512_setzero_ps();
  for (int i = 0; i < n; i++) {
    const __m512 sc = _mm512_loadu_ps(S + (size_t)i * 16);
    const __m512 e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(sc, none, _CMP_NEQ_OQ), exp16(_mm512_sub_ps(sc, max)));
    _mm512_storeu_ps(S + (size_t)i * 16, e);
    sum = _mm512_add_ps(sum, e);
  }
  alignas(64) float inv[16];
  _mm512_store_ps(inv, _mm512_div_ps(_mm512_set1_ps(1.f), sum));
  for (int c = 0; c < DV; c++) {
    __m512 o[16];
    for (int i = 0; i < 16; i++) o[i] = _mm512_setzero_ps();
    for (int i = 0; i < n; i++) {
      const __m512 v = _mm512_loadu_ps(V + (size_t)(kLo + i) * D + 16 * c);
      const float* w = S + (size_t)i * 16;
      for (int r = 0; r < 16; r++) o[r] = _mm512_fmadd_ps(_mm512_set1_ps(w[r]), v, o[r]);
    }
    for (int r = 0; r < 16; r++) _mm512_storeu_ps(out + r * ldo + 16 * c, _mm512_mul_ps(o[r], _mm512_set1_ps(inv[r])));
  }
}
#endif

// out[i] = SiLU(gate[i]) · up[i]
inline void siluMul(const float* gate, const float* up, float* out, int n) {
  int i = 0;
#if OPENLORA_VNNI
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 sig = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(sig, _mm512_loadu_ps(up + i)));
  }
#endif
  for (; i < n; i++) out[i] = gate[i] / (1.f + std::exp(-gate[i])) * up[i];
}

// x[i] = e^(x[i] − max) over [0, n); returns their sum
inline float expShifted(float* x, int n, float max) {
  float sum = 0;
  int i = 0;
#if OPENLORA_VNNI
  __m512 acc = _mm512_setzero_ps();
  const __m512 m = _mm512_set1_ps(max);
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
    _mm512_storeu_ps(x + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  sum = _mm512_reduce_add_ps(acc);
#endif
  for (; i < n; i++) sum += (x[i] = std::exp(x[i] - max));
  return sum;
}

// RMS norm in fp32, as SimplifiedLayerNormalization (stash_type 1) computes it.
inline void rmsNorm(const float* x, const float* w, float* out, int n, float eps) {
  const float ms = dotf(x, x, n) / (float)n;
  const float r = 1.f / std::sqrt(ms + eps);
  for (int i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

// rotate-half RoPE at one position (GroupQueryAttention with rotary_interleaved 0)
inline void rope(const float* in, const float* cos, const float* sin, float* out, int D) {
  const int half = D / 2;
  for (int i = 0; i < half; i++) {
    const float x1 = in[i], x2 = in[i + half];
    out[i] = x1 * cos[i] - x2 * sin[i];
    out[i + half] = x2 * cos[i] + x1 * sin[i];
  }
}

inline void Decoder::prepare() {
  const Dims& d = d_;
  const Linear* all[] = {&lmHead};
  auto see = [&](const Linear& L) {
    maxK_ = std::max(maxK_, L.K);
    if (L.w != nullptr && !L.rows) maxN_ = std::max(maxN_, L.N);
    if (L.block > 0) {
      maxKb_ = std::max(maxKb_, L.kb);
      maxKpad_ = std::max(maxKpad_, L.kb * L.block);
    }
  };
  for (const Linear* L : all) see(*L);
  for (const Layer& l : layers) {
    see(l.qkv), see(l.o), see(l.gateUp), see(l.down);
    for (const Lora& r : l.lora) maxRank_ = std::max(maxRank_, r.rank);
  }
  // whole 16s: the AMX kernels (amx.h) read and write rows 16 at a time
  const int R = rows_ = (std::max(d.maxRows, d.promptRows) + 15) / 16 * 16;
  scratch_.resize(pool_.threads());
  for (Scratch& s : scratch_) {
    s.x.assign((size_t)R * maxK_, 0.f);
    s.q.assign((size_t)R * std::max(1, maxKpad_), 0);
    s.sx.assign((size_t)R * std::max(1, maxKb_), 0.f);
    s.xs.assign((size_t)R * std::max(1, maxKb_), 0.f);
    s.sxp.assign((size_t)R * std::max(1, maxKb_) * 8, 0.f);
    s.xa.assign((size_t)std::max(1, maxRank_), 0.f);
    s.scores.assign((size_t)d.capacity, 0.f);
    if (d.promptRows > 0) {
      s.qt.assign((size_t)16 * 128, 0.f);
      s.block.assign((size_t)(d.capacity + 16) * 16, 0.f);
    }
    if (int8Copy_) {
      s.xu.assign((size_t)R * ((maxK_ + 63) / 64 * 64), 0);
      // quantizeU8's per-row scale and zero point reuse sx and xs: at least a row each
      s.sx.resize(std::max(s.sx.size(), (size_t)R));
      s.xs.resize(std::max(s.xs.size(), (size_t)R));
    }
    s.rows.resize(R);
  }
  const int qkvN = (d.heads + 2 * d.kvHeads) * d.D;
  h_.assign((size_t)R * d.hidden, 0.f);
  qkv_.assign((size_t)R * qkvN, 0.f);
  attn_.assign((size_t)R * d.heads * d.D, 0.f);
  gu_.assign((size_t)R * std::max(2 * d.inter, d.hidden), 0.f);
  act_.assign((size_t)R * d.inter, 0.f);
  row_.resize(R);
  pos_.resize(R);
  out_.resize(R);
  partial_.assign((size_t)pool_.threads() * R * maxN_, 0.f);
}

// Whether linear() splits L's rows (k) between the threads for M rows rather than its columns:
// fp32 [K, N] weights at 2-3 rows, and at one row where oneRowByRows_ (the splits below).
inline bool Decoder::byRows(const Linear& L, int M) const {
  if (L.w == nullptr || L.rows || pool_.threads() < 2) return false;
#if OPENLORA_VNNI
  if (M >= kGemmRows) return false;
#endif
  return M > 1 || oneRowByRows_;
}

// y[m][c] for c in this thread's column ranges. fp32 [K, N] weights (MatMul's weight_t) take one
// of three splits by the number of rows, each the fastest measured there (135M shape, 2 threads,
// ms a decode step: docs/NATIVE-DECODE.md "Kernels"):
// - 1 row, Intel: by columns, kColumns prefetching the rows below the thread's segment (13.6
//   against 14.1 split by rows on an EMR Xeon); elsewhere (oneRowByRows_) by rows, as 2-3 rows
//   are: AMD Zen 4's prefetchers stream a contiguous range and not a thread's 1-2 KB segment of
//   every row (21-23 ms against 25.6-28 by columns);
// - 2-3 rows: by rows, each thread streaming its contiguous rows [k0, k1) over all N columns, then
//   after a barrier summing the threads' partials over its columns (all threads call this
//   together: the barrier);
// - 4 rows and more (a batch, a prompt chunk): gemmF32 over the thread's columns (batch 4: 21.0
//   against 22.5 split by rows; batch 8: 30.3 against 36 on the EMR Xeon); off Intel (batchAcross_)
//   4-8 rows run gemmAcross over the same columns instead, which reads the weights in long runs
//   (batch 8 on AMD Zen 4: gate|up 9.6 against 15.9 ms).
inline void Decoder::linear(int t, const Linear& L, int M, const float* x, int ldx, const QuantRow* xq,
                            std::initializer_list<std::pair<int, int>> ranges, float* y, int ldy) {
#if OPENLORA_VNNI
  if (int8CopyTakes(L, M)) {
    Scratch& s = scratch_[t];
    quantizeU8(x, ldx, M, L.K, L.int8CopyChunks * 64, s.xu.data(), s.sx.data(), s.xs.data());
#if OPENLORA_AMX
    if (amxReady()) {
      for (const auto& [a, b] : ranges) int8TilesAmx(L, s.xu.data(), s.sx.data(), s.xs.data(), M, a / 16, b / 16, y, ldy);
      amxDone();
      return;
    }
#endif
    for (const auto& [a, b] : ranges) int8TilesVnni(L, s.xu.data(), s.sx.data(), s.xs.data(), M, a / 16, b / 16, y, ldy);
    return;
  }
#endif
#if OPENLORA_VNNI
  if (L.w != nullptr && !L.rows && M >= kGemmRows) {
    for (const auto& [a, b] : ranges) {
      if (batchAcross_ && M <= 4)
        gemmAcross<4>(L, M, x, ldx, a, b, y, ldy);
      else if (batchAcross_ && M <= 8)
        gemmAcross<8>(L, M, x, ldx, a, b, y, ldy);
      else
        gemmF32(L, M, x, ldx, a, b, y, ldy);
    }
    return;
  }
#endif
  const int T = pool_.threads();
  if (byRows(L, M)) {
    int k0, k1;
    share(L.K, t, T, 4, k0, k1);
    const size_t slice = (size_t)M * L.N;
    kColumns(L, M, x, ldx, 0, L.N, partial_.data() + t * slice, L.N, k0, k1);
    pool_.barrier();
    for (const auto& [a, b] : ranges)
      for (int m = 0; m < M; m++) {
        float* out = y + (size_t)m * ldy;
        for (int c = a; c < b; c++) {
          float v = 0;
          for (int u = 0; u < T; u++) v += partial_[u * slice + (size_t)m * L.N + c];
          out[c] = v;
        }
      }
    return;
  }
  for (const auto& [a, b] : ranges) linearColumns(L, M, x, ldx, xq, a, b, y, ldy);
}

// Starts the first few KB of what thread t reads of L (its columns' rows, or for fp32 [K, N] its
// columns' segment of the first rows) on their way to L2 while it waits at a barrier: a phase's first reads otherwise wait a
// full memory latency each, before the prefetches inside the kernels (kernels.h) get ahead.
inline void Decoder::warm(const Linear& L, int t, int cols, int M) const {
#if OPENLORA_VNNI
  const int T = pool_.threads();
  int a, b;
  const char* p;
  // what the fp32 kernels read: the bf16 halves where the Linear has them (every SIMD kernel does)
  const bool halves = L.w16 != nullptr;
  const size_t wordBytes = halves ? 2 : 4;
  const char* w = halves ? (const char*)L.w16 : (const char*)L.w;
  if (byRows(L, M)) {
    // the start of the thread's rows, as a split by rows reads them
    share(L.K, t, T, 4, a, b);
    p = w + (size_t)a * L.N * wordBytes;
  } else if (L.w != nullptr && !L.rows) {
    // the thread's segment of the first rows, as kColumns reads them
    share(cols, t, T, 16, a, b);
    const size_t segment = (size_t)(b - a) * wordBytes;
    if (segment == 0) return;
    for (size_t r = 0; r < (size_t)L.K && r * segment < kWarmBytes; r++) {
      const char* row = w + (r * L.N + a) * wordBytes;
      for (size_t i = 0; i < segment; i += 64) _mm_prefetch(row + i, _MM_HINT_T1);
    }
    return;
  } else if (L.w != nullptr) {
    share(cols, t, T, 16, a, b);
    p = w + (size_t)a * L.K * wordBytes;
  } else if (L.tiles != nullptr) {
    share(cols, t, T, kTileRows, a, b);
    p = (const char*)L.tiles + (size_t)(a / kTileRows) * L.groupBytes;
  } else {
    share(cols, t, T, 16, a, b);
    p = (const char*)L.q + (size_t)a * L.kb * (L.zp ? L.block / 2 : L.block);
    const char* sc = (const char*)(L.scales + (size_t)a * L.kb);
    for (int i = 0; i < kWarmScales; i += 64) _mm_prefetch(sc + i, _MM_HINT_T1);
  }
  for (int i = 0; i < kWarmBytes; i += 64) _mm_prefetch(p + i, _MM_HINT_T1);
#else
  (void)L, (void)t, (void)cols, (void)M;
#endif
}

inline void Decoder::quantize(Scratch& s, const Linear& L, const float* x, int ldx, int M) {
  if (L.block == 0 || int8CopyTakes(L, M)) return;  // the int8 copy's kernels quantize their rows themselves (amx.h quantizeU8)
  for (int m = 0; m < M; m++) {
    s.rows[m] = QuantRow{s.q.data() + (size_t)m * maxKpad_, s.sx.data() + (size_t)m * maxKb_,
                         s.xs.data() + (size_t)m * maxKb_, s.sxp.data() + (size_t)m * maxKb_ * 8};
    // int4 tiles take natural k order; row-major int4 its paired-block order (kernels.h)
    quantizeRow(x + (size_t)m * ldx, L.K, L.block, L.kb, L.zp != nullptr && L.tiles == nullptr, s.rows[m]);
  }
}

// xa[0, rank) = x · A for A [in, rank]: up to 16 ranks in one register, four partial sums over i
// (one accumulator was a chain of dependent FMAs through memory, ~9 cycles an i: a zero adapter's
// pass over A cost ~4 ms of a 32-token 135M prompt)
inline void loraDown(const float* x, const float* A, int in, int rank, float* xa) {
#if OPENLORA_VNNI
  for (int r0 = 0; r0 < rank; r0 += 16) {
    const int n = std::min(16, rank - r0);
    const __mmask16 mk = (__mmask16)((1u << n) - 1);
    const float* a = A + r0;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int i = 0;
    for (; i + 4 <= in; i += 4) {
      s0 = _mm512_fmadd_ps(_mm512_set1_ps(x[i]), _mm512_maskz_loadu_ps(mk, a + (size_t)i * rank), s0);
      s1 = _mm512_fmadd_ps(_mm512_set1_ps(x[i + 1]), _mm512_maskz_loadu_ps(mk, a + (size_t)(i + 1) * rank), s1);
      s2 = _mm512_fmadd_ps(_mm512_set1_ps(x[i + 2]), _mm512_maskz_loadu_ps(mk, a + (size_t)(i + 2) * rank), s2);
      s3 = _mm512_fmadd_ps(_mm512_set1_ps(x[i + 3]), _mm512_maskz_loadu_ps(mk, a + (size_t)(i + 3) * rank), s3);
    }
    for (; i < in; i++) s0 = _mm512_fmadd_ps(_mm512_set1_ps(x[i]), _mm512_maskz_loadu_ps(mk, a + (size_t)i * rank), s0);
    _mm512_mask_storeu_ps(xa + r0, mk, _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  }
#else
  std::fill(xa, xa + rank, 0.f);
  for (int i = 0; i < in; i++)
    for (int k = 0; k < rank; k++) xa[k] += x[i] * A[(size_t)i * rank + k];
#endif
}

// y[m][c] += this row's adapter delta (x·A)·B for the target's columns [col0, col0 + out) that
// fall in [c0, c1); rows whose adapter is all zeros (no adapter) cost one pass over A.
inline void Decoder::lora(Scratch& s, const Layer& layer, int target, const float* x, int ldx, int M, int col0,
                          int c0, int c1, float* y, int ldy) {
  const Lora& r = layer.lora[target];
  if (r.a == nullptr) return;
  const int lo = std::max(c0, col0), hi = std::min(c1, col0 + r.out);
  if (lo >= hi) return;
  for (int m = 0; m < M; m++) {
    const float* A = r.a + (size_t)row_[m] * r.in * r.rank;
    const float* B = r.b + (size_t)row_[m] * r.rank * r.out;
    const float* xm = x + (size_t)m * ldx;
    float* xa = s.xa.data();
    loraDown(xm, A, r.in, r.rank, xa);
    float* ym = y + (size_t)m * ldy;
    for (int k = 0; k < r.rank; k++) {
      if (xa[k] == 0.f) continue;
      const float* Bk = B + (size_t)k * r.out - col0;
      for (int c = lo; c < hi; c++) ym[c] += xa[k] * Bk[c];
    }
  }
}

inline void Decoder::attention(int t, int T, int l, int M, int capacity, bool together) {
  const Dims& d = d_;
  const Layer& L = layers[l];
  const int D = d.D, qkvN = (d.heads + 2 * d.kvHeads) * D, group = d.heads / d.kvHeads;
  const int qOut = d.heads * D, kvOut = d.kvHeads * D;
  int a, b;
  float qr[512], kr[512], out[512];
  if (together) {
    // a prompt chunk: rows of one sequence read each other's keys, so all of them are stored first
    share(M * d.kvHeads, t, T, 1, a, b);
    for (int task = a; task < b; task++) {
      const int m = task / d.kvHeads, g = task % d.kvHeads, p = pos_[m];
      const float* qkv = qkv_.data() + (size_t)m * qkvN;
      const size_t base = ((size_t)row_[m] * d.kvHeads + g) * capacity * D;
      rope(qkv + qOut + g * D, ropeCos + (size_t)p * (D / 2), ropeSin + (size_t)p * (D / 2), L.keys + base + (size_t)p * D, D);
      std::memcpy(L.values + base + (size_t)p * D, qkv + qOut + kvOut + g * D, sizeof(float) * D);
    }
    pool_.barrier();
  }
  float* scores = scratch_[t].scores.data();
  // one row and head
  auto attendRow = [&](int m, int h) {
    const int g = h / group, p = pos_[m];
    const float* cos = ropeCos + (size_t)p * (D / 2);
    const float* sin = ropeSin + (size_t)p * (D / 2);
    const float* qkv = qkv_.data() + (size_t)m * qkvN;
    rope(qkv + h * D, cos, sin, qr, D);
    const size_t base = ((size_t)row_[m] * d.kvHeads + g) * capacity * D;
    float* K = L.keys + base;
    float* V = L.values + base;
    // a decode row's own key and value are its new ones (in the cache already when together)
    const float* kp = K + (size_t)p * D;
    const float* vn = V + (size_t)p * D;
    if (!together) {
      rope(qkv + qOut + g * D, cos, sin, kr, D);
      kp = kr;
      vn = qkv + qOut + kvOut + g * D;
      // one head of the group stores the new position; the others read only positions before it
      if (h % group == 0) {
        std::memcpy(K + (size_t)p * D, kr, sizeof(float) * D);
        std::memcpy(V + (size_t)p * D, vn, sizeof(float) * D);
      }
    }
    const int t0 = d.window > 0 ? std::max(0, p - d.window + 1) : 0;
#if OPENLORA_VNNI
    if (D % 16 == 0 && D <= 128) {
      const float s = d.attnScale;
      float* o = attn_.data() + ((size_t)m * d.heads + h) * D;
      switch (D / 16) {
        case 1: attendVec<1>(qr, K, V, kp, vn, t0, p, s, scores, o); break;
        case 2: attendVec<2>(qr, K, V, kp, vn, t0, p, s, scores, o); break;
        case 3: attendVec<3>(qr, K, V, kp, vn, t0, p, s, scores, o); break;
        case 4: attendVec<4>(qr, K, V, kp, vn, t0, p, s, scores, o); break;
        case 5: attendVec<5>(qr, K, V, kp, vn, t0, p, s, scores, o); break;
        case 6: attendVec<6>(qr, K, V, kp, vn, t0, p, s, scores, o); break;
        case 7: attendVec<7>(qr, K, V, kp, vn, t0, p, s, scores, o); break;
        default: attendVec<8>(qr, K, V, kp, vn, t0, p, s, scores, o); break;
      }
      return;
    }
#endif
    float max = -INFINITY;
    for (int i = t0; i <= p; i++) {
      const float sc = dotf(qr, i == p ? kp : K + (size_t)i * D, D) * d.attnScale;
      scores[i] = sc;
      max = std::max(max, sc);
    }
    const float sum = expShifted(scores + t0, p + 1 - t0, max);
    std::fill(out, out + D, 0.f);
    for (int i = t0; i <= p; i++) {
      const float w = scores[i] / sum;
      const float* v = i == p ? vn : V + (size_t)i * D;
      for (int k = 0; k < D; k++) out[k] += w * v[k];
    }
    std::memcpy(attn_.data() + ((size_t)m * d.heads + h) * D, out, sizeof(float) * D);
  };
#if OPENLORA_VNNI
  // a prompt chunk's rows in blocks of 16 consecutive positions of one sequence (attendBlock)
  const int blocks = together && D % 16 == 0 && D <= 128 ? M / 16 : 0;
#else
  const int blocks = 0;
#endif
  auto attendRows = [&](int b, int h) {
    const int m0 = 16 * b, P0 = pos_[m0];
    bool one = true;
    for (int i = 1; i < 16 && one; i++) one = row_[m0 + i] == row_[m0] && pos_[m0 + i] == P0 + i;
#if OPENLORA_VNNI
    if (one) {
      Scratch& sc = scratch_[t];
      float* qt = sc.qt.data();
      alignas(64) int t0[16];
      for (int i = 0; i < 16; i++) {
        const int p = P0 + i;
        rope(qkv_.data() + (size_t)(m0 + i) * qkvN + h * D, ropeCos + (size_t)p * (D / 2), ropeSin + (size_t)p * (D / 2), qr, D);
        for (int c = 0; c < D; c++) qt[c * 16 + i] = qr[c] * d.attnScale;
        t0[i] = d.window > 0 ? std::max(0, p - d.window + 1) : 0;
      }
      const size_t base = ((size_t)row_[m0] * d.kvHeads + h / group) * capacity * D;
      float* o = attn_.data() + ((size_t)m0 * d.heads + h) * D;
      const size_t ldo = (size_t)d.heads * D;
      switch (D / 16) {
        case 1: attendBlock<1>(qt, L.keys + base, L.values + base, t0[0], P0, t0, sc.block.data(), o, ldo); break;
        case 2: attendBlock<2>(qt, L.keys + base, L.values + base, t0[0], P0, t0, sc.block.data(), o, ldo); break;
        case 3: attendBlock<3>(qt, L.keys + base, L.values + base, t0[0], P0, t0, sc.block.data(), o, ldo); break;
        case 4: attendBlock<4>(qt, L.keys + base, L.values + base, t0[0], P0, t0, sc.block.data(), o, ldo); break;
        case 5: attendBlock<5>(qt, L.keys + base, L.values + base, t0[0], P0, t0, sc.block.data(), o, ldo); break;
        case 6: attendBlock<6>(qt, L.keys + base, L.values + base, t0[0], P0, t0, sc.block.data(), o, ldo); break;
        case 7: attendBlock<7>(qt, L.keys + base, L.values + base, t0[0], P0, t0, sc.block.data(), o, ldo); break;
        default: attendBlock<8>(qt, L.keys + base, L.values + base, t0[0], P0, t0, sc.block.data(), o, ldo); break;
      }
      return;
    }
#endif
    for (int i = 0; i < 16; i++) attendRow(m0 + i, h);
  };
  // tasks dealt out in turn: a prompt's later rows attend over more positions, and contiguous
  // halves gave the second thread up to 3x the first's work
  const int blockTasks = blocks * d.heads, tasks = blockTasks + (M - 16 * blocks) * d.heads;
  // decode rows: deal out (row, KV head) units, each thread taking all the query heads that share a
  // unit's keys and values in turn, so those are read from memory once (the 2nd and 3rd head find
  // them in cache). Dealt by single heads, both threads read every unit: at batch 8 of the 135M
  // shape this phase took 3.8-4.4 ms a step where the host's read rate was low, 2.3 dealt by unit.
  // Too few units to keep the threads even (batch 1 of a model with 3 KV heads) stay dealt by head.
  if (!together && M * d.kvHeads >= 4 * T) {
    for (int unit = t; unit < M * d.kvHeads; unit += T)
      for (int h = (unit % d.kvHeads) * group, e = h + group; h < e; h++) attendRow(unit / d.kvHeads, h);
    return;
  }
  for (int task = t; task < tasks; task += T) {
    if (task < blockTasks)
      attendRows(task / d.heads, task % d.heads);
    else
      attendRow(16 * blocks + (task - blockTasks) / d.heads, (task - blockTasks) % d.heads);
  }
}

inline void Decoder::layer(int t, int l, int M, int capacity, bool together) {
  const Dims& d = d_;
  const Layer& L = layers[l];
  Scratch& s = scratch_[t];
  const int T = pool_.threads(), H = d.hidden, I = d.inter, D = d.D;
  const int qOut = d.heads * D, kvOut = d.kvHeads * D, qkvN = qOut + 2 * kvOut;
  const int ldx = maxK_;
  int c0, c1;

  // q | k | v
  for (int m = 0; m < M; m++) rmsNorm(h_.data() + (size_t)m * H, L.inputNorm, s.x.data() + (size_t)m * ldx, H, d.eps);
  quantize(s, L.qkv, s.x.data(), ldx, M);
  share(qkvN, t, T, 16, c0, c1);
  linear(t, L.qkv, M, s.x.data(), ldx, s.rows.data(), {{c0, c1}}, qkv_.data(), qkvN);
  if (L.qkvBias)
    for (int m = 0; m < M; m++)
      for (int c = c0; c < c1; c++) qkv_[(size_t)m * qkvN + c] += L.qkvBias[c];
  lora(s, L, T_Q, s.x.data(), ldx, M, 0, c0, c1, qkv_.data(), qkvN);
  lora(s, L, T_K, s.x.data(), ldx, M, qOut, c0, c1, qkv_.data(), qkvN);
  lora(s, L, T_V, s.x.data(), ldx, M, qOut + kvOut, c0, c1, qkv_.data(), qkvN);
  warm(L.o, t, H, M);
  pool_.barrier();
  if (t == 0) mark(PH_QKV);

  attention(t, T, l, M, capacity, together);
  pool_.barrier();
  if (t == 0) mark(PH_ATTN);

  // o, added to the residual stream
  quantize(s, L.o, attn_.data(), qOut, M);
  share(H, t, T, 16, c0, c1);
  float* y = gu_.data();
  linear(t, L.o, M, attn_.data(), qOut, s.rows.data(), {{c0, c1}}, y, H);
  lora(s, L, T_O, attn_.data(), qOut, M, 0, c0, c1, y, H);
  for (int m = 0; m < M; m++)
    for (int c = c0; c < c1; c++) h_[(size_t)m * H + c] += y[(size_t)m * H + c] + (L.oBias ? L.oBias[c] : 0.f);
  warm(L.gateUp, t, I, M);
  pool_.barrier();
  if (t == 0) mark(PH_O);

  // gate | up and SiLU(gate) · up: a thread takes the same columns of both halves
  for (int m = 0; m < M; m++) rmsNorm(h_.data() + (size_t)m * H, L.mlpNorm, s.x.data() + (size_t)m * ldx, H, d.eps);
  quantize(s, L.gateUp, s.x.data(), ldx, M);
  share(I, t, T, 16, c0, c1);
  float* gu = gu_.data();
  linear(t, L.gateUp, M, s.x.data(), ldx, s.rows.data(), {{c0, c1}, {I + c0, I + c1}}, gu, 2 * I);
  lora(s, L, T_GATE, s.x.data(), ldx, M, 0, c0, c1, gu, 2 * I);
  lora(s, L, T_UP, s.x.data(), ldx, M, I, I + c0, I + c1, gu, 2 * I);
  for (int m = 0; m < M; m++) {
    float* g = gu + (size_t)m * 2 * I;
    if (L.gateUpBias)
      for (int c = c0; c < c1; c++) g[c] += L.gateUpBias[c], g[I + c] += L.gateUpBias[I + c];
    siluMul(g + c0, g + I + c0, act_.data() + (size_t)m * I + c0, c1 - c0);
  }
  warm(L.down, t, H, M);
  pool_.barrier();
  if (t == 0) mark(PH_GATE_UP);

  // down, added to the residual stream
  quantize(s, L.down, act_.data(), I, M);
  share(H, t, T, 16, c0, c1);
  linear(t, L.down, M, act_.data(), I, s.rows.data(), {{c0, c1}}, y, H);
  lora(s, L, T_DOWN, act_.data(), I, M, 0, c0, c1, y, H);
  for (int m = 0; m < M; m++)
    for (int c = c0; c < c1; c++) h_[(size_t)m * H + c] += y[(size_t)m * H + c] + (L.downBias ? L.downBias[c] : 0.f);
  if (l + 1 < d.layers)
    warm(layers[l + 1].qkv, t, qkvN, M);
  else
    warm(lmHead, t, d.vocab, M);
  pool_.barrier();
  if (t == 0) mark(PH_DOWN);
}

inline void Decoder::chunk(int M, int n, int capacity, bool together, float* logits) {
  const Dims& d = d_;
  const int H = d.hidden, V = d.vocab;
  if (profiling_) {
    profile_[PH_STEPS] += 1;
    last_ = Clock::now();
  }
  prompt_ = together;
  bool inOrder = M == n;  // every row writes its own line: one pass over the head for all of them
  for (int m = 0; m < M && inOrder; m++) inOrder = out_[m] == m;
  pool_.run([&](int t) {
    for (int l = 0; l < d.layers; l++) layer(t, l, M, capacity, together);
    Scratch& s = scratch_[t];
    int c0, c1;
    share(V, t, pool_.threads(), 16, c0, c1);
    if (inOrder) {
      for (int m = 0; m < M; m++)
        rmsNorm(h_.data() + (size_t)m * H, finalNorm, s.x.data() + (size_t)m * maxK_, H, d.eps);
      quantize(s, lmHead, s.x.data(), maxK_, M);
      linearColumns(lmHead, M, s.x.data(), maxK_, s.rows.data(), c0, c1, logits, V);
      if (t == 0) mark(PH_HEAD);
      return;
    }
    // dummy rows between live ones, or a prompt's rows before its last: only the rows that
    // answer a line of logits go through the head
    for (int m = 0; m < M; m++) {
      if (out_[m] < 0) continue;
      rmsNorm(h_.data() + (size_t)m * H, finalNorm, s.x.data(), H, d.eps);
      quantize(s, lmHead, s.x.data(), maxK_, 1);
      linearColumns(lmHead, 1, s.x.data(), maxK_, s.rows.data(), c0, c1, logits + (size_t)out_[m] * V, V);
    }
    if (t == 0) mark(PH_HEAD);
  });
}

inline void Decoder::step(int lo, int n, int capacity, const int32_t* ids, const int32_t* pos, float* logits) {
  const Dims& d = d_;
  const int H = d.hidden;
  int M = 0;
  for (int i = 0; i < n; i++) {
    if (pos[i] < 0) continue;
    row_[M] = lo + i;
    pos_[M] = pos[i];
    out_[M] = i;
    std::memcpy(h_.data() + (size_t)M * H, embed + (size_t)ids[i] * H, sizeof(float) * H);
    M++;
  }
  if (M > 0) chunk(M, n, capacity, false, logits);
}

inline void Decoder::pass(int M, const int32_t* kv, const int32_t* pos, const int32_t* ids, const int32_t* out,
                          int capacity, float* logits) {
  const int H = d_.hidden, R = std::max(1, d_.promptRows);
  for (int m0 = 0; m0 < M; m0 += R) {
    const int C = std::min(R, M - m0);
    for (int m = 0; m < C; m++) {
      row_[m] = kv[m0 + m];
      pos_[m] = pos[m0 + m];
      out_[m] = out[m0 + m];
      std::memcpy(h_.data() + (size_t)m * H, embed + (size_t)ids[m0 + m] * H, sizeof(float) * H);
    }
    chunk(C, -1, capacity, true, logits);
  }
}

}  // namespace openlora
