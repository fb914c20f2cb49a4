// Prompt chunks (16+ rows) of int4 tiled Linears on AMX (Sapphire Rapids and later): the tiles'
// codes dequantized to bf16 once per 16-column group, then TDPBF16PS multiplies 16 rows of bf16
// activations by them, accumulating in fp32 across all of K (no per-block work per row, which is
// what bounds the AVX-512 kernels at many rows). Prompts only: a decode row would pay the whole
// dequantization for one row. Its arithmetic is not decode's: activations are rounded to bf16
// (8-bit mantissa) instead of int8 per block, and each weight s·(code − zp) to bf16
// (docs/NATIVE-DECODE.md "Prompts" has the measured difference).
//
// Why not AMX's int8 products on the same codes (decode's integers exactly): a block of 32 k has
// its own scales on both sides, so each 16×16 product must be stored and scaled per row and block
// (~5 vector instructions a row), which measured no faster than the AVX-512 kernel.
#pragma once
#include "kernels.h"

#if defined(__AMX_BF16__) && defined(__AMX_TILE__) && OPENLORA_VNNI
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
// 64 bytes: C (16 × 16 fp32: tiles 0-3), A (16 rows × 32 bf16: 4, 7) and B (16 pairs of k × 16
// columns × 2 bf16: 5, 6).
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

// x [M, K] fp32 (row stride ldx) → [M rounded up to 16, Kp] bf16 (Kp ≥ K: zeros past K, and in
// rows past M)
inline void toBf16(const float* x, int ldx, int M, int K, int Kp, uint16_t* out) {
  const int Mp = (M + 15) / 16 * 16;
  std::memset(out, 0, sizeof(uint16_t) * Mp * Kp);
  for (int m = 0; m < M; m++) {
    uint16_t* o = out + (size_t)m * Kp;
    const float* xm = x + (size_t)m * ldx;
    int k = 0;
    for (; k + 32 <= K; k += 32)
      _mm512_storeu_si512(o + k, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(xm + k + 16), _mm512_loadu_ps(xm + k)));
    for (; k < K; k++) {
      uint32_t u;
      std::memcpy(&u, xm + k, 4);
      o[k] = (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
    }
  }
}

struct alignas(64) TileLine {
  uint8_t bytes[64];
};

// Group g's codes as bf16 B tiles [kb][16 rows of 64 bytes]: row kk of block b holds each
// column's weights at k = 32b + 2kk, 32b + 2kk + 1, each s · (code − zp) rounded to bf16.
inline void dequantGroup(const Linear& L, int g, TileLine* bt) {
  const int kb = L.kb;
  // 16-bit lanes [f0 of columns 0-15 | f1 of columns 0-15] → column c's pair (f0, f1) side by side
  const __m512i pairUp = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                          21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i nib = _mm512_set1_epi32(0x0F), m15 = _mm512_set1_epi32(15);
  const uint8_t* p = L.tiles + (size_t)g * L.groupBytes;
  for (int b0 = 0; b0 < kb; b0 += kTileChunk) {
    const int nb = kb - b0 < kTileChunk ? kb - b0 : kTileChunk;
    const uint16_t* sc = reinterpret_cast<const uint16_t*>(p);
    const uint8_t* zp = p + nb * 32;
    const uint8_t* codes = p + int4TileHeader(nb);
    for (int i = 0; i < nb; i++) {
      const __m512 s = _mm512_cvtph_ps(_mm256_load_si256((const __m256i*)(sc + i * kTileRows)));
      __m512i zi = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i*)(zp + (i / 2) * kTileRows)));
      zi = i & 1 ? _mm512_srli_epi32(zi, 4) : _mm512_and_si512(zi, m15);
      const __m512 zs = _mm512_mul_ps(_mm512_cvtepi32_ps(zi), s);
      TileLine* B = bt + (size_t)(b0 + i) * 16;
      for (int c = 0; c < 4; c++) {
        // lane r's byte j: code at k = 8c + j (low nibble) and 8c + 4 + j (high); B row kk holds
        // k = 2kk, 2kk + 1, so low nibbles of bytes (0, 1) are row 4c, (2, 3) row 4c + 1, and the
        // high nibbles rows 4c + 2, 4c + 3
        const __m512i v = _mm512_load_si512(codes + i * 256 + c * 64);
        __m512 w[8];
        for (int j = 0; j < 8; j++) {
          const int shift = (j & 3) * 8 + (j >> 2) * 4;
          w[j] = _mm512_fmsub_ps(_mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(v, shift), nib)), s, zs);
        }
        for (int h = 0; h < 2; h++)
          for (int pr = 0; pr < 2; pr++)
            _mm512_store_si512(B + 4 * c + 2 * h + pr,
                               _mm512_permutexvar_epi16(
                                   pairUp, (__m512i)_mm512_cvtne2ps_pbh(w[4 * h + 2 * pr + 1], w[4 * h + 2 * pr])));
      }
    }
    p += int4TileChunkBytes(nb);
  }
}

// y[m][16g0, 16g1) for m < M from the groups' tiles and xb (toBf16's [Mp, kb · 32]).
// Writes whole 16-row tiles: y must have room for M rounded up to 16 rows. Each C tile is a chain
// of dependent products (one per block), so four run side by side to hide their latency: two
// groups × two row tiles up to 32 rows, else one group × four row tiles at a time (a group is
// dequantized once for all rows: that, not the products, is most of the work at 32 rows).
inline void int4TilesBf16(const Linear& L, const uint16_t* xb, int M, int g0, int g1, float* y, int ldy) {
  const int kb = L.kb, K = kb * 32, tilesM = (M + 15) / 16;
  thread_local std::vector<TileLine> bt;
  if (bt.size() < (size_t)kb * 32) bt.resize((size_t)kb * 32);
  TileLine *b0 = bt.data(), *b1 = bt.data() + (size_t)kb * 16;
  const size_t lda = (size_t)K * 2, tileA = (size_t)16 * K, ldb = (size_t)ldy * 4, tileY = (size_t)16 * ldy;
  int g = g0;
  for (; tilesM <= 2 && g + 2 <= g1; g += 2) {
    dequantGroup(L, g, b0);
    dequantGroup(L, g + 1, b1);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int b = 0; b < kb; b++) {
      _tile_loadd(5, b0 + (size_t)b * 16, 64);
      _tile_loadd(6, b1 + (size_t)b * 16, 64);
      _tile_loadd(4, xb + (size_t)b * 32, lda);
      _tile_dpbf16ps(0, 4, 5);
      _tile_dpbf16ps(2, 4, 6);
      if (tilesM > 1) {
        _tile_loadd(7, xb + tileA + (size_t)b * 32, lda);
        _tile_dpbf16ps(1, 7, 5);
        _tile_dpbf16ps(3, 7, 6);
      }
    }
    float* out = y + (size_t)g * kTileRows;
    _tile_stored(0, out, ldb);
    _tile_stored(2, out + kTileRows, ldb);
    if (tilesM > 1) {
      _tile_stored(1, out + tileY, ldb);
      _tile_stored(3, out + tileY + kTileRows, ldb);
    }
  }
  for (; g < g1; g++) {
    dequantGroup(L, g, b0);
    // the dequantized group serves every row: four row tiles at a time
    for (int t0 = 0; t0 < tilesM; t0 += 4) {
      const int nt = tilesM - t0 < 4 ? tilesM - t0 : 4;
      const uint16_t* x0 = xb + (size_t)t0 * tileA;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int b = 0; b < kb; b++) {
        _tile_loadd(5, b0 + (size_t)b * 16, 64);
        const uint16_t* a = x0 + (size_t)b * 32;
        _tile_loadd(4, a, lda);
        _tile_dpbf16ps(0, 4, 5);
        if (nt > 1) {
          _tile_loadd(7, a + tileA, lda);
          _tile_dpbf16ps(1, 7, 5);
        }
        if (nt > 2) {
          _tile_loadd(4, a + 2 * tileA, lda);
          _tile_dpbf16ps(2, 4, 5);
        }
        if (nt > 3) {
          _tile_loadd(7, a + 3 * tileA, lda);
          _tile_dpbf16ps(3, 7, 5);
        }
      }
      float* out = y + (size_t)g * kTileRows + (size_t)t0 * tileY;
      _tile_stored(0, out, ldb);
      if (nt > 1) _tile_stored(1, out + tileY, ldb);
      if (nt > 2) _tile_stored(2, out + 2 * tileY, ldb);
      if (nt > 3) _tile_stored(3, out + 3 * tileY, ldb);
    }
  }
}

}  // namespace openlora
#else
#define OPENLORA_AMX 0
#endif
