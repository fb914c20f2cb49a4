// Matrix-vector kernels of the native decode path (issue 17): one Linear applied to a few rows
// (a decode step's batch), in the three weight formats the decoder graph stores, reading the very
// bytes ONNX Runtime reads (graph/linear.ts, quantize.ts, quantize4.ts):
//   fp32  [K, N] (MatMul's weight_t) or [N, K] rows (Gemm transB: a tied lm_head)
//   int8  MatMulNBits 8-bit: codes [N, kBlocks, block] u8, implicit zero point 128, fp32 scales
//   int4  MatMulNBits 4-bit: codes [N, kBlocks, block/2] (low nibble = even k), fp32 scales,
//         4-bit zero points packed two a byte
// Quantized formats multiply int8 activations (per block, scale = max|x| / 127, as MLAS does at
// accuracy_level 4) with the codes in int8 dot products: AVX512-VNNI where the compiler targets
// it (the addon is compiled on the machine that runs it, -march=native), plain loops otherwise.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#if defined(__F16C__)
#include <immintrin.h>  // _cvtss_sh / _cvtsh_ss
#endif
#if defined(__AVX512F__) && defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#include <immintrin.h>
#define OPENLORA_VNNI 1
#else
#define OPENLORA_VNNI 0
#endif

namespace openlora {

// fp16 conversions, round to nearest even (F16C where the CPU has it)
inline uint16_t toHalf(float f) {
#if defined(__F16C__)
  return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000, exp = (b >> 23) & 0xff, mant = b & 0x7fffff;
  if (exp == 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const int e = (int)exp - 112;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const uint32_t m = mant | 0x800000, shift = 14 - e;
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return sign | h;
  }
  uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return sign | h;
#endif
}
inline float fromHalf(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float f;
  if (exp == 0) f = std::ldexp((float)mant, -24);
  else if (exp == 31) f = mant ? NAN : INFINITY;
  else f = std::ldexp((float)(mant | 0x400), (int)exp - 25);
  uint32_t b;
  std::memcpy(&b, &f, 4);
  b |= sign;
  std::memcpy(&f, &b, 4);
  return f;
#endif
}

enum Format { FP32 = 0, INT8 = 1, INT4 = 2 };

struct Linear {
  int K = 0, N = 0;
  bool rows = false;  // fp32 only: [N, K] instead of [K, N]
  int block = 0;      // int8 / int4
  int kb = 0;         // blocks per output row: ceil(K / block)
  const float* w = nullptr;
  // fp32 weights of which every value is a bf16 value (a checkpoint stored in bf16, as most are):
  // their top 16 bits in w's layout. The kernels of 1-3 rows, which memory bounds, read these, 2
  // bytes a weight instead of 4, and widen each exactly: the same sums of the same values in the
  // same order (decoder.cc bf16Halves). Batches and prompt chunks, bound by FMAs, keep reading w.
  const uint16_t* w16 = nullptr;
  const uint8_t* q = nullptr;
  const float* scales = nullptr;
  const uint8_t* zp = nullptr;  // int4 only
  // int4: the same scales as fp16 (graph/quantize4.ts stores fp16 values), 2 bytes instead of 4
  // per 32 weights, which the SIMD kernel reads instead when set (decoder.cc: when the weights do
  // not fit in the last-level cache, where bytes, not instructions, bound the step)
  const uint16_t* scales16 = nullptr;
  // int4 (SIMD builds): the same weights re-laid out in tiles of 16 output rows (int4Tiles below),
  // which the kernel reads instead of q / scales / zp when set; groupBytes = one 16-row group
  const uint8_t* tiles = nullptr;
  size_t groupBytes = 0;
  // int4 / int8 where prompt chunks run on their int8 copy (amx.h, on AMX or AVX-512 VNNI): the
  // weights again as int8 per output column in TDPBUSD's tile layout (also VNNI's), each column's
  // scale and the sum of its codes
  const int8_t* int8Copy = nullptr;
  const float* int8CopyScale = nullptr;
  const float* int8CopySum = nullptr;
  int int8CopyChunks = 0;  // 64-k chunks of a group: ceil(K / 64)
  // where the kernels' software prefetches of weights ahead of use go: L2 instead of L1
  // (prefetchAhead; decoder.cc aheadToL2 decides per CPU)
  bool aheadToL2 = false;
};

#if OPENLORA_VNNI
// 16 bf16 values widened to the fp32 values they are (the low 16 bits zero): exact.
inline __m512 widenBf16(__m256i halves) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(halves), 16));
}
inline __m512 widenBf16(const uint16_t* p) { return widenBf16(_mm256_loadu_si256((const __m256i*)p)); }

// A weight line the kernel reads soon. On AMD Zen 4 a prefetch into L1 (32 KB there, beside the
// batch's input rows and the lines in use) measured slower than one into L2 (the tied head, one
// row: 3.8 against 4.9 ms; docs/NATIVE-DECODE.md "Kernels"); Intel keeps L1, as measured there.
inline void prefetchAhead(const Linear& L, const void* p) {
  if (L.aheadToL2)
    _mm_prefetch((const char*)p, _MM_HINT_T1);
  else
    _mm_prefetch((const char*)p, _MM_HINT_T0);
}
#endif

// One input row prepared for a quantized Linear: int8 codes per block (scale = max|x| / 127,
// round half to even, zero past K, as MLAS's QuantizeARow_CompInt8 does), the block's scale, and
// scale · Σ codes (for the zero-point term). int4 codes are laid out the way the weight nibbles
// unpack (int4Offset) and carry `sxp`, each pair of blocks' scales in the lanes of that layout.
struct QuantRow {
  int8_t* q;
  float* sx;
  float* xs;
  float* sxp;
};

// Where element i of int4 block b sits in a prepared row: a pair of blocks (2p, 2p + 1) is 64
// bytes [even k of 2p | even k of 2p+1 | odd k of 2p | odd k of 2p+1], matching one 32-byte load
// of their 16 + 16 code bytes widened to [low nibbles | high nibbles]; a last unpaired block is
// [even k | odd k].
inline int int4Offset(int b, int i, int kb) {
  const int half = i & 1 ? 1 : 0;
  if ((b | 1) < kb) return (b >> 1) * 64 + half * 32 + (b & 1) * 16 + i / 2;
  return b * 32 + half * 16 + i / 2;
}

inline void quantizeRowPlain(const float* x, int K, int block, int kb, bool int4, QuantRow out) {
  for (int b = 0; b < kb; b++) {
    const int lo = b * block;
    const int hi = lo + block < K ? lo + block : K;
    float amax = 0;
    for (int k = lo; k < hi; k++) amax = std::fmax(amax, std::fabs(x[k]));
    const float scale = amax / 127.f;
    const float inv = amax > 0 ? 127.f / amax : 0.f;
    int sum = 0;
    for (int i = 0; i < block; i++) {
      const int k = lo + i;
      const int v = k < hi ? (int)std::nearbyint(x[k] * inv) : 0;
      sum += v;
      out.q[int4 ? int4Offset(b, i, kb) : b * block + i] = (int8_t)v;
    }
    out.sx[b] = scale;
    out.xs[b] = scale * (float)sum;
  }
}

#if OPENLORA_VNNI
// 16 floats → 16 int8 codes at `inv`, round half to even (MLAS: _mm512_roundscale_ps, nearest)
inline __m128i codes16(__m512 v, __m512 inv) {
  return _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_roundscale_ps(_mm512_mul_ps(v, inv), _MM_FROUND_TO_NEAREST_INT)));
}
inline int sum16(__m128i c) { return _mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(c)); }
#endif

inline void quantizeRow(const float* x, int K, int block, int kb, bool int4, QuantRow out) {
#if OPENLORA_VNNI
  // whole blocks of 32 (int4) or multiples of 16 (int8) inside K: vectorized; anything else plain
  if (K == kb * block && (int4 ? block == 32 : block % 16 == 0)) {
    const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int b = 0; b < kb; b++) {
      const float* xb = x + (size_t)b * block;
      __m512 m = _mm512_setzero_ps();
      for (int i = 0; i < block; i += 16) m = _mm512_max_ps(m, _mm512_and_ps(_mm512_loadu_ps(xb + i), sign));
      const float amax = _mm512_reduce_max_ps(m);
      const __m512 inv = _mm512_set1_ps(amax > 0 ? 127.f / amax : 0.f);
      int sum = 0;
      if (int4) {
        const __m512 lo = _mm512_loadu_ps(xb), hi = _mm512_loadu_ps(xb + 16);
        const __m128i e = codes16(_mm512_permutex2var_ps(lo, even, hi), inv);
        const __m128i o = codes16(_mm512_permutex2var_ps(lo, odd, hi), inv);
        _mm_storeu_si128((__m128i*)(out.q + int4Offset(b, 0, kb)), e);
        _mm_storeu_si128((__m128i*)(out.q + int4Offset(b, 1, kb)), o);
        sum = sum16(e) + sum16(o);
      } else {
        for (int i = 0; i < block; i += 16) {
          const __m128i c = codes16(_mm512_loadu_ps(xb + i), inv);
          _mm_storeu_si128((__m128i*)(out.q + (size_t)b * block + i), c);
          sum += sum16(c);
        }
      }
      out.sx[b] = amax / 127.f;
      out.xs[b] = out.sx[b] * (float)sum;
    }
  } else
#endif
    quantizeRowPlain(x, K, block, kb, int4, out);
  if (!int4) return;
  for (int p = 0; p < kb / 2; p++)
    for (int lane = 0; lane < 16; lane++) out.sxp[p * 16 + lane] = out.sx[2 * p + ((lane >> 2) & 1)];
}

// Σ_b scale[b] · zp[b] · xs[b]: the zero points' share of one output's dot product (int8: 128).
inline float zeroTerm(const Linear& L, int j, const float* xs) {
  const float* s = L.scales + (size_t)j * L.kb;
  const uint8_t* z = L.zp ? L.zp + (size_t)j * ((L.kb + 1) / 2) : nullptr;
  float acc = 0;
  int b = 0;
#if OPENLORA_VNNI
  __m512 v = _mm512_setzero_ps();
  const __m128i m4 = _mm_set1_epi8(15);
  for (; b + 16 <= L.kb; b += 16) {
    __m512 zf = _mm512_set1_ps(128.f);
    if (z) {
      const __m128i packed = _mm_loadl_epi64((const __m128i*)(z + b / 2));
      const __m128i lo = _mm_and_si128(packed, m4), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), m4);
      zf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
    }
    v = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_loadu_ps(s + b), zf), _mm512_loadu_ps(xs + b), v);
  }
  acc = _mm512_reduce_add_ps(v);
#endif
  for (; b < L.kb; b++) acc += s[b] * (z ? (float)(b & 1 ? z[b >> 1] >> 4 : z[b >> 1] & 15) : 128.f) * xs[b];
  return acc;
}

// Plain loops: any block size, any CPU; the reference the SIMD paths agree with.
inline void quantColumnsPlain(const Linear& L, int M, const QuantRow* x, int j0, int j1, float* y, int ldy) {
  const int B = L.block, kb = L.kb;
  const bool int4 = L.zp != nullptr;
  const int bytes = int4 ? B / 2 : B;
  for (int j = j0; j < j1; j++) {
    const float* s = L.scales + (size_t)j * kb;
    for (int m = 0; m < M; m++) {
      float a = 0;
      for (int b = 0; b < kb; b++) {
        const uint8_t* q = L.q + ((size_t)j * kb + b) * bytes;
        int d = 0;
        for (int i = 0; i < B; i++) {
          const int code = int4 ? (i & 1 ? q[i / 2] >> 4 : q[i / 2] & 15) : q[i];
          d += code * x[m].q[int4 ? int4Offset(b, i, kb) : b * B + i];
        }
        a += s[b] * x[m].sx[b] * (float)d;
      }
      y[(size_t)m * ldy + j] = a - zeroTerm(L, j, x[m].xs);
    }
  }
}

#if OPENLORA_VNNI
constexpr int kPrefetchCodes = 4096, kPrefetchScales = 1024;

// For pair i of a group of eight: the lanes of its two scales (2i, 2i + 1) in the layout of one
// pair's dot product, [2i ×4, 2i+1 ×4, 2i ×4, 2i+1 ×4] (int4Offset).
alignas(64) inline constexpr int32_t kPairLanes[8][16] = {
#define OPENLORA_PAIR(i) {2 * i, 2 * i, 2 * i, 2 * i, 2 * i + 1, 2 * i + 1, 2 * i + 1, 2 * i + 1, \
                          2 * i, 2 * i, 2 * i, 2 * i, 2 * i + 1, 2 * i + 1, 2 * i + 1, 2 * i + 1}
    OPENLORA_PAIR(0), OPENLORA_PAIR(1), OPENLORA_PAIR(2), OPENLORA_PAIR(3),
    OPENLORA_PAIR(4), OPENLORA_PAIR(5), OPENLORA_PAIR(6), OPENLORA_PAIR(7)};
#undef OPENLORA_PAIR

inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// acc − the zero points' share of row j's dot product (zeroTerm) as a vector: the lanes are summed
// once at the end anyway, so the per-block terms need no reduction of their own.
inline __m512 subZeroTerm(const Linear& L, int j, const float* xs, __m512 acc) {
  const float* s = L.scales + (size_t)j * L.kb;
  const uint16_t* s16 = L.scales16 ? L.scales16 + (size_t)j * L.kb : nullptr;
  const uint8_t* z = L.zp ? L.zp + (size_t)j * ((L.kb + 1) / 2) : nullptr;
  const __m128i m4 = _mm_set1_epi8(15);
  for (int b = 0; b < L.kb; b += 16) {
    const int n = L.kb - b < 16 ? L.kb - b : 16;
    const __mmask16 mask = (__mmask16)((1u << n) - 1);
    __m512 zf = _mm512_set1_ps(128.f);
    if (z) {
      // (n + 1) / 2 bytes hold this group's zero points (b is even)
      const __m128i packed = _mm_maskz_loadu_epi8((__mmask16)((1u << ((n + 1) / 2)) - 1), z + b / 2);
      const __m128i lo = _mm_and_si128(packed, m4), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), m4);
      zf = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
    }
    const __m512 sv = s16 ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, s16 + b)) : _mm512_maskz_loadu_ps(mask, s + b);
    const __m512 xv = _mm512_maskz_loadu_ps(mask, xs + b);
    acc = _mm512_fnmadd_ps(_mm512_mul_ps(sv, zf), xv, acc);
  }
  return acc;
}

// y[m][j + r] = Σ lanes of acc[r][m]; four rows' sums come out of one shuffle tree.
template <int R, int M>
inline void store(const __m512 (&acc)[R][M], float* y, int ldy, int j) {
  for (int m = 0; m < M; m++) {
    if constexpr (R == 4) {
      const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(acc[0][m], acc[1][m]), _mm512_unpackhi_ps(acc[0][m], acc[1][m]));
      const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(acc[2][m], acc[3][m]), _mm512_unpackhi_ps(acc[2][m], acc[3][m]));
      // per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d
      const __m512 abcd = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, 0x44), _mm512_shuffle_ps(ab, cd, 0xEE));
      const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(abcd), _mm512_extractf32x8_ps(abcd, 1));
      _mm_storeu_ps(y + (size_t)m * ldy + j, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    } else {
      for (int r = 0; r < R; r++) y[(size_t)m * ldy + j + r] = _mm512_reduce_add_ps(acc[r][m]);
    }
  }
}

// int4, block 32: R output rows × M input rows at once (independent accumulators hide the FMA
// latency; one weight load serves every input row). Per pair of blocks: one 32-byte load widened
// to 64 codes, one dot product, one convert, one scale pattern, one FMA.
template <int R, int M, typename S>
inline void int4Rows(const Linear& L, const QuantRow* x, int j, float* y, int ldy) {
  constexpr bool half16 = std::is_same_v<S, uint16_t>;
  const int kb = L.kb, pairs = kb / 2;
  const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  const __m512i m4 = _mm512_set1_epi8(15);
  const __m512i zero = _mm512_setzero_si512();
  __m512 acc[R][M];
  for (int r = 0; r < R; r++)
    for (int m = 0; m < M; m++) acc[r][m] = _mm512_setzero_ps();
  const uint8_t* q[R];
  const S* s[R];
  for (int r = 0; r < R; r++) {
    q[r] = L.q + (size_t)(j + r) * kb * 16;
    if constexpr (half16)
      s[r] = L.scales16 + (size_t)(j + r) * kb;
    else
      s[r] = L.scales + (size_t)(j + r) * kb;
  }
  // The rows of a call are contiguous, and so are their scales: prefetch both streams a few KB
  // ahead of where the loop reads (rows are short at small widths, too short for the hardware
  // prefetcher to ramp up on its own; measured: the scale loads stalled most).
  const char* ahead = (const char*)q[0] + kPrefetchCodes;
  const char* aheadS = (const char*)s[0] + kPrefetchScales;
  // eight pairs at a time: their 16 fp16 scales converted in one instruction per row, each pair's
  // two spread over its lanes by a permute with a constant index (kPairLanes)
  for (int p0 = 0; p0 < pairs; p0 += 8) {
    const int count = pairs - p0 < 8 ? pairs - p0 : 8;
    const __mmask16 half = (__mmask16)((1u << (2 * count)) - 1);
    __m512 sv[R];
    for (int r = 0; r < R; r++) {
      if constexpr (half16)
        sv[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(half, s[r] + 2 * p0));
      else
        sv[r] = _mm512_maskz_loadu_ps(half, s[r] + 2 * p0);
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
      if (i >= count) break;
      const int p = p0 + i;
      _mm_prefetch(ahead + p * R * 32, _MM_HINT_T0);
      _mm_prefetch(ahead + p * R * 32 + 64, _MM_HINT_T0);
      const __m512i lanes = _mm512_load_si512(kPairLanes[i]);
      for (int r = 0; r < R; r++) {
        const __m512i packed = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i*)(q[r] + p * 32)));
        const __m512i w = _mm512_and_si512(_mm512_srlv_epi16(packed, shift), m4);
        const __m512 sp = _mm512_permutexvar_ps(lanes, sv[r]);
        for (int m = 0; m < M; m++) {
          const __m512i d = _mm512_dpbusd_epi32(zero, w, _mm512_loadu_si512(x[m].q + p * 64));
          acc[r][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(sp, _mm512_loadu_ps(x[m].sxp + p * 16)), acc[r][m]);
        }
      }
    }
    _mm_prefetch(aheadS + p0 * R * 2 * sizeof(S), _MM_HINT_T0);
  }
  for (int r = 0; r < R; r++) {
    for (int m = 0; m < M; m++) {
      if (kb & 1) {  // the unpaired last block
        const int b = kb - 1;
        const __m128i packed = _mm_loadu_si128((const __m128i*)(q[r] + b * 16));
        const __m128i m4x = _mm_set1_epi8(15);
        const __m256i w = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(packed, 4), m4x), _mm_and_si128(packed, m4x));
        const __m256i d = _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, _mm256_loadu_si256((const __m256i*)(x[m].q + b * 32)));
        float sb;
        if constexpr (half16)
          sb = _cvtsh_ss(s[r][b]);
        else
          sb = s[r][b];
        const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(sb * x[m].sx[b]));
        acc[r][m] = _mm512_add_ps(acc[r][m], _mm512_zextps256_ps512(v));
      }
      acc[r][m] = subZeroTerm(L, j + r, x[m].xs, acc[r][m]);
    }
  }
  store<R, M>(acc, y, ldy, j);
}

// int8 (implicit zero point 128), block B (64 or 128): one output row, M input rows. One row at a
// time reads the codes as one sequential stream; each block's FMA chain is short next to its
// B / 64 dot products, so more rows at once buy nothing here.
template <int M, int B>
inline void int8Row(const Linear& L, const QuantRow* x, int j, float* y, int ldy) {
  const int kb = L.kb;
  __m512 acc[M];
  for (int m = 0; m < M; m++) acc[m] = _mm512_setzero_ps();
  const uint8_t* q = L.q + (size_t)j * kb * B;
  const float* s = L.scales + (size_t)j * kb;
  for (int b = 0; b < kb; b++) {
    for (int c = 0; c < B; c += 64) prefetchAhead(L, (const char*)q + b * B + c + kPrefetchCodes);
    for (int m = 0; m < M; m++) {
      __m512i d = _mm512_setzero_si512();
      for (int c = 0; c < B; c += 64)
        d = _mm512_dpbusd_epi32(d, _mm512_loadu_si512(q + b * B + c), _mm512_loadu_si512(x[m].q + b * B + c));
      acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_set1_ps(s[b] * x[m].sx[b]), acc[m]);
    }
  }
  for (int m = 0; m < M; m++) y[(size_t)m * ldy + j] = _mm512_reduce_add_ps(subZeroTerm(L, j, x[m].xs, acc[m]));
}

// ---- int4 tiles: 16 output rows in the 16 lanes of a vector ------------------------------------
// The row-major int4 layout (one output row's codes, then the next row's) needs a horizontal sum
// per row and its scales spread over lanes by a permute: ~7 vector instructions per 64 weights,
// which bound a 135M-class model's step while its weights sit in cache (~2 ns / 64 weights here).
// Tiles put 16 rows side by side instead, as llama.cpp's repacked Q4_0 does: each 32-bit lane
// holds 4 codes of one row at the same 4 k, so one dot product with 4 activation bytes broadcast
// to every lane advances 16 rows at once, the 16 rows' scales and zero points are plain vectors
// and no sum crosses lanes (~3.5 instructions per 64 weights, measured 1.5-2× faster).
//
// A group (16 rows × all K) is chunks of up to 8 blocks of 32 k, one scale superblock each:
//   [d: 16 rows × fp16][qz: nb × 16 rows × 1 byte = q | (zero point & 3) << 6]
//   [zh: nb × 32 bits, row r's bits 2r..2r+1 = zero point >> 2][pad to 64 bytes][codes: nb × 256 bytes]
// where row r's scale of block i is q · d (graph/quantize4.ts: the quantizer's scales come so, d
// with at most 5 significant bits, q in 0..63), and a block's 256 code bytes are four 64-byte
// vectors c = 0..3 whose byte 4r + i holds row r's codes at k = 8c + i (low nibble) and k = 8c + 4
// + i (high nibble). Tiled Linears take their activations in natural k order (quantizeRow's int8
// layout); N must be a multiple of 16. 17.5 bytes a 32 weights: a 1B model's decode step, which
// reads every weight once, reads 676 MB against Q4_0's 695 (18.5 a block and 714 MB with fp16
// scales and zero points apart). Linears whose scales do not factor so keep the row-major layout.
constexpr int kTileRows = 16, kTileChunk = 8;
inline int int4TileHeader(int nb) { return (32 + nb * 20 + 63) / 64 * 64; }
inline int int4TileChunkBytes(int nb) { return int4TileHeader(nb) + nb * 256; }
inline size_t int4TileGroupBytes(int kb) {
  size_t bytes = 0;
  for (int b = 0; b < kb; b += kTileChunk) bytes += int4TileChunkBytes(kb - b < kTileChunk ? kb - b : kTileChunk);
  return bytes;
}

// Factors the n scales of one superblock as q[i] · d, d an fp16 value with ≤ 5 significant bits
// and q[i] in 0..63 (any such factoring reproduces them exactly); false where none exists.
inline bool superblockScales(const float* s, int n, uint16_t& d16, uint8_t* q) {
  float top = 0;
  for (int i = 0; i < n; i++) {
    if (!(s[i] >= 0) || !std::isfinite(s[i])) return false;
    top = std::max(top, s[i]);
  }
  if (top == 0) {
    d16 = 0;
    std::fill(q, q + n, 0);
    return true;
  }
  for (int qTop = 63; qTop >= 1; qTop--) {
    const float d = top / (float)qTop;
    uint32_t bits;
    std::memcpy(&bits, &d, 4);
    if (d * (float)qTop != top || (bits & 0x7FFFF) != 0 || fromHalf(toHalf(d)) != d) continue;
    bool all = true;
    for (int i = 0; i < n && all; i++) {
      const float k = std::nearbyint(s[i] / d);
      all = k <= 63 && k * d == s[i];
      q[i] = (uint8_t)k;
    }
    if (all) {
      d16 = toHalf(d);
      return true;
    }
  }
  return false;
}

// Whether every superblock of L's rows factors (superblockScales): what tiling L needs.
inline bool tileInt4Fits(const Linear& L) {
  uint16_t d;
  uint8_t q[kTileChunk];
  for (size_t row = 0; row < (size_t)L.N; row++)
    for (int b0 = 0; b0 < L.kb; b0 += kTileChunk)
      if (!superblockScales(L.scales + row * L.kb + b0, std::min(kTileChunk, L.kb - b0), d, q)) return false;
  return true;
}

// Writes L's int4 weights (row-major codes, fp32 scales and zero points; tileInt4Fits(L)) as tiles
// into `out` (N / 16 · int4TileGroupBytes(kb) bytes, 64-byte aligned).
inline void tileInt4(const Linear& L, uint8_t* out) {
  const int kb = L.kb;
  const size_t gb = int4TileGroupBytes(kb);
  std::memset(out, 0, gb * (L.N / kTileRows));
  for (int g = 0; g < L.N / kTileRows; g++) {
    uint8_t* p = out + g * gb;
    for (int b0 = 0; b0 < kb; b0 += kTileChunk) {
      const int nb = kb - b0 < kTileChunk ? kb - b0 : kTileChunk;
      uint16_t* d16 = reinterpret_cast<uint16_t*>(p);
      uint8_t* qz = p + 32;
      uint32_t* zh = reinterpret_cast<uint32_t*>(p + 32 + nb * 16);
      uint8_t* codes = p + int4TileHeader(nb);
      for (int r = 0; r < kTileRows; r++) {
        const size_t row = (size_t)g * kTileRows + r;
        uint8_t q[kTileChunk];
        superblockScales(L.scales + row * kb + b0, nb, d16[r], q);
        for (int i = 0; i < nb; i++) {
          const int b = b0 + i;
          const uint8_t zb = L.zp[row * ((kb + 1) / 2) + b / 2];
          const int z = b & 1 ? zb >> 4 : zb & 15;
          qz[i * kTileRows + r] = (uint8_t)(q[i] | (z & 3) << 6);
          zh[i] |= (uint32_t)(z >> 2) << (2 * r);
          const uint8_t* c4 = L.q + (row * kb + b) * 16;
          auto code = [c4](int k) { return k & 1 ? c4[k / 2] >> 4 : c4[k / 2] & 15; };
          for (int c = 0; c < 4; c++)
            for (int k = 0; k < 4; k++)
              codes[i * 256 + c * 64 + r * 4 + k] = (uint8_t)(code(8 * c + k) | code(8 * c + 4 + k) << 4);
        }
      }
      p += int4TileChunkBytes(nb);
    }
  }
}

// y[m][16g, 16g + 16) for M input rows from group g's tiles. Per block and row of 16 outputs:
// w · x = Σ codes · x codes (low nibbles in one dot-product chain; high nibbles masked in place,
// so that chain's sums are 16× theirs, shifted back exactly), and
// y += scale · (dot · sx − zero point · Σx), the zero points' term as quantColumns computes it.
template <int M>
inline void int4Tiles(const Linear& L, const QuantRow* x, int g, float* y, int ldy) {
  const uint8_t* p = L.tiles + (size_t)g * L.groupBytes;
  const __m512i lo4 = _mm512_set1_epi8(0x0F), hi4 = _mm512_set1_epi8((char)0xF0);
  const __m512i m63 = _mm512_set1_epi32(63), m3 = _mm512_set1_epi32(3);
  const __m512i rowBits = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512 acc[M];
  for (int m = 0; m < M; m++) acc[m] = _mm512_setzero_ps();
  for (int b0 = 0; b0 < L.kb; b0 += kTileChunk) {
    const int nb = L.kb - b0 < kTileChunk ? L.kb - b0 : kTileChunk;
    const __m512 d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i*)p));
    const uint8_t* qz = p + 32;
    const uint32_t* zh = reinterpret_cast<const uint32_t*>(p + 32 + nb * 16);
    const uint8_t* codes = p + int4TileHeader(nb);
    for (int i = 0; i < nb; i++) {
      const int b = b0 + i;
      const uint8_t* cb = codes + i * 256;
      // a few KB ahead: the group is one sequential stream (measured: 4 KB ahead beat 1-2 and 8)
      for (int c = 0; c < 4; c++) _mm_prefetch((const char*)cb + kPrefetchCodes + c * 64, _MM_HINT_T0);
      // the 16 rows' scales q · d (exact: ≤ 11 significant bits) and zero points
      const __m512i v = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i*)(qz + i * kTileRows)));
      const __m512 sw = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, m63)), d);
      const __m512i zHigh = _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32((int)zh[i]), rowBits), m3);
      const __m512 zf = _mm512_cvtepi32_ps(_mm512_or_si512(_mm512_srli_epi32(v, 6), _mm512_slli_epi32(zHigh, 2)));
      __m512i wl[4], wh[4];
      for (int c = 0; c < 4; c++) {
        const __m512i w = _mm512_load_si512(cb + c * 64);
        wl[c] = _mm512_and_si512(w, lo4);
        wh[c] = _mm512_and_si512(w, hi4);
      }
      for (int m = 0; m < M; m++) {
        const int32_t* xq = reinterpret_cast<const int32_t*>(x[m].q + b * 32);
        __m512i dl = _mm512_setzero_si512(), dh = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
          dl = _mm512_dpbusd_epi32(dl, wl[c], _mm512_set1_epi32(xq[2 * c]));
          dh = _mm512_dpbusd_epi32(dh, wh[c], _mm512_set1_epi32(xq[2 * c + 1]));
        }
        const __m512i dot = _mm512_add_epi32(dl, _mm512_srai_epi32(dh, 4));
        const __m512 t = _mm512_fmsub_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(x[m].sx[b]),
                                         _mm512_mul_ps(zf, _mm512_set1_ps(x[m].xs[b])));
        acc[m] = _mm512_fmadd_ps(sw, t, acc[m]);
      }
    }
    p += int4TileChunkBytes(nb);
  }
  for (int m = 0; m < M; m++) _mm512_storeu_ps(y + (size_t)m * ldy + (size_t)g * kTileRows, acc[m]);
}

template <int M>
inline void quantColumnsVnni(const Linear& L, const QuantRow* x, int j0, int j1, float* y, int ldy) {
  if (L.tiles != nullptr) {  // [j0, j1) in whole groups: the decoder splits columns in multiples of 16
    for (int j = j0; j < j1; j += kTileRows) int4Tiles<M>(L, x, j / kTileRows, y, ldy);
    return;
  }
  if (L.zp == nullptr) {
    for (int j = j0; j < j1; j++) L.block == 64 ? int8Row<M, 64>(L, x, j, y, ldy) : int8Row<M, 128>(L, x, j, y, ldy);
    return;
  }
  int j = j0;
  if (L.scales16) {
    for (; j + 4 <= j1; j += 4) int4Rows<4, M, uint16_t>(L, x, j, y, ldy);
    for (; j < j1; j++) int4Rows<1, M, uint16_t>(L, x, j, y, ldy);
  } else {
    for (; j + 4 <= j1; j += 4) int4Rows<4, M, float>(L, x, j, y, ldy);
    for (; j < j1; j++) int4Rows<1, M, float>(L, x, j, y, ldy);
  }
}
#endif

// fp32 [N, K] rows (Gemm transB: a tied lm_head): y[m][j] = x[m] · W[j], 4 weight rows at once,
// each block of 4 rows applied to every input row while it sits in L1: a batch reads the head
// from memory once, not once per row (a 135M head is 113 MB; batch 8 re-read it 8 times, which a
// 300 MB L3 hid and a 32 MB one did not: 8 sequences' step 64-78 ms on AMD Zen 4).
#if OPENLORA_VNNI
// 2 weight rows × 8 input rows of sums at once for a batch: 10 loads a 16 FMAs where the 4-row
// block below loads 5 a 4 (the batch-8 head on AMD Zen 4: 4.8-5.6 against 5.8-6.3 ms). The same
// sums in the same order as the block below. Reads x rows up to m0 + 8 (whole 16s).
constexpr int kRowsHeadAhead = 16;
template <bool Halves>
inline void rowPairs8(const Linear& L, int M, const float* x, int ldx, int j, float* y, int ldy) {
  const int K = L.K;
  const float* w = L.w + (size_t)j * K;
  const float* pf = w + (size_t)kRowsHeadAhead * K;
  const uint16_t* h = Halves ? L.w16 + (size_t)j * K : nullptr;
  for (int m0 = 0; m0 < M; m0 += 8) {
    const float* xm = x + (size_t)m0 * ldx;
    __m512 a[2][8];
    for (int i = 0; i < 2; i++)
      for (int m = 0; m < 8; m++) a[i][m] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
      __m512 w0, w1;
      if constexpr (Halves) {
        if (m0 == 0 && (k & 31) == 0) {
          const uint16_t* ph = h + (size_t)kRowsHeadAhead * K + k;
          prefetchAhead(L, ph), prefetchAhead(L, ph + K);
        }
        w0 = widenBf16(h + k), w1 = widenBf16(h + K + k);
      } else {
        if (m0 == 0) prefetchAhead(L, pf + k), prefetchAhead(L, pf + K + k);
        w0 = _mm512_loadu_ps(w + k), w1 = _mm512_loadu_ps(w + K + k);
      }
      for (int m = 0; m < 8; m++) {
        const __m512 xv = _mm512_loadu_ps(xm + (size_t)m * ldx + k);
        a[0][m] = _mm512_fmadd_ps(w0, xv, a[0][m]);
        a[1][m] = _mm512_fmadd_ps(w1, xv, a[1][m]);
      }
    }
    for (int m = 0; m < 8 && m0 + m < M; m++)
      for (int i = 0; i < 2; i++) {
        float r = _mm512_reduce_add_ps(a[i][m]);
        for (int kk = k; kk < K; kk++) r += w[(size_t)i * K + kk] * xm[(size_t)m * ldx + kk];
        y[(size_t)(m0 + m) * ldy + j + i] = r;
      }
  }
}
#endif

#if OPENLORA_VNNI
// rowColumns' block of 4 weight rows from the bf16 halves (Linear::w16): the same sums in the same
// order, each 16-weight load half the bytes. K is a multiple of 32 in every model we serve; the
// tail below reads w for any other.
inline void rowBlock4Halves(const Linear& L, int M, const float* x, int ldx, int j, float* y, int ldy) {
  const int K = L.K;
  const uint16_t* w = L.w16 + (size_t)j * K;
  const uint16_t* pf = j + 8 + 4 <= L.N ? w + (size_t)8 * K : nullptr;
  const float* w32 = L.w + (size_t)j * K;
  for (int m = 0; m < M; m++) {
    const float* xm = x + (size_t)m * ldx;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int k = 0;
    for (; k + 16 <= K; k += 16) {
      if (pf != nullptr && m == 0 && (k & 31) == 0)
        for (int r = 0; r < 4; r++) prefetchAhead(L, pf + (size_t)r * K + k);
      const __m512 xv = _mm512_loadu_ps(xm + k);
      a0 = _mm512_fmadd_ps(widenBf16(w + k), xv, a0);
      a1 = _mm512_fmadd_ps(widenBf16(w + K + k), xv, a1);
      a2 = _mm512_fmadd_ps(widenBf16(w + 2 * K + k), xv, a2);
      a3 = _mm512_fmadd_ps(widenBf16(w + 3 * K + k), xv, a3);
    }
    float r[4] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2), _mm512_reduce_add_ps(a3)};
    for (; k < K; k++)
      for (int i = 0; i < 4; i++) r[i] += w32[(size_t)i * K + k] * xm[k];
    for (int i = 0; i < 4; i++) y[(size_t)m * ldy + j + i] = r[i];
  }
}
#endif

inline void rowColumns(const Linear& L, int M, const float* x, int ldx, int j0, int j1, float* y, int ldy) {
  const int K = L.K;
  int j = j0;
#if OPENLORA_VNNI
  if (M >= 4)
    for (; j + 2 <= j1; j += 2)
      L.w16 != nullptr ? rowPairs8<true>(L, M, x, ldx, j, y, ldy) : rowPairs8<false>(L, M, x, ldx, j, y, ldy);
  if (L.w16 != nullptr)
    for (; j + 4 <= j1; j += 4) rowBlock4Halves(L, M, x, ldx, j, y, ldy);
  for (; j + 4 <= j1; j += 4) {
    const float* w = L.w + (size_t)j * K;
    const float* pf = j + 8 + 4 <= j1 ? w + (size_t)8 * K : nullptr;
    for (int m = 0; m < M; m++) {
      const float* xm = x + (size_t)m * ldx;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      int k = 0;
      for (; k + 16 <= K; k += 16) {
        if (pf != nullptr && m == 0)
          for (int r = 0; r < 4; r++) prefetchAhead(L, pf + (size_t)r * K + k);
        const __m512 xv = _mm512_loadu_ps(xm + k);
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + k), xv, a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + K + k), xv, a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + 2 * K + k), xv, a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + 3 * K + k), xv, a3);
      }
      float r[4] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2), _mm512_reduce_add_ps(a3)};
      for (; k < K; k++)
        for (int i = 0; i < 4; i++) r[i] += w[(size_t)i * K + k] * xm[k];
      for (int i = 0; i < 4; i++) y[(size_t)m * ldy + j + i] = r[i];
    }
  }
#endif
  for (; j < j1; j++) {
    const float* w = L.w + (size_t)j * K;
    for (int m = 0; m < M; m++) {
      const float* xm = x + (size_t)m * ldx;
      float a = 0;
      for (int k = 0; k < K; k++) a += w[k] * xm[k];
      y[(size_t)m * ldy + j] = a;
    }
  }
}

// fp32 [K, N]: y[m][j0, j1) = Σ_{k in [k0, k1)} x[m][k] · W[k][j0, j1), four weight rows per pass
// over y so the output segment is loaded and stored once per four rows. A thread's columns are a
// short segment of every row (1-3 KB in a 135M model), too short for the hardware prefetcher to
// stream, so the first row pass prefetches the segment kRowsAhead rows below: measured on the
// 135M shape's decode step (2 threads), 13.3 ms against 14.3 for the same kernel without it and
// 14.2 for splitting rows between threads instead (docs/NATIVE-DECODE.md "Kernels").
constexpr int kRowsAhead = 8;
#if OPENLORA_VNNI
// kColumns' four weight rows at a time from the bf16 halves (Linear::w16): the same FMAs in the
// same order, 32 columns a pass so one prefetch covers a 64-byte line of each row.
inline void kColumnsHalves(const Linear& L, int M, const float* x, int ldx, int j0, int j1, float* y, int ldy, int k) {
  const int N = L.N;
  const uint16_t* w = L.w16 + (size_t)k * N;
  const float* w32 = L.w + (size_t)k * N;
  const uint16_t* ahead = w + (size_t)kRowsAhead * N;
  for (int m = 0; m < M; m++) {
    const float* xm = x + (size_t)m * ldx + k;
    float* out = y + (size_t)m * ldy;
    const float a0 = xm[0], a1 = xm[1], a2 = xm[2], a3 = xm[3];
    const __m512 v0 = _mm512_set1_ps(a0), v1 = _mm512_set1_ps(a1), v2 = _mm512_set1_ps(a2), v3 = _mm512_set1_ps(a3);
    const bool pf = m == 0 && k + kRowsAhead + 4 <= L.K;
    int j = j0;
    for (; j + 32 <= j1; j += 32) {
      if (pf)
        for (int r = 0; r < 4; r++) prefetchAhead(L, ahead + (size_t)r * N + j);
      for (int h = 0; h < 32; h += 16) {
        __m512 o = _mm512_loadu_ps(out + j + h);
        o = _mm512_fmadd_ps(v0, widenBf16(w + j + h), o);
        o = _mm512_fmadd_ps(v1, widenBf16(w + N + j + h), o);
        o = _mm512_fmadd_ps(v2, widenBf16(w + 2 * N + j + h), o);
        o = _mm512_fmadd_ps(v3, widenBf16(w + 3 * N + j + h), o);
        _mm512_storeu_ps(out + j + h, o);
      }
    }
    for (; j + 16 <= j1; j += 16) {
      __m512 o = _mm512_loadu_ps(out + j);
      o = _mm512_fmadd_ps(v0, widenBf16(w + j), o);
      o = _mm512_fmadd_ps(v1, widenBf16(w + N + j), o);
      o = _mm512_fmadd_ps(v2, widenBf16(w + 2 * N + j), o);
      o = _mm512_fmadd_ps(v3, widenBf16(w + 3 * N + j), o);
      _mm512_storeu_ps(out + j, o);
    }
    for (; j < j1; j++) out[j] += a0 * w32[j] + a1 * w32[N + j] + a2 * w32[2 * N + j] + a3 * w32[3 * N + j];
  }
}
#endif

inline void kColumns(const Linear& L, int M, const float* x, int ldx, int j0, int j1, float* y, int ldy, int k0,
                     int k1) {
  const int N = L.N;
  for (int m = 0; m < M; m++) std::memset(y + (size_t)m * ldy + j0, 0, sizeof(float) * (j1 - j0));
  int k = k0;
#if OPENLORA_VNNI
  if (L.w16 != nullptr)
    for (; k + 4 <= k1; k += 4) kColumnsHalves(L, M, x, ldx, j0, j1, y, ldy, k);
#endif
  for (; k + 4 <= k1; k += 4) {
    const float* w = L.w + (size_t)k * N;
#if OPENLORA_VNNI
    const float* ahead = k + kRowsAhead + 4 <= k1 ? w + (size_t)kRowsAhead * N : nullptr;
#endif
    for (int m = 0; m < M; m++) {
      const float* xm = x + (size_t)m * ldx + k;
      float* out = y + (size_t)m * ldy;
      const float a0 = xm[0], a1 = xm[1], a2 = xm[2], a3 = xm[3];
      int j = j0;
#if OPENLORA_VNNI
      const __m512 v0 = _mm512_set1_ps(a0), v1 = _mm512_set1_ps(a1), v2 = _mm512_set1_ps(a2), v3 = _mm512_set1_ps(a3);
      const float* pf = m == 0 ? ahead : nullptr;
      for (; j + 16 <= j1; j += 16) {
        if (pf != nullptr)
          for (int r = 0; r < 4; r++) prefetchAhead(L, pf + (size_t)r * N + j);
        __m512 o = _mm512_loadu_ps(out + j);
        o = _mm512_fmadd_ps(v0, _mm512_loadu_ps(w + j), o);
        o = _mm512_fmadd_ps(v1, _mm512_loadu_ps(w + N + j), o);
        o = _mm512_fmadd_ps(v2, _mm512_loadu_ps(w + 2 * N + j), o);
        o = _mm512_fmadd_ps(v3, _mm512_loadu_ps(w + 3 * N + j), o);
        _mm512_storeu_ps(out + j, o);
      }
#endif
      for (; j < j1; j++) out[j] += a0 * w[j] + a1 * w[N + j] + a2 * w[2 * N + j] + a3 * w[3 * N + j];
    }
  }
  for (; k < k1; k++) {
    const float* w = L.w + (size_t)k * N;
    for (int m = 0; m < M; m++) {
      const float a = x[(size_t)m * ldx + k];
      float* out = y + (size_t)m * ldy;
      for (int j = j0; j < j1; j++) out[j] += a * w[j];
    }
  }
}

#if OPENLORA_VNNI
// y[m][j0, j1) = Σ_k x[m][k] · W[k][j] over fp32 [K, N] weights for kGemmRows rows or more:
// 6 rows × 64 columns held in 24 registers while k runs (the last 1-5 rows in one pass), k in
// blocks of kGemmK. The first pass over a block reads the block's 64-column strip of weights from W (one
// 256-byte segment a row, N floats apart) and copies it into a contiguous 32 KB panel that the
// other passes then read from L1: read in place, rows N floats apart fall into the same few L1
// sets when N · 4 is a multiple of 4 KB (gate|up of a 135M model: 12 KB), and every further pass
// took the strip from L2 again. kColumns instead adds each k into y in memory (a load and a store
// per 4 FMAs), right for a step's 1-3 rows. Every sum is the same FMAs in k order whatever the
// pass's rows.
// Why 6 rows: 4 load 16 products' inputs a k with 4 weight vectors and 4 broadcasts; 6 the same 4
// vectors for 24 (29 of the 32 registers). One core, a panel in L1: 4 × 64 90 GFLOP/s, 6 × 64 115
// (the FMA peak measured here 117; 8 × 48 112-115, 12 × 32 106-108) on the Zen 4 host; in the
// engine, a 135M fp32 512-token prompt 879 → 743 ms (two engines in one process, alternating).
constexpr int kGemmK = 128, kGemmRows = 4, kGemmAhead = 16;

// `next` (the first row segment of the block the kernel reads after this one, `nextLines` 64-byte
// lines of it) and `pass` (the pass over this block, First: 0): the passes after the first
// read the panel from L1, and those that are Prefetching bring the next block's strip to L2
// meanwhile, one line per k, so the next first pass does not wait on memory (the strip of a 135M model's Linears comes from memory
// once a prompt: 538 MB, ~15 ms of a 32-token prompt's ~35).
enum class GemmPass { First, Prefetching, Plain };
// Halves: the strips come from the bf16 halves (Linear::w16), 128 bytes a row segment, widened
// into the panel by the first pass; `next` then points into the halves, 2 lines a row.
template <GemmPass P, bool Masked, bool Halves, int R>
inline void gemmRows(const Linear& L, const float* xr, int ldx, int j, int kb, int ke, const __mmask16 (&mk)[4],
                     float* panel, float* yr, int ldy, bool full, const void* next, int nextLines, int pass) {
  const int N = L.N, K = L.K;
  // the sums in a local array, loaded from y and stored back here: in an array of the caller's,
  // GCC stored all of them to the stack every k (the panel's float stores may alias them), which
  // held the kernel to ~35 % of the FMAs; and handing them over through one cost a copy each way
  // through the stack, ~10 % of a pass
  __m512 acc[R][4];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < 4; v++)
      acc[r][v] = kb == 0 ? _mm512_setzero_ps()
                  : full  ? _mm512_loadu_ps(yr + (size_t)r * ldy + 16 * v)
                          : _mm512_maskz_loadu_ps(mk[v], yr + (size_t)r * ldy + 16 * v);
  for (int k = kb; k < ke; k++) {
    __m512 wv[4];
    float* p = panel + (size_t)(k - kb) * 64;
    if constexpr (P == GemmPass::Prefetching) {
      const int line = (pass - 1) * kGemmK + (k - kb);
      if (line < nextLines) {
        const char* at = Halves ? (const char*)((const uint16_t*)next + (size_t)(line >> 1) * N + 32 * (line & 1))
                                : (const char*)((const float*)next + (size_t)(line >> 2) * N + 16 * (line & 3));
        _mm_prefetch(at, _MM_HINT_T1);
      }
    }
    if constexpr (P == GemmPass::First && Halves) {
      const uint16_t* h = L.w16 + (size_t)k * N + j;
      if (k + kGemmAhead < K)
        for (int v = 0; v < 4; v += 2) prefetchAhead(L, h + (size_t)kGemmAhead * N + 16 * v);
      for (int v = 0; v < 4; v++) {
        wv[v] = Masked ? widenBf16(_mm256_maskz_loadu_epi16(mk[v], h + 16 * v)) : widenBf16(h + 16 * v);
        _mm512_store_ps(p + 16 * v, wv[v]);
      }
    } else if constexpr (P == GemmPass::First) {
      const float* w = L.w + (size_t)k * N + j;
      if (k + kGemmAhead < K)
        // one 256-byte row segment per k at a stride of N floats: ask for it ahead (the loads
        // waited on it, ~50 % of the kernel)
        for (int v = 0; v < 4; v++) prefetchAhead(L, w + (size_t)kGemmAhead * N + 16 * v);
      for (int v = 0; v < 4; v++) {
        wv[v] = Masked ? _mm512_maskz_loadu_ps(mk[v], w + 16 * v) : _mm512_loadu_ps(w + 16 * v);
        _mm512_store_ps(p + 16 * v, wv[v]);
      }
    } else {
      for (int v = 0; v < 4; v++) wv[v] = _mm512_load_ps(p + 16 * v);
    }
    for (int r = 0; r < R; r++) {
      const __m512 a = _mm512_set1_ps(xr[(size_t)r * ldx + k]);
      for (int v = 0; v < 4; v++) acc[r][v] = _mm512_fmadd_ps(a, wv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < 4; v++) {
      float* o = yr + (size_t)r * ldy + 16 * v;
      if (full)
        _mm512_storeu_ps(o, acc[r][v]);
      else
        _mm512_mask_storeu_ps(o, mk[v], acc[r][v]);
    }
}

template <int R>
inline void gemmAcross(const Linear& L, int M, const float* x, int ldx, int j0, int j1, float* y, int ldy);

inline void gemmF32(const Linear& L, int M, const float* x, int ldx, int j0, int j1, float* y, int ldy) {
  alignas(64) static thread_local float panel[kGemmK * 64];
  const int K = L.K;
  const bool halves = L.w16 != nullptr;
  for (int j = j0; j < j1; j += 64) {
    if (j1 - j <= 32) {
      // a last strip of 32 columns or fewer (a thread's half of a 576-wide Linear is 4.5 strips):
      // 8 rows × 32 columns at a time instead of 6 × 64 with half the lanes masked off; the same
      // sums in the same order
      for (int m0 = 0; m0 < M; m0 += 8)
        gemmAcross<8>(L, std::min(8, M - m0), x + (size_t)m0 * ldx, ldx, j, j1, y + (size_t)m0 * ldy, ldy);
      break;
    }
    __mmask16 mk[4];
    for (int v = 0; v < 4; v++) {
      const int left = j1 - (j + 16 * v);
      mk[v] = left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : (__mmask16)0;
    }
    const bool full = j + 64 <= j1;
    for (int kb = 0; kb < K; kb += kGemmK) {
      const int ke = std::min(K, kb + kGemmK);
      // the block after this one: the strip's next k, or the next strip's first
      const int nk = ke < K ? ke : 0, nj = ke < K ? j : j + 64;
      const void* next = halves ? (const void*)(L.w16 + (size_t)nk * L.N + nj) : (const void*)(L.w + (size_t)nk * L.N + nj);
      const int lineWords = halves ? 32 : 16;
      const int nextLines =
          nj < j1 ? std::min(K - nk, kGemmK) * ((std::min(j1 - nj, 64) + lineWords - 1) / lineWords) : 0;
      // one pass of R rows from m0: the first pass (0) fills the panel, the next ones prefetch
      // the next block while they read it
      auto rows = [&]<int R>(int m0, int pass) {
        const float* xr = x + (size_t)m0 * ldx;
        float* yr = y + (size_t)m0 * ldy + j;
        if (pass == 0 && full)
          halves ? gemmRows<GemmPass::First, false, true, R>(L, xr, ldx, j, kb, ke, mk, panel, yr, ldy, full, next, nextLines, pass)
                 : gemmRows<GemmPass::First, false, false, R>(L, xr, ldx, j, kb, ke, mk, panel, yr, ldy, full, next, nextLines, pass);
        else if (pass == 0)
          halves ? gemmRows<GemmPass::First, true, true, R>(L, xr, ldx, j, kb, ke, mk, panel, yr, ldy, full, next, nextLines, pass)
                 : gemmRows<GemmPass::First, true, false, R>(L, xr, ldx, j, kb, ke, mk, panel, yr, ldy, full, next, nextLines, pass);
        else if ((pass - 1) * kGemmK < nextLines)
          halves ? gemmRows<GemmPass::Prefetching, false, true, R>(L, xr, ldx, j, kb, ke, mk, panel, yr, ldy, full, next, nextLines, pass)
                 : gemmRows<GemmPass::Prefetching, false, false, R>(L, xr, ldx, j, kb, ke, mk, panel, yr, ldy, full, next, nextLines, pass);
        else
          gemmRows<GemmPass::Plain, false, false, R>(L, xr, ldx, j, kb, ke, mk, panel, yr, ldy, full, next, nextLines, pass);
      };
      // 6-row passes while 6 rows are left, then one of the 1-5 left: no x row past M is read
      int m0 = 0, pass = 0;
      for (; m0 + 6 <= M; m0 += 6, pass++) rows.template operator()<6>(m0, pass);
      switch (M - m0) {
        case 1: rows.template operator()<1>(m0, pass); break;
        case 2: rows.template operator()<2>(m0, pass); break;
        case 3: rows.template operator()<3>(m0, pass); break;
        case 4: rows.template operator()<4>(m0, pass); break;
        case 5: rows.template operator()<5>(m0, pass); break;
        default: break;
      }
    }
  }
}

// y[m][j0, j1) for a batch's 4-8 rows over fp32 [K, N] weights, where the weights come from
// memory once a step and the question is how they are read: k in blocks of kAcrossK rows, and
// within a block 32-column strips walk across the rows, so each row's segment is read front to
// back and a block is a few long runs rather than gemmF32's column of 256-byte pieces N floats
// apart (a DRAM page touched once, not once a strip). R rows × 32 columns of sums stay in 2R
// registers through a block; each k adds its terms in order, as gemmF32 does, so the sums are
// the same. The next block's same strip is asked for (to L2) while this one is read: the hardware
// prefetcher does not follow 128-byte pieces a row apart. Measured on AMD Zen 4, 2 threads, 8 rows,
// the 135M shape's 30 layers (docs/NATIVE-DECODE.md "Kernels"): gate|up 9.6 against gemmF32's
// 15.9 ms, down 4.7 against 8.6. Reads x rows up to R (the scratch buffers have whole 16s).
constexpr int kAcrossK = 32;
// One strip: columns [j, j + 32) of rows [kb, ke), masked where the thread's range ends inside it
// (Masked: AMD Zen 4 runs masked loads of memory well below plain ones, so full strips use plain).
template <int R, bool Masked, bool Halves>
inline void acrossStrip(const Linear& L, int M, const float* x, int ldx, int j, int kb, int ke, const __mmask16 (&mk)[2],
                        float* y, int ldy) {
  const int N = L.N, K = L.K;
  __m512 acc[R][2];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < 2; v++)
      acc[r][v] = kb == 0 || r >= M ? _mm512_setzero_ps()
                  : Masked         ? _mm512_maskz_loadu_ps(mk[v], y + (size_t)r * ldy + j + 16 * v)
                                   : _mm512_loadu_ps(y + (size_t)r * ldy + j + 16 * v);
  const float* w = L.w + (size_t)kb * N + j;
  const uint16_t* h = Halves ? L.w16 + (size_t)kb * N + j : nullptr;
  const bool ahead = ke < K;
  for (int k = kb; k < ke; k++, w += N) {
    __m512 w0, w1;
    if constexpr (Halves) {
      // the strip's 32 bf16 halves are one 64-byte line
      if (ahead) _mm_prefetch((const char*)(h + (size_t)kAcrossK * N), _MM_HINT_T1);
      w0 = Masked ? widenBf16(_mm256_maskz_loadu_epi16(mk[0], h)) : widenBf16(h);
      w1 = Masked ? widenBf16(_mm256_maskz_loadu_epi16(mk[1], h + 16)) : widenBf16(h + 16);
      h += N;
    } else {
      if (ahead) {
        const char* next = (const char*)(w + (size_t)kAcrossK * N);
        _mm_prefetch(next, _MM_HINT_T1);
        _mm_prefetch(next + 64, _MM_HINT_T1);
      }
      w0 = Masked ? _mm512_maskz_loadu_ps(mk[0], w) : _mm512_loadu_ps(w);
      w1 = Masked ? _mm512_maskz_loadu_ps(mk[1], w + 16) : _mm512_loadu_ps(w + 16);
    }
    for (int r = 0; r < R; r++) {
      const __m512 a = _mm512_set1_ps(x[(size_t)r * ldx + k]);
      acc[r][0] = _mm512_fmadd_ps(a, w0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, w1, acc[r][1]);
    }
  }
  for (int r = 0; r < R && r < M; r++)
    for (int v = 0; v < 2; v++) {
      float* out = y + (size_t)r * ldy + j + 16 * v;
      if (Masked)
        _mm512_mask_storeu_ps(out, mk[v], acc[r][v]);
      else
        _mm512_storeu_ps(out, acc[r][v]);
    }
}

template <int R>
inline void gemmAcross(const Linear& L, int M, const float* x, int ldx, int j0, int j1, float* y, int ldy) {
  for (int kb = 0; kb < L.K; kb += kAcrossK) {
    const int ke = std::min(L.K, kb + kAcrossK);
    int j = j0;
    const __mmask16 full[2] = {(__mmask16)0xFFFF, (__mmask16)0xFFFF};
    const bool halves = L.w16 != nullptr;
    for (; j + 32 <= j1; j += 32)
      halves ? acrossStrip<R, false, true>(L, M, x, ldx, j, kb, ke, full, y, ldy)
             : acrossStrip<R, false, false>(L, M, x, ldx, j, kb, ke, full, y, ldy);
    if (j < j1) {
      const int left = j1 - j;
      const __mmask16 mk[2] = {left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1),
                               left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : (__mmask16)0};
      halves ? acrossStrip<R, true, true>(L, M, x, ldx, j, kb, ke, mk, y, ldy)
             : acrossStrip<R, true, false>(L, M, x, ldx, j, kb, ke, mk, y, ldy);
    }
  }
}
#endif

inline void linearColumns(const Linear& L, int M, const float* x, int ldx, const QuantRow* xq, int j0, int j1,
                          float* y, int ldy) {
  if (j0 >= j1) return;
  if (L.w != nullptr)
    return L.rows ? rowColumns(L, M, x, ldx, j0, j1, y, ldy) : kColumns(L, M, x, ldx, j0, j1, y, ldy, 0, L.K);
#if OPENLORA_VNNI
  if ((L.zp != nullptr && L.block == 32) || (L.zp == nullptr && (L.block == 64 || L.block == 128))) {
    if (M > 2) {
      // many rows (a prompt chunk, a large batch): 16 columns at a time for all of them, so those
      // columns' weights are read from memory once and then from L1
      for (int j = j0; j < j1; j += 16) {
        const int je = std::min(j + 16, j1);
        int m0 = 0;
        for (; m0 + 4 <= M && L.tiles != nullptr; m0 += 4) quantColumnsVnni<4>(L, xq + m0, j, je, y + (size_t)m0 * ldy, ldy);
        for (; m0 + 2 <= M; m0 += 2) quantColumnsVnni<2>(L, xq + m0, j, je, y + (size_t)m0 * ldy, ldy);
        if (m0 < M) quantColumnsVnni<1>(L, xq + m0, j, je, y + (size_t)m0 * ldy, ldy);
      }
      return;
    }
    for (int m0 = 0; m0 < M; m0 += 2) {
      if (M - m0 >= 2)
        quantColumnsVnni<2>(L, xq + m0, j0, j1, y + (size_t)m0 * ldy, ldy);
      else
        quantColumnsVnni<1>(L, xq + m0, j0, j1, y + (size_t)m0 * ldy, ldy);
    }
    return;
  }
#endif
  quantColumnsPlain(L, M, xq, j0, j1, y, ldy);
}

}  // namespace openlora
