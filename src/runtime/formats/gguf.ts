// GGUF v3 (llama.cpp's file format): a container writer and a bounded reader, and the mapping of
// a Hugging Face Llama-family checkpoint and of a PEFT LoRA adapter onto llama.cpp's `llama`
// architecture. It exists so the node can be measured against llama.cpp on the very same weights
// (scripts/export-gguf.ts, scripts/bench/vs-llamacpp.ts). Key names, tensor names and the q/k row
// permutation follow llama.cpp's convert_hf_to_gguf.py / convert_lora_to_gguf.py.
import { open, readFile } from 'node:fs/promises'
import { OpenLoraError } from '../../common/errors.ts'

export class GgufError extends OpenLoraError<'GGUF_INVALID'> {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('GGUF_INVALID', message, data)
  }
}

export const GGUF_MAGIC = 0x46554747 // the bytes "GGUF" read as a little-endian uint32
export const GGUF_VERSION = 3
// llama.cpp's default; written explicitly as general.alignment so readers need not assume it
export const GGUF_ALIGNMENT = 32

/** gguf_type from ggml's gguf.h */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12
} as const
export type GgufTypeId = (typeof GgufType)[keyof typeof GgufType]

/** ggml_type ids of the tensor encodings this writer produces */
export const GgmlType = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const
export type TensorDtype = keyof typeof GgmlType

export type GgufScalar = number | bigint | boolean | string
export interface GgufKv {
  key: string
  type: GgufTypeId
  /** for ARRAY: the element type */
  itemType?: GgufTypeId
  value: GgufScalar | GgufScalar[]
}

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

// Bounds for the reader: far above what any real llama.cpp file holds (a 256k vocabulary is
// ~256k strings), low enough that a hostile header cannot make us allocate gigabytes.
const READ_LIMITS = { kvs: 4096, tensors: 65_536, stringBytes: 1 << 20, arrayItems: 1 << 24, dims: 4 }

const SCALAR_SIZE: Partial<Record<GgufTypeId, number>> = {
  [GgufType.UINT8]: 1,
  [GgufType.INT8]: 1,
  [GgufType.BOOL]: 1,
  [GgufType.UINT16]: 2,
  [GgufType.INT16]: 2,
  [GgufType.UINT32]: 4,
  [GgufType.INT32]: 4,
  [GgufType.FLOAT32]: 4,
  [GgufType.UINT64]: 8,
  [GgufType.INT64]: 8,
  [GgufType.FLOAT64]: 8
}

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

const align = (n: number, a: number): number => Math.ceil(n / a) * a

// fp32 → fp16 bits with round-to-nearest-even, overflow to ±inf, gradual underflow (IEEE 754).
const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)
export function f32ToF16Bits(x: number): number {
  f32[0] = x
  const b = u32[0]
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

export interface GgufTensorInfo {
  name: string
  /** ggml order: ne[0] is the innermost dimension */
  ne: number[]
  type: number
  offset: number
}
export interface GgufFile {
  version: number
  metadata: Map<string, GgufScalar | GgufScalar[]>
  types: Map<string, GgufTypeId>
  tensors: GgufTensorInfo[]
  dataOffset: number
}

/** Reads a GGUF header (metadata and tensor table) with every count and length bounded. */
export function parseGgufHeader(bytes: Uint8Array): GgufFile {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let o = 0
  const need = (n: number): void => {
    if (o + n > b.length) throw new GgufError(`GGUF header truncated at byte ${o} (file has ${b.length})`)
  }
  const u32r = (): number => {
    need(4)
    o += 4
    return b.readUInt32LE(o - 4)
  }
  const u64r = (max: number, what: string): number => {
    need(8)
    const v = b.readBigUInt64LE(o)
    o += 8
    if (v > BigInt(max)) throw new GgufError(`GGUF ${what} ${v} exceeds the limit ${max}`)
    return Number(v)
  }
  const strr = (): string => {
    const n = u64r(READ_LIMITS.stringBytes, 'string length')
    need(n)
    o += n
    return b.toString('utf8', o - n, o)
  }
  const scalar = (type: number): GgufScalar => {
    if (type === GgufType.STRING) return strr()
    const size = SCALAR_SIZE[type as GgufTypeId]
    if (size === undefined) throw new GgufError(`GGUF value type ${type} is not a scalar type`)
    need(size)
    const at = o
    o += size
    if (type === GgufType.UINT8) return b.readUInt8(at)
    if (type === GgufType.INT8) return b.readInt8(at)
    if (type === GgufType.BOOL) return b.readUInt8(at) !== 0
    if (type === GgufType.UINT16) return b.readUInt16LE(at)
    if (type === GgufType.INT16) return b.readInt16LE(at)
    if (type === GgufType.UINT32) return b.readUInt32LE(at)
    if (type === GgufType.INT32) return b.readInt32LE(at)
    if (type === GgufType.FLOAT32) return b.readFloatLE(at)
    if (type === GgufType.UINT64) return b.readBigUInt64LE(at)
    if (type === GgufType.INT64) return b.readBigInt64LE(at)
    return b.readDoubleLE(at)
  }
  if (u32r() !== GGUF_MAGIC) throw new GgufError('not a GGUF file: the magic bytes are not "GGUF"')
  const version = u32r()
  if (version !== 2 && version !== 3)
    throw new GgufError(`GGUF version ${version} is not supported; allowed: 2, 3`)
  const nTensors = u64r(READ_LIMITS.tensors, 'tensor count')
  const nKv = u64r(READ_LIMITS.kvs, 'metadata count')
  const metadata = new Map<string, GgufScalar | GgufScalar[]>()
  const types = new Map<string, GgufTypeId>()
  for (let i = 0; i < nKv; i++) {
    const key = strr()
    const type = u32r()
    if (type === GgufType.ARRAY) {
      const itemType = u32r()
      const n = u64r(READ_LIMITS.arrayItems, 'array length')
      const arr: GgufScalar[] = []
      for (let j = 0; j < n; j++) arr.push(scalar(itemType))
      metadata.set(key, arr)
    } else {
      metadata.set(key, scalar(type))
    }
    types.set(key, type as GgufTypeId)
  }
  const tensors: GgufTensorInfo[] = []
  for (let i = 0; i < nTensors; i++) {
    const name = strr()
    const nd = u32r()
    if (nd < 1 || nd > READ_LIMITS.dims) throw new GgufError(`tensor "${name}" has ${nd} dims; allowed 1..4`)
    const ne: number[] = []
    for (let d = 0; d < nd; d++) ne.push(u64r(Number.MAX_SAFE_INTEGER, 'dimension'))
    tensors.push({ name, ne, type: u32r(), offset: u64r(Number.MAX_SAFE_INTEGER, 'tensor offset') })
  }
  const alignment = Number(metadata.get('general.alignment') ?? GGUF_ALIGNMENT)
  return { version, metadata, types, tensors, dataOffset: align(o, alignment) }
}

/** Reads one tensor's values back as fp32 (F32 and F16 files). */
export function readGgufTensor(bytes: Uint8Array, file: GgufFile, name: string): Float32Array {
  const t = file.tensors.find((x) => x.name === name)
  if (t === undefined) throw new GgufError(`tensor "${name}" is not in the file`)
  const n = t.ne.reduce((a, c) => a * c, 1)
  const at = file.dataOffset + t.offset
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const size = n * (t.type === GgmlType.F32 ? 4 : 2)
  if (at + size > b.length) throw new GgufError(`tensor "${name}" runs past the end of the file`)
  const out = new Float32Array(n)
  if (t.type === GgmlType.F32) for (let i = 0; i < n; i++) out[i] = b.readFloatLE(at + 4 * i)
  else if (t.type === GgmlType.F16)
    for (let i = 0; i < n; i++) out[i] = f16BitsToF32(b.readUInt16LE(at + 2 * i))
  else
    throw new GgufError(`tensor "${name}" has ggml type ${t.type}; this reader handles F32 (0) and F16 (1)`)
  return out
}

export function f16BitsToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1
  const e = (h >>> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0) return s * m * 2 ** -24
  if (e === 0x1f) return m === 0 ? s * Number.POSITIVE_INFINITY : Number.NaN
  return s * (1 + m / 1024) * 2 ** (e - 15)
}

export async function readGgufFile(file: string): Promise<{ bytes: Uint8Array; gguf: GgufFile }> {
  const bytes = await readFile(file)
  return { bytes, gguf: parseGgufHeader(bytes) }
}
