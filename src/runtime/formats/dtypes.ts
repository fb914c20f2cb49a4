// The float dtypes safetensors checkpoints use, widened to fp32 for compute and narrowed back for
// writing. Conversions are exact for every bit pattern and round to nearest even, matching
// PyTorch's .to(torch.float16 / torch.bfloat16), so fixtures written here load in transformers
// with the same values. GGUF's F16 tensors use the same two conversions.
export type FloatDtype = 'F32' | 'F16' | 'BF16'
export const FLOAT_DTYPES: readonly FloatDtype[] = ['F32', 'F16', 'BF16']

/** fp16 bits → fp32 value, exact for every bit pattern (subnormals, ±inf, NaN). */
export function f16BitsToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1
  const e = (h >>> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0) return s * m * 2 ** -24
  if (e === 0x1f) return m === 0 ? s * Number.POSITIVE_INFINITY : Number.NaN
  return s * (1 + m / 1024) * 2 ** (e - 15)
}

// fp16 → fp32 of a whole tensor through a 64K-entry table of the above: one load per value
let F16_TABLE: Float32Array | null = null
function f16Table(): Float32Array {
  if (F16_TABLE) return F16_TABLE
  const t = new Float32Array(65536)
  for (let h = 0; h < 65536; h++) t[h] = f16BitsToF32(h)
  F16_TABLE = t
  return t
}

/** Widens raw little-endian bytes of a float dtype to fp32 (a fresh, aligned Float32Array). */
export function decodeFloats(dtype: FloatDtype, bytes: Uint8Array): Float32Array {
  if (dtype === 'F32') {
    const out = new Float32Array(bytes.length / 4)
    new Uint8Array(out.buffer).set(bytes)
    return out
  }
  const n = bytes.length / 2
  const out = new Float32Array(n)
  // a 2-byte-aligned view reads each half in one load (little-endian hosts, as every Node target is)
  const u16 =
    bytes.byteOffset % 2 === 0
      ? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
      : new Uint16Array(bytes.slice().buffer)
  if (dtype === 'BF16') {
    // bf16 is the top half of an fp32: shift it into place through an Int32 view (no sign fix-ups)
    const i32 = new Int32Array(out.buffer)
    for (let i = 0; i < n; i++) i32[i] = u16[i]! << 16
  } else {
    const t = f16Table()
    for (let i = 0; i < n; i++) out[i] = t[u16[i]!]!
  }
  return out
}

// fp32 → fp16 bits with round-to-nearest-even, overflow to ±inf, gradual underflow (IEEE 754).
const F32_SCRATCH = new Float32Array(1)
const U32_SCRATCH = new Uint32Array(F32_SCRATCH.buffer)
export function f32ToF16Bits(x: number): number {
  F32_SCRATCH[0] = x
  const b = U32_SCRATCH[0]!
  const sign = (b >>> 16) & 0x8000
  const exp = (b >>> 23) & 0xff
  const mant = b & 0x7fffff
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0)
  const e = exp - 112 // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    if (e < -10) return sign
    const m = mant | 0x800000
    const shift = 14 - e
    let h = m >>> shift
    const rem = m & ((1 << shift) - 1)
    const half = 1 << (shift - 1)
    if (rem > half || (rem === half && (h & 1) === 1)) h++
    return sign | h
  }
  let h = (e << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  // a carry out of the mantissa correctly bumps the exponent (up to inf)
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++
  return sign | h
}

/** Narrows fp32 values to the dtype's little-endian bytes (round to nearest even). */
export function encodeFloats(dtype: FloatDtype, data: Float32Array): Uint8Array {
  if (dtype === 'F32')
    return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength))
  const out = new Uint8Array(data.length * 2)
  const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length)
  for (let i = 0; i < data.length; i++) {
    let h: number
    if (dtype === 'BF16') {
      const x = u32[i]!
      if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) h = ((x >>> 16) | 0x40) & 0xffff
      else h = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff
    } else {
      h = f32ToF16Bits(data[i]!)
    }
    out[2 * i] = h & 0xff
    out[2 * i + 1] = h >> 8
  }
  return out
}
