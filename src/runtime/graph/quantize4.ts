// Block-wise asymmetric 4-bit quantization of Linear weights into the layout of ONNX Runtime's
// com.microsoft MatMulNBits with bits 4: B [N, kBlocks, blockSize/2] uint8, two codes a byte with
// the lower K index in the low nibble; scales [N, kBlocks] fp32; zero points packed the same way,
// [N, ceil(kBlocks/2)] uint8. w[n, k] ≈ (q − zp) · scale with q, zp in 0..15.
//
// Scales come in superblocks of 8 blocks along a row (256 weights), as llama.cpp's K-quants keep
// theirs: each block's scale is q · d, q an integer in 0..63 and d the superblock's unit, a value
// with 5 significant bits (unitFor). The native decoder's tiles (runtime/native, kernels.h
// tileInt4) then hold a block's scale and zero point in 10 bits and d once for 8 blocks: 17.5
// bytes a 32 weights against Q4_0's 18 (and 18.5 with fp16 scales), and a decode step reads every
// weight once, so these bytes are its time. q · d has at most 11 significant bits, so it is also an
// exact fp16 value (the row-major native kernel's scale copy). The range search below tries the
// grid points on either side of each candidate range, so the grid costs nothing measurable: the
// squared error against Q4_0 came out 0.83 / 0.51 / 0.62 (normal, heavy-tailed, per-input scaled
// weights) against 0.84 / 0.52 / 0.63 for free fp16 scales.
//
// Why a zero point: llama.cpp's Q4_0 is symmetric (scale = the block's largest-magnitude value
// ÷ −8, no offset), so one side of every block's range wastes most of a code. With a zero point
// the 16 codes cover [min, max] exactly; among a few slightly narrower ranges the one with the
// smallest squared error is kept (a clipped outlier can cost less than coarser steps for the other
// 31 weights). test/unit/runtime-int4.test.ts checks the result never loses to Q4_0 on the same
// weights; `q4_0Dequantized` is Q4_0 as llama.cpp's reference quantizer rounds it, for that
// comparison and for bench:vs-llamacpp's error report.

export const INT4_BLOCK = 32
/** blocks a row's scales share one unit d over (INT4_SUPERBLOCK · INT4_BLOCK = 256 weights) */
export const INT4_SUPERBLOCK = 8
/** a block's scale is q · d, q in 0..SCALE_STEPS (6 bits) */
const SCALE_STEPS = 63
/** int8 activations per block, int8 dot products: what llama.cpp's Q4_0 × Q8_0 dot products do */
export const INT4_ACCURACY_LEVEL = 4
/** fractions of the full [min, max] range tried per block; the least squared error wins */
const SHRINK = [1, 0.96, 0.92, 0.88, 0.84]

export interface Quantized4Linear {
  /** [N, kBlocks, blockSize / 2]; codes past K are the block's zero point */
  q: Uint8Array
  /** [N, kBlocks] */
  scales: Float32Array
  /** [N, ceil(kBlocks / 2)], two 4-bit zero points a byte, low nibble first */
  zeroPoints: Uint8Array
  K: number
  N: number
  blockSize: number
}

const kBlocksOf = (K: number, blockSize: number) => Math.ceil(K / blockSize)

function setNibble(buf: Uint8Array, i: number, v: number): void {
  const byte = i >> 1
  buf[byte] = i & 1 ? (buf[byte]! & 0x0f) | (v << 4) : (buf[byte]! & 0xf0) | v
}
const nibble = (buf: Uint8Array, i: number) => (i & 1 ? buf[i >> 1]! >> 4 : buf[i >> 1]! & 0x0f)

/** [min(0, w), max(0, w)] over w[lo, hi) */
function rangeOf(row: Float32Array, lo: number, hi: number): { min: number; max: number } {
  let min = 0
  let max = 0
  for (let k = lo; k < hi; k++) {
    min = Math.min(min, row[k]!)
    max = Math.max(max, row[k]!)
  }
  return { min, max }
}

/**
 * The best (scale, zp) for w[lo, hi) among scales q · d (q in 1..63) next to the candidate ranges
 * [min, max] × SHRINK: least squared reconstruction error. Codes are computed against the scale as
 * stored, so dequantization matches them.
 */
function chooseRange(row: Float32Array, lo: number, hi: number, d: number): { scale: number; zp: number } {
  const { min, max } = rangeOf(row, lo, hi)
  if (max === min || d === 0) return { scale: 0, zp: 8 }
  const grid = new Set<number>()
  for (const f of SHRINK) {
    const t = ((max - min) * f) / 15 / d
    // within 1..63: a range beyond 63 units (d capped at UNIT_MAX) takes the widest scale there is
    for (const q of [Math.floor(t), Math.ceil(t)]) grid.add(Math.min(SCALE_STEPS, Math.max(1, q)))
  }
  let best = { scale: 0, zp: 8 }
  let bestErr = Number.POSITIVE_INFINITY
  for (const q of grid) {
    const scale = q * d
    const zp = Math.max(0, Math.min(15, Math.round(-min / scale)))
    let err = 0
    for (let k = lo; k < hi; k++) {
      const c = Math.max(0, Math.min(15, Math.round(row[k]! / scale) + zp))
      const e = Math.fround((c - zp) * scale) - row[k]!
      err += e * e
    }
    if (err < bestErr) {
      bestErr = err
      best = { scale, zp }
    }
  }
  return best
}

/** A weight stored row-major [N, K] (a checkpoint's Linear [out, in], or an embedding). */
export function quantizeRows4(
  w: Float32Array,
  N: number,
  K: number,
  blockSize = INT4_BLOCK
): Quantized4Linear {
  if (w.length !== N * K) throw new RangeError(`weight has ${w.length} values, expected ${N}×${K}`)
  if (blockSize % 2 !== 0) throw new RangeError(`4-bit block size must be even, got ${blockSize}`)
  const kb = kBlocksOf(K, blockSize)
  const zpRow = Math.ceil(kb / 2)
  const out: Quantized4Linear = {
    q: new Uint8Array((N * kb * blockSize) / 2),
    scales: new Float32Array(N * kb),
    zeroPoints: new Uint8Array(N * zpRow),
    K,
    N,
    blockSize
  }
  for (let n = 0; n < N; n++) {
    const row = w.subarray(n * K, (n + 1) * K)
    let d = 0
    for (let b = 0; b < kb; b++) {
      const lo = b * blockSize
      const hi = Math.min(K, lo + blockSize)
      if (b % INT4_SUPERBLOCK === 0) {
        // the superblock's unit: its widest block's full range at q = 63
        let widest = 0
        for (let j = b; j < Math.min(kb, b + INT4_SUPERBLOCK); j++) {
          const r = rangeOf(row, j * blockSize, Math.min(K, (j + 1) * blockSize))
          widest = Math.max(widest, r.max - r.min)
        }
        d = widest > 0 ? unitFor(widest / 15 / SCALE_STEPS) : 0
      }
      const { scale, zp } = chooseRange(row, lo, hi, d)
      out.scales[n * kb + b] = scale
      setNibble(out.zeroPoints, n * zpRow * 2 + b, zp)
      const base = (n * kb + b) * blockSize
      for (let k = 0; k < blockSize; k++) {
        const x = lo + k < hi ? row[lo + k]! : 0
        const q = scale === 0 ? zp : Math.max(0, Math.min(15, Math.round(x / scale) + zp))
        setNibble(out.q, base + k, q)
      }
    }
  }
  return out
}

/** w[n, k] as the quantized weight represents it, row-major [N, K]. */
export function dequantize4(ql: Quantized4Linear): Float32Array {
  const { K, N, blockSize } = ql
  const kb = kBlocksOf(K, blockSize)
  const zpRow = Math.ceil(kb / 2)
  const out = new Float32Array(N * K)
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      const b = Math.floor(k / blockSize)
      const q = nibble(ql.q, (n * kb + b) * blockSize + (k % blockSize))
      const zp = nibble(ql.zeroPoints, n * zpRow * 2 + b)
      out[n * K + k] = (q - zp) * ql.scales[n * kb + b]!
    }
  return out
}

/** fp32 → fp16 → fp32 (round to nearest even), as Q4_0 stores its block scale */
function toHalf(x: number): number {
  const f16 = new Float16Array(1)
  f16[0] = x
  return f16[0]!
}

/** the largest unit: 63 of it stay within fp16 (64512) */
const UNIT_MAX = 1024
/** the smallest: fp16's smallest subnormal */
const UNIT_MIN = 2 ** -24

/**
 * The smallest value ≥ x (> 0) with at most 5 significant bits (m · 2^e, m ≤ 32) that fp16 holds
 * exactly, capped at UNIT_MAX: a superblock's d, so that every q · d (q ≤ 63) has ≤ 11 bits.
 */
export function unitFor(x: number): number {
  if (!(x > UNIT_MIN)) return UNIT_MIN
  if (x >= UNIT_MAX) return UNIT_MAX
  const e = Math.max(-24, Math.floor(Math.log2(x)) - 4)
  const m = Math.ceil(x / 2 ** e)
  return m * 2 ** e
}

/**
 * w as llama.cpp's Q4_0 represents it (ggml quantize_row_q4_0_ref): blocks of 32 along K, d =
 * the largest-magnitude value ÷ −8 stored as fp16, q = min(15, trunc(x/d + 8.5)), w ≈ (q − 8)·d.
 * K must be a multiple of 32, as in ggml.
 */
export function q4_0Dequantized(w: Float32Array, N: number, K: number): Float32Array {
  if (K % 32 !== 0) throw new RangeError(`Q4_0 needs K a multiple of 32, got ${K}`)
  const out = new Float32Array(N * K)
  for (let i = 0; i < N * K; i += 32) {
    let amax = 0
    let max = 0
    for (let j = 0; j < 32; j++) {
      const v = w[i + j]!
      if (Math.abs(v) > amax) {
        amax = Math.abs(v)
        max = v
      }
    }
    const d = Math.fround(max / -8)
    const id = d !== 0 ? Math.fround(1 / d) : 0
    const dh = toHalf(d)
    for (let j = 0; j < 32; j++) {
      const q = Math.min(15, Math.trunc(Math.fround(w[i + j]! * id) + 8.5))
      out[i + j] = (q - 8) * dh
    }
  }
  return out
}
