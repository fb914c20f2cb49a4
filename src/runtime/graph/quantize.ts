// Block-wise symmetric int8 quantization of Linear weights into the layout of ONNX Runtime's
// com.microsoft MatMulNBits with bits 8: B [N, kBlocks, blockSize] uint8 with the op's implicit
// zero point of 128, scales [N, kBlocks] fp32, so w[n, k] ≈ (q − 128) · scale. Blocks run along K
// (the input features). 128 wide, as ORT's own quantizer defaults to: measured on the
// smollm2-135m shape (2-core Zen 4), block 128 decoded 10–15 % faster than 32 or 64 at batch 1
// and 8. test/unit/runtime-int8.test.ts bounds the int8 graph against the reference forward pass
// run on these dequantized weights.

export const INT8_BLOCK = 128
/**
 * The block size an int8 Linear of K inputs is built with: the widest power of two up to
 * INT8_BLOCK_MAX that divides K, so no block is padded (smollm2-135m's K 576 took 640 bytes a row
 * at 128, +11 %; at 64 it takes 576). Widths no power of two ≥ 16 divides keep 128 and pad.
 */
export const INT8_BLOCK_MAX = INT8_BLOCK
export function int8BlockFor(K: number): number {
  for (let b = INT8_BLOCK_MAX; b >= 16; b /= 2) if (K % b === 0) return b
  return INT8_BLOCK_MAX
}
/** MatMulNBits accuracy_level 4: activations quantized to int8 per block, int8 dot products (levels 0/1 dequantize every call: ~20× slower here) */
export const INT8_ACCURACY_LEVEL = 4

export interface QuantizedLinear {
  /** [N, kBlocks, blockSize]; a last block past K is padded with code 128 (zero) */
  q: Uint8Array
  /** [N, kBlocks] */
  scales: Float32Array
  K: number
  N: number
  blockSize: number
}

export const kBlocksOf = (K: number, blockSize: number) => Math.ceil(K / blockSize)

/** Quantizes one output row `row` (K weights) into row n of `into`. */
function quantizeRow(row: Float32Array, n: number, into: QuantizedLinear): void {
  const { K, blockSize, q, scales } = into
  const kb = kBlocksOf(K, blockSize)
  for (let b = 0; b < kb; b++) {
    const lo = b * blockSize
    const hi = Math.min(K, lo + blockSize)
    let max = 0
    for (let k = lo; k < hi; k++) max = Math.max(max, Math.abs(row[k]!))
    // an all-zero block keeps scale 0 and codes 128
    if (max === 0) continue
    // codes are computed against the scale as stored (fp32), so dequantization matches them
    const scale = Math.fround(max / 127)
    scales[n * kb + b] = scale
    const base = (n * kb + b) * blockSize - lo
    for (let k = lo; k < hi; k++) {
      const v = Math.round(row[k]! / scale)
      q[base + k] = 128 + Math.max(-127, Math.min(127, v))
    }
  }
}

function empty(N: number, K: number, blockSize: number): QuantizedLinear {
  const kb = kBlocksOf(K, blockSize)
  return {
    q: new Uint8Array(N * kb * blockSize).fill(128),
    scales: new Float32Array(N * kb),
    K,
    N,
    blockSize
  }
}

/** A weight stored row-major [N, K] (a checkpoint's Linear [out, in], or an embedding). */
export function quantizeRows(w: Float32Array, N: number, K: number, blockSize = INT8_BLOCK): QuantizedLinear {
  if (w.length !== N * K) throw new RangeError(`weight has ${w.length} values, expected ${N}×${K}`)
  const out = empty(N, K, blockSize)
  for (let n = 0; n < N; n++) quantizeRow(w.subarray(n * K, (n + 1) * K), n, out)
  return out
}

/** w[n, k] as the quantized weight represents it, row-major [N, K]. */
export function dequantize(ql: QuantizedLinear): Float32Array {
  const { K, N, blockSize } = ql
  const kb = kBlocksOf(K, blockSize)
  const out = new Float32Array(N * K)
  for (let n = 0; n < N; n++)
    for (let k = 0; k < K; k++) {
      const b = Math.floor(k / blockSize)
      out[n * K + k] = (ql.q[(n * kb + b) * blockSize + (k % blockSize)]! - 128) * ql.scales[n * kb + b]!
    }
  return out
}
