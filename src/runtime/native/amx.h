// Prompt chunks (16+ rows) of int4 and int8 Linears on an int8 copy of the weights with one scale
// per output column (built at create, +1 byte a weight), the chunk's rows quantized to u8 with a
// scale and zero point per row; TDPBUSD on AMX (Sapphire Rapids and later) or `vpdpbusd` on
// AVX-512 VNNI elsewhere sums q·w over all of K in int32, and each output is scaled once. Prompts only: decode keeps the Linear's own
// weights and arithmetic. Not decode's arithmetic (per-column weights, per-row activations, as
// ORT's prefill graph computes: docs/NATIVE-DECODE.md "Prompts" has the measured difference).
//
// Tried before it: the int4 codes dequantized to bf16 per 16-column group for every chunk, then
// TDPBF16PS (the dequantization, ~0.34 vector instructions a weight, was ~40 % of a 32-token
// 135M prompt); and AMX int8 products on the int4 codes themselves (decode's integers exactly),
// where a block of 32 k has its own scales on both sides, so each 16×16 product must be stored and
// scaled per row and block (~5 vector instructions a row): no faster than AVX-512.
#pragma once
#include "kernels.h"

#if OPENLORA_VNNI
namespace openlora {

// 6 rows × 2 groups of sums a pass: 12 registers of sums, the most GCC keeps in registers here (8
// measured the same at 32 rows and 5 % slower at 256; 10 and 12 spill: 20-35 % slower)
constexpr int kVnniRows = 6, kVnniAhead = 16;

// ---- int8 prompt weights -------------------------------------------------------------------
// Each AMX Linear gets a copy of its weights as int8 with one scale per output column (max|w| /
// 127, round half to even), laid out as TDPBUSD's B tiles: group g of 16 columns, chunk j of 64 k,
// 16 rows of 64 bytes, row kk holding each column's weights at k = 64j + 4kk … 64j + 4kk + 3.
// Built once at create from whatever the Linear holds (int4 blocks with zero points, int8 blocks),
// so a prompt chunk's products need no per-block work and no dequantization: the int32 sums over
// all of K are scaled once per output. The same scheme as the ORT prefill graph's s8 columns.

// w[0, K) of output column j, as the Linear's own format computes it (int4 s·(code − zp), int8
// s·(code − 128))
inline void weightColumn(const Linear& L, int j, float* w) {
  const int B = L.block, kb = L.kb;
  const bool int4 = L.zp != nullptr;
  const uint8_t* z = int4 ? L.zp + (size_t)j * ((kb + 1) / 2) : nullptr;
  for (int b = 0; b < kb; b++) {
    const float s = L.scales[(size_t)j * kb + b];
    const int zp = int4 ? (b & 1 ? z[b >> 1] >> 4 : z[b >> 1] & 15) : 128;
    const uint8_t* q = L.q + ((size_t)j * kb + b) * (int4 ? B / 2 : B);
    for (int i = 0; i < B && b * B + i < L.K; i++) {
      const int code = int4 ? (i & 1 ? q[i / 2] >> 4 : q[i / 2] & 15) : q[i];
      w[b * B + i] = s * (float)(code - zp);
    }
  }
}

// Columns [16g0, 16g1) of L's int8 copy (L.int8Copy and beside it; kc chunks of 64 k a group).
// scratch: 16 · kc · 64 floats.
inline void buildInt8CopyGroups(const Linear& L, int g0, int g1, int8_t* tiles, float* scale, float* sum, float* scratch) {
  const int K = L.K, kc = L.int8CopyChunks, Kp = kc * 64;
  for (int g = g0; g < g1; g++) {
    int8_t* out = tiles + (size_t)g * kc * 1024;
    std::memset(out, 0, (size_t)kc * 1024);
    for (int c = 0; c < 16; c++) {
      const int j = g * 16 + c;
      float* w = scratch;
      std::fill(w, w + Kp, 0.f);
      weightColumn(L, j, w);
      float max = 0;
      for (int k = 0; k < K; k++) max = std::max(max, std::fabs(w[k]));
      const float s = max > 0 ? max / 127.f : 1.f;
      int total = 0;
      for (int k = 0; k < K; k++) {
        const int q = (int)std::nearbyint(w[k] / s);
        const int8_t v = (int8_t)std::min(127, std::max(-127, q));
        total += v;
        out[(size_t)(k / 64) * 1024 + ((k % 64) / 4) * 64 + c * 4 + k % 4] = v;
      }
      scale[j] = s;
      sum[j] = (float)total;
    }
  }
}

// x [M, K] fp32 (row stride ldx) → u8 [M rounded up to 16, Kp] with a scale and zero point per row,
// as DynamicQuantizeLinear computes them over one row: scale = (max(0, max) − min(0, min)) / 255,
// zero point = round(−min / scale), x ≈ scale · (q − zp). Zeros past K and in rows past M.
inline void quantizeU8(const float* x, int ldx, int M, int K, int Kp, uint8_t* out, float* sx, float* zx) {
  const int Mp = (M + 15) / 16 * 16;
  std::memset(out, 0, (size_t)Mp * Kp);
  for (int m = 0; m < M; m++) {
    const float* xm = x + (size_t)m * ldx;
    __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
      const __m512 v = _mm512_loadu_ps(xm + k);
      lo = _mm512_min_ps(lo, v), hi = _mm512_max_ps(hi, v);
    }
    float mn = _mm512_reduce_min_ps(lo), mx = _mm512_reduce_max_ps(hi);
    for (int r = k; r < K; r++) mn = std::min(mn, xm[r]), mx = std::max(mx, xm[r]);
    const float s = mx > mn ? (mx - mn) / 255.f : 1.f;
    const float zp = std::nearbyint(std::min(255.f, std::max(0.f, -mn / s)));
    sx[m] = s, zx[m] = zp;
    const __m512 inv = _mm512_set1_ps(1.f / s), z = _mm512_set1_ps(zp);
    const __m512i top = _mm512_set1_epi32(255), bottom = _mm512_setzero_si512();
    uint8_t* o = out + (size_t)m * Kp;
    for (k = 0; k + 16 <= K; k += 16) {
      // round(x / s) + zp, rounded half to even like the scalar tail
      __m512i q = _mm512_cvtps_epi32(_mm512_add_ps(_mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(xm + k), inv), _MM_FROUND_TO_NEAREST_INT), z));
      q = _mm512_min_epi32(_mm512_max_epi32(q, bottom), top);
      _mm_storeu_si128((__m128i*)(o + k), _mm512_cvtepi32_epi8(q));
    }
    for (; k < K; k++) o[k] = (uint8_t)std::min(255.f, std::max(0.f, std::nearbyint(xm[k] * (1.f / s)) + zp));
  }
}


// y[m][16g0, 16g1) for m < M from L's int8 copy and xq (quantizeU8's rows) on AVX-512 VNNI, for
// CPUs without AMX (AMD Zen 4): the same int32 sums as int8TilesAmx's TDPBUSD, scaled the same way,
// so a prompt's outputs do not depend on which of the two ran. The copy's layout is already
// VNNI's: a 64-byte line holds 16 columns × 4 k, so one `vpdpbusd` with a row's 4 input bytes
// broadcast advances 16 columns. R rows × 2 groups of sums stay in registers over all of K (no
// per-block scales: the point of the copy), the groups' lines read from memory for the first R
// rows and from L2 for the others. Decode keeps the Linear's own kernels.
// `pass`: the pass over these groups (m0 / kVnniRows); `stop`: the end of the thread's groups.
template <int R, bool Two>
inline void int8RowsVnni(const Linear& L, const uint8_t* xq, int Kp, const float* sx, const float* zx, int m0, int pass,
                         int g, const int8_t* stop, float* y, int ldy) {
  const size_t groupBytes = (size_t)L.int8CopyChunks * 1024;
  const int8_t* b0 = L.int8Copy + (size_t)g * groupBytes;
  const int8_t* b1 = b0 + groupBytes;
  const int8_t* end = b0 + (Two ? 2 : 1) * groupBytes;
  const uint8_t* x = xq + (size_t)m0 * Kp;
  __m512i acc[R][2];
  for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  const int quads = Kp / 4;
  for (int q = 0; q < quads; q++) {
    if (pass == 0) {
      // the first rows stream the weights from memory: ask for them a few lines ahead
      const int8_t* p0 = b0 + (size_t)(q + kVnniAhead) * 64;
      if (p0 < end) _mm_prefetch((const char*)p0, _MM_HINT_T0);
      if (Two && b1 + (size_t)(q + kVnniAhead) * 64 < end) _mm_prefetch((const char*)(b1 + (size_t)(q + kVnniAhead) * 64), _MM_HINT_T0);
    } else if (pass == 1) {
      // the second rows bring the next two groups (2 · quads lines) to L2 meanwhile, so that
      // their first pass computes instead of waiting on memory (Zen 4, two engines alternating:
      // a 1B int4 32-token prompt 114-115 → 99-107 ms, int8 124-134 → 122-125; 512 tokens, where
      // the later passes already hid it, unchanged)
      const int8_t* p0 = end + (size_t)q * 128;
      if (p0 < stop) _mm_prefetch((const char*)p0, _MM_HINT_T1);
      if (p0 + 64 < stop) _mm_prefetch((const char*)(p0 + 64), _MM_HINT_T1);
    }
    const __m512i w0 = _mm512_load_si512(b0 + (size_t)q * 64);
    const __m512i w1 = Two ? _mm512_load_si512(b1 + (size_t)q * 64) : w0;
    for (int r = 0; r < R; r++) {
      int32_t four;
      std::memcpy(&four, x + (size_t)r * Kp + 4 * q, 4);
      const __m512i a = _mm512_set1_epi32(four);
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], a, w0);
      if (Two) acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], a, w1);
    }
  }
  // sx · sw · (Σ q·w − zp · Σ w), as int8TilesAmx's emit
  for (int h = 0; h < (Two ? 2 : 1); h++) {
    const __m512 sw = _mm512_loadu_ps(L.int8CopyScale + (size_t)(g + h) * 16);
    const __m512 ws = _mm512_loadu_ps(L.int8CopySum + (size_t)(g + h) * 16);
    for (int r = 0; r < R; r++) {
      const int m = m0 + r;
      __m512 v = _mm512_cvtepi32_ps(acc[r][h]);
      v = _mm512_fnmadd_ps(_mm512_set1_ps(zx[m]), ws, v);
      _mm512_storeu_ps(y + (size_t)m * ldy + (size_t)(g + h) * 16, _mm512_mul_ps(v, _mm512_mul_ps(sw, _mm512_set1_ps(sx[m]))));
    }
  }
}

template <bool Two>
inline void int8GroupVnni(const Linear& L, const uint8_t* xq, int Kp, const float* sx, const float* zx, int M, int g,
                          const int8_t* stop, float* y, int ldy) {
  int m = 0, pass = 0;
  for (; m + kVnniRows <= M; m += kVnniRows, pass++) int8RowsVnni<kVnniRows, Two>(L, xq, Kp, sx, zx, m, pass, g, stop, y, ldy);
  switch (M - m) {  // the last rows in one pass
    case 5: return int8RowsVnni<5, Two>(L, xq, Kp, sx, zx, m, pass, g, stop, y, ldy);
    case 4: return int8RowsVnni<4, Two>(L, xq, Kp, sx, zx, m, pass, g, stop, y, ldy);
    case 3: return int8RowsVnni<3, Two>(L, xq, Kp, sx, zx, m, pass, g, stop, y, ldy);
    case 2: return int8RowsVnni<2, Two>(L, xq, Kp, sx, zx, m, pass, g, stop, y, ldy);
    case 1: return int8RowsVnni<1, Two>(L, xq, Kp, sx, zx, m, pass, g, stop, y, ldy);
    default: return;
  }
}

inline void int8TilesVnni(const Linear& L, const uint8_t* xq, const float* sx, const float* zx, int M, int g0, int g1,
                          float* y, int ldy) {
  const int Kp = L.int8CopyChunks * 64;
  const int8_t* stop = L.int8Copy + (size_t)g1 * L.int8CopyChunks * 1024;
  int g = g0;
  for (; g + 2 <= g1; g += 2) int8GroupVnni<true>(L, xq, Kp, sx, zx, M, g, stop, y, ldy);
  if (g < g1) int8GroupVnni<false>(L, xq, Kp, sx, zx, M, g, stop, y, ldy);
}

}  // namespace openlora
#endif

#if defined(__AMX_INT8__) && defined(__AMX_TILE__) && OPENLORA_VNNI
#define OPENLORA_AMX 1
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace openlora {

struct alignas(64) AmxConfig {
  uint8_t palette, startRow, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Linux hands AMX's tile state only to a process that asks (arch_prctl ARCH_REQ_XCOMP_PERM, once);
// OPENLORA_NATIVE_AMX=never keeps the AVX-512 kernels (A/B runs, tests). The tiles, all 16 rows of
// 64 bytes: C (16 × 16 int32: tiles 0-3), A (16 rows × 64 u8: 4, 7) and B (16 quads of k × 16
// columns × 4 s8: 5, 6).
inline bool amxPermitted() {
  static const bool permitted =
      syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
  if (!permitted) return false;
  const char* v = std::getenv("OPENLORA_NATIVE_AMX");  // read each time: tests switch it per case
  return v == nullptr || std::strcmp(v, "never") != 0;
}

// Loads the tile shapes on this thread; the caller runs its AMX kernels, then amxDone(). A thread
// keeps no AMX state between Linears: left loaded on a JS thread (the engine's thread 0 is the
// caller's), it crashed the process later with SIGILL.
inline bool amxReady() {
  if (!amxPermitted()) return false;
  static const AmxConfig config = [] {
    AmxConfig c{};
    c.palette = 1;
    for (int t = 0; t < 8; t++) c.rows[t] = 16, c.colsb[t] = 64;
    return c;
  }();
  _tile_loadconfig(&config);
  return true;
}

inline void amxDone() { _tile_release(); }

// y[m][16g0, 16g1) for m < M from L's int8 copy and xq (quantizeU8's rows). Each C tile is a chain
// of dependent products (one per 64 k), so four run side by side: two groups × two row tiles.
#ifndef OPENLORA_AMX_PREFETCH
#define OPENLORA_AMX_PREFETCH 8
#endif
constexpr int kPrefetchTiles = OPENLORA_AMX_PREFETCH;

inline void int8TilesAmx(const Linear& L, const uint8_t* xq, const float* sx, const float* zx, int M, int g0, int g1,
                         float* y, int ldy) {
  const int kc = L.int8CopyChunks, Kp = kc * 64, tilesM = (M + 15) / 16;
  alignas(64) int32_t c[4][16 * 16];
  const size_t groupBytes = (size_t)kc * 1024, tileA = (size_t)16 * Kp;
  // C tile (group g, row tile r) → y, scaled: sx · sw · (Σ q·w − zp · Σ w)
  auto emit = [&](const int32_t* ct, int g, int r) {
    const __m512 sw = _mm512_loadu_ps(L.int8CopyScale + (size_t)g * 16);
    const __m512 ws = _mm512_loadu_ps(L.int8CopySum + (size_t)g * 16);
    for (int i = 0; i < 16 && 16 * r + i < M; i++) {
      const int m = 16 * r + i;
      __m512 v = _mm512_cvtepi32_ps(_mm512_load_si512(ct + i * 16));
      v = _mm512_fnmadd_ps(_mm512_set1_ps(zx[m]), ws, v);
      _mm512_storeu_ps(y + (size_t)m * ldy + (size_t)g * 16, _mm512_mul_ps(v, _mm512_mul_ps(sw, _mm512_set1_ps(sx[m]))));
    }
  };
  for (int g = g0; g < g1; g += 2) {
    const bool two = g + 1 < g1;
    const int8_t* b0 = L.int8Copy + (size_t)g * groupBytes;
    const int8_t* b1 = b0 + groupBytes;
    for (int r = 0; r < tilesM; r += 2) {
      const bool rows2 = r + 1 < tilesM;
      const uint8_t* a0 = xq + (size_t)r * tileA;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int j = 0; j < kc; j++) {
        if (kPrefetchTiles > 0 && r == 0) {
          // the weights stream from memory at a prompt's few rows: ask for them ahead of the loads
          const int8_t* p = b0 + (size_t)(j + kPrefetchTiles) * 1024;
          const int8_t* end = L.int8Copy + (size_t)g1 * groupBytes;
          for (int line = 0; line < 1024 && p + line < end; line += 64) _mm_prefetch((const char*)p + line, _MM_HINT_T0);
          if (two) {
            const int8_t* q = b1 + (size_t)(j + kPrefetchTiles) * 1024;
            for (int line = 0; line < 1024 && q + line < end; line += 64) _mm_prefetch((const char*)q + line, _MM_HINT_T0);
          }
        }
        _tile_loadd(5, b0 + (size_t)j * 1024, 64);
        _tile_loadd(4, a0 + (size_t)j * 64, Kp);
        _tile_dpbusd(0, 4, 5);
        if (rows2) {
          _tile_loadd(7, a0 + tileA + (size_t)j * 64, Kp);
          _tile_dpbusd(1, 7, 5);
        }
        if (two) {
          _tile_loadd(6, b1 + (size_t)j * 1024, 64);
          _tile_dpbusd(2, 4, 6);
          if (rows2) _tile_dpbusd(3, 7, 6);
        }
      }
      _tile_stored(0, c[0], 64);
      if (rows2) _tile_stored(1, c[1], 64);
      if (two) _tile_stored(2, c[2], 64);
      if (two && rows2) _tile_stored(3, c[3], 64);
      emit(c[0], g, r);
      if (rows2) emit(c[1], g, r + 1);
      if (two) emit(c[2], g + 1, r);
      if (two && rows2) emit(c[3], g + 1, r + 1);
    }
  }
}

}  // namespace openlora
#else
#define OPENLORA_AMX 0
#endif
