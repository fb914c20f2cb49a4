// Block-wise asymmetric 4-bit quantization of Linear weights into the layout of ONNX Runtime's
// com.microsoft MatMulNBits with bits 4: B [N, kBlocks, blockSize/2] uint8, two codes a byte with
// the lower K index in the low nibble; scales [N, kBlocks] fp32; zero points packed the same way,
// [N, ceil(kBlocks/2)] uint8. w[n, k] ≈ (q − zp) · scale with q, zp in 0..15.
//
// Why a zero point: llama.cpp's Q4_0 is symmetric (scale = the block's largest-magnitude value
// ÷ −8, no offset), so one side of every block's range wastes most of a code. With a zero point
// the 16 codes cover [min, max] exactly; among a few slightly narrower ranges the one with the
// smallest squared error is kept (a clipped outlier can cost less than coarser steps for the other
// 31 weights). test/unit/runtime-int4.test.ts checks the result never loses to Q4_0 on the same
// weights; `q4_0Dequantized` is Q4_0 as llama.cpp's reference quantizer rounds it, for that
// comparison and for bench:vs-llamacpp's error report.

export const INT4_BLOCK = 32
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

/** The best (scale, zp) of the candidate ranges for w[lo, hi): least squared reconstruction error. */
function chooseRange(row: Float32Array, lo: number, hi: number): { scale: number; zp: number } {
  let min = 0
  let max = 0
  for (let k = lo; k < hi; k++) {
    min = Math.min(min, row[k]!)
    max = Math.max(max, row[k]!)
  }
  if (max === min) return { scale: 0, zp: 8 }
  let best = { scale: 0, zp: 8 }
  let bestErr = Number.POSITIVE_INFINITY
  for (const f of SHRINK) {
    // codes are computed against the scale as stored, so dequantization matches them. The scale
    // (stored as fp32 for MatMulNBits) is an fp16 value with a 7-bit mantissa (scale12): the
    // native decoder (runtime/native, kernels.h tileInt4) keeps it and the block's zero point in
    // 2 bytes, 18 bytes a 32 weights as Q4_0's, where the exact fp32 scale cost 4 + 0.5 and an fp16
    // one 2.5; a decode step reads every weight once, so these bytes are its time
    const scale = scale12(((max - min) * f) / 15)
    if (scale === 0) continue
    const zp = Math.max(0, Math.min(15, Math.round(-min / scale)))
    let err = 0
    for (let k = lo; k < hi; k++) {
      const q = Math.max(0, Math.min(15, Math.round(row[k]! / scale) + zp))
      const d = Math.fround((q - zp) * scale) - row[k]!
      err += d * d
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
    for (let b = 0; b < kb; b++) {
      const lo = b * blockSize
      const hi = Math.min(K, lo + blockSize)
      const { scale, zp } = chooseRange(row, lo, hi)
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

const half = new Float16Array(1)
const halfBits = new Uint16Array(half.buffer)
/** fp16 bits of the largest scale12 value: 0x7bf8 (65280); 0x7bfc rounds up to infinity */
const SCALE12_MAX = 65280

/**
 * A non-negative int4 scale as stored: fp16 with its 3 lowest mantissa bits zero (nearest, ties
 * up), so that it fits 12 bits beside a 4-bit zero point in the native tiles (sign dropped). Its
 * relative rounding error ≤ 2^-8 against the codes' step of 1/15 of the block's range; the range
 * search below measures each candidate with it, and runtime-int4.test.ts checks the result
 * against Q4_0 still.
 */
export function scale12(x: number): number {
  half[0] = Math.min(SCALE12_MAX, x)
  halfBits[0] = (halfBits[0]! + 4) & ~7
  return Math.min(SCALE12_MAX, half[0]!)
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
