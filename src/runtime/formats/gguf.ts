// GGUF v3 (llama.cpp's file format): its types and constants and a bounded reader. It exists so
// the node can be measured against llama.cpp on the very same weights (scripts/export-gguf.ts,
// scripts/bench/vs-llamacpp.ts). The writer is gguf-write.ts; the mapping of a Hugging Face
// checkpoint or a PEFT LoRA adapter onto llama.cpp's architectures is src/runtime/export/.
import { readFile } from 'node:fs/promises'
import { OpenLoraError } from '../../common/errors.ts'
import { f16BitsToF32 } from './dtypes.ts'

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

// Bounds for the reader: far above what any real llama.cpp file holds (a 256k vocabulary is
// ~256k strings), low enough that a hostile header cannot make us allocate gigabytes. The writer
// keeps to `dims` too, so it never writes what this reader refuses.
export const READ_LIMITS = { kvs: 4096, tensors: 65_536, stringBytes: 1 << 20, arrayItems: 1 << 24, dims: 4 }

/** byte size of each scalar gguf_type (STRING and ARRAY are length-prefixed) */
export const SCALAR_SIZE: Partial<Record<GgufTypeId, number>> = {
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

/** n rounded up to a multiple of a (tensor data offsets, the data section's start) */
export const align = (n: number, a: number): number => Math.ceil(n / a) * a

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

export async function readGgufFile(file: string): Promise<{ bytes: Uint8Array; gguf: GgufFile }> {
  const bytes = await readFile(file)
  return { bytes, gguf: parseGgufHeader(bytes) }
}
