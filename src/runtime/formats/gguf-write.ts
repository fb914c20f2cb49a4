// GGUF v3 writing: the header (metadata and tensor table) and the tensor data in ggml's encodings
// (F32, F16, and Q8_0 / Q4_0 blocks as ggml's reference quantizers write them). Apart from the
// reader (gguf.ts), which checks every count of a file it did not write; the exporters
// (src/runtime/export/) are the writer's only users.
import { open } from 'node:fs/promises'
import { f32ToF16Bits } from './dtypes.ts'
import {
  align,
  GGUF_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgmlType,
  GgufError,
  type GgufKv,
  type GgufScalar,
  GgufType,
  type GgufTypeId,
  READ_LIMITS,
  SCALAR_SIZE,
  type TensorDtype
} from './gguf.ts'

export interface GgufTensorIn {
  name: string
  /** row-major (numpy / safetensors) shape; GGUF stores it reversed (ggml's ne[0] is innermost) */
  shape: number[]
  dtype: TensorDtype
  /** the values, or a function reading them when the tensor is written (one tensor in memory at a time) */
  data: Float32Array | (() => Float32Array)
}

const valuesOf = (t: GgufTensorIn): Float32Array => (typeof t.data === 'function' ? t.data() : t.data)
const countOf = (t: GgufTensorIn): number => t.shape.reduce((a, b) => a * b, 1)

/** Growable little-endian byte buffer for the header. */
class ByteWriter {
  private buf = Buffer.alloc(1 << 16)
  length = 0
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n))
    this.buf.copy(next, 0, 0, this.length)
    this.buf = next
  }
  u32(v: number): void {
    this.ensure(4)
    this.length = this.buf.writeUInt32LE(v, this.length)
  }
  u64(v: number | bigint): void {
    this.ensure(8)
    this.length = this.buf.writeBigUInt64LE(BigInt(v), this.length)
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8')
    this.u64(b.length)
    this.ensure(b.length)
    b.copy(this.buf, this.length)
    this.length += b.length
  }
  scalar(type: GgufTypeId, v: GgufScalar): void {
    if (type === GgufType.STRING) {
      this.str(String(v))
      return
    }
    const size = SCALAR_SIZE[type]
    if (size === undefined) throw new GgufError(`GGUF value type ${type} cannot be a scalar`)
    this.ensure(size)
    const b = this.buf
    const o = this.length
    if (type === GgufType.UINT8) b.writeUInt8(Number(v), o)
    else if (type === GgufType.INT8) b.writeInt8(Number(v), o)
    else if (type === GgufType.BOOL) b.writeUInt8(v ? 1 : 0, o)
    else if (type === GgufType.UINT16) b.writeUInt16LE(Number(v), o)
    else if (type === GgufType.INT16) b.writeInt16LE(Number(v), o)
    else if (type === GgufType.UINT32) b.writeUInt32LE(Number(v), o)
    else if (type === GgufType.INT32) b.writeInt32LE(Number(v), o)
    else if (type === GgufType.FLOAT32) b.writeFloatLE(Number(v), o)
    else if (type === GgufType.UINT64) b.writeBigUInt64LE(BigInt(v), o)
    else if (type === GgufType.INT64) b.writeBigInt64LE(BigInt(v), o)
    else b.writeDoubleLE(Number(v), o)
    this.length += size
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length)
  }
}

/** bytes of n values stored as dtype (Q8_0: fp16 scale + 32 int8 a block; Q4_0: fp16 + 16 bytes) */
function tensorBytes(dtype: TensorDtype, n: number): number {
  if (dtype === 'F32') return n * 4
  if (dtype === 'F16') return n * 2
  if (n % 32 !== 0) throw new GgufError(`${dtype} needs a multiple of 32 values, got ${n}`)
  return (n / 32) * (dtype === 'Q8_0' ? 34 : 18)
}

function encodeTensor(t: GgufTensorIn): Buffer {
  const data = valuesOf(t)
  if (data.length !== countOf(t))
    throw new GgufError(`tensor "${t.name}": shape [${t.shape}] does not match ${data.length} values`)
  if (t.dtype === 'F32') return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (t.dtype === 'Q8_0' || t.dtype === 'Q4_0') return encodeBlocks(t.dtype, data)
  const out = Buffer.alloc(data.length * 2)
  for (let i = 0; i < data.length; i++) out.writeUInt16LE(f32ToF16Bits(data[i]!), i * 2)
  return out
}

/**
 * Q8_0 / Q4_0 blocks of 32 as ggml's reference quantizers write them (quantize_row_q8_0_ref,
 * quantize_row_q4_0_ref): Q8_0 d = amax / 127, q = round(x / d); Q4_0 d = (the largest-magnitude
 * value) / −8, q = min(15, trunc(x / d + 8.5)), element j in the low nibble of byte j and element
 * j + 16 in its high nibble. d is stored as fp16 ahead of each block's codes.
 */
function encodeBlocks(dtype: 'Q8_0' | 'Q4_0', data: ArrayLike<number>): Buffer {
  const out = Buffer.alloc(tensorBytes(dtype, data.length))
  const size = dtype === 'Q8_0' ? 34 : 18
  for (let b = 0; b < data.length / 32; b++) {
    const at = b * 32
    let amax = 0
    let max = 0
    for (let j = 0; j < 32; j++) {
      const v = data[at + j]!
      if (Math.abs(v) > amax) {
        amax = Math.abs(v)
        max = v
      }
    }
    const o = b * size
    if (dtype === 'Q8_0') {
      const d = Math.fround(amax / 127)
      const id = d !== 0 ? Math.fround(1 / d) : 0
      out.writeUInt16LE(f32ToF16Bits(d), o)
      // C roundf: halves away from zero
      for (let j = 0; j < 32; j++) {
        const v = Math.fround(data[at + j]! * id)
        out.writeInt8(Math.sign(v) * Math.round(Math.abs(v)), o + 2 + j)
      }
    } else {
      const d = Math.fround(max / -8)
      const id = d !== 0 ? Math.fround(1 / d) : 0
      out.writeUInt16LE(f32ToF16Bits(d), o)
      const q = (j: number) => Math.min(15, Math.trunc(Math.fround(data[at + j]! * id) + 8.5))
      for (let j = 0; j < 16; j++) out[o + 2 + j] = q(j) | (q(j + 16) << 4)
    }
  }
  return out
}

/**
 * Writes a GGUF v3 file. Tensors are written one at a time, so the file is never held in memory
 * twice; their data offsets are aligned to general.alignment (added when absent).
 */
export async function writeGguf(
  file: string,
  metadata: GgufKv[],
  tensors: GgufTensorIn[],
  /** told the bytes written so far of the file's total after each tensor (a CLI progress bar) */
  onProgress?: (written: number, total: number) => void
): Promise<{ bytes: number }> {
  const kvs = metadata.some((kv) => kv.key === 'general.alignment')
    ? metadata
    : [...metadata, { key: 'general.alignment', type: GgufType.UINT32, value: GGUF_ALIGNMENT }]
  const names = new Set<string>()
  for (const t of tensors) {
    if (names.has(t.name)) throw new GgufError(`duplicate tensor name "${t.name}"`)
    names.add(t.name)
    // a lazy tensor's length is checked when it is read (encodeTensor)
    const n = typeof t.data === 'function' ? countOf(t) : t.data.length
    if (n !== countOf(t) || t.shape.length < 1 || t.shape.length > READ_LIMITS.dims) {
      throw new GgufError(`tensor "${t.name}": shape [${t.shape}] does not match ${n} values`)
    }
  }
  const w = new ByteWriter()
  w.u32(GGUF_MAGIC)
  w.u32(GGUF_VERSION)
  w.u64(tensors.length)
  w.u64(kvs.length)
  for (const kv of kvs) {
    w.str(kv.key)
    w.u32(kv.type)
    if (kv.type === GgufType.ARRAY) {
      if (!Array.isArray(kv.value) || kv.itemType === undefined) {
        throw new GgufError(`metadata "${kv.key}": an ARRAY needs an item type and a list value`)
      }
      w.u32(kv.itemType)
      w.u64(kv.value.length)
      for (const v of kv.value) w.scalar(kv.itemType, v)
    } else {
      w.scalar(kv.type, kv.value as GgufScalar)
    }
  }
  let offset = 0
  const offsets: number[] = []
  for (const t of tensors) {
    w.str(t.name)
    w.u32(t.shape.length)
    for (const d of [...t.shape].reverse()) w.u64(d)
    w.u32(GgmlType[t.dtype])
    w.u64(offset)
    offsets.push(offset)
    offset = align(offset + tensorBytes(t.dtype, countOf(t)), GGUF_ALIGNMENT)
  }
  const header = w.bytes()
  const dataStart = align(header.length, GGUF_ALIGNMENT)
  const fh = await open(file, 'w')
  try {
    await fh.write(header, 0, header.length, 0)
    onProgress?.(dataStart, dataStart + offset)
    for (let i = 0; i < tensors.length; i++) {
      const bytes = encodeTensor(tensors[i])
      await fh.write(bytes, 0, bytes.length, dataStart + offsets[i])
      onProgress?.(dataStart + (offsets[i + 1] ?? offset), dataStart + offset)
    }
    // pad the tail so the last tensor's aligned end is inside the file, as llama.cpp's writer does
    await fh.truncate(dataStart + offset)
  } finally {
    await fh.close()
  }
  return { bytes: dataStart + offset }
}
