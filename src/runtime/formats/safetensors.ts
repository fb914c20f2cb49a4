// Reads and writes the safetensors format (8-byte little-endian header length, a JSON header
// mapping tensor names to dtype/shape/byte range, then the raw little-endian data). Files come
// from users and from peers, so every field is checked before a byte is trusted: header size,
// JSON shape, dtype, that shape × dtype size equals the byte range, and that the ranges tile the
// data section exactly (no gaps, overlaps or bytes past the end; a truncated download fails
// here, naming the file and tensor). F32/F16/BF16 are widened to Float32Array because the
// runtime computes in fp32. Writing lives in safetensors-write.ts, re-exported here so every
// user of the format imports one path.
import { closeSync, openSync, readSync } from 'node:fs'
import { open, readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { decodeFloats, FLOAT_DTYPES, type FloatDtype } from './dtypes.ts'
import { numel, SafetensorsError } from './safetensors-common.ts'

export { decodeFloats, encodeFloats, FLOAT_DTYPES, type FloatDtype } from './dtypes.ts'
export { SafetensorsError } from './safetensors-common.ts'
export {
  encodeSafetensors,
  type TensorSpec,
  type WriteTensor,
  writeSafetensors,
  writeSafetensorsStreaming
} from './safetensors-write.ts'

/** Byte size per element of every dtype the format defines (so headers naming them still parse). */
const DTYPE_SIZE: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1
}

/** Same bound as the reference Rust implementation: a header is metadata, never bulk data. */
export const MAX_HEADER_BYTES = 100_000_000
const MAX_RANK = 8

export interface Tensor {
  /** dtype as stored in the file; data is always fp32 */
  dtype: FloatDtype
  shape: number[]
  data: Float32Array
}
export type TensorMap = Map<string, Tensor>

export interface TensorInfo {
  dtype: string
  shape: number[]
  /** byte range relative to the start of the data section */
  begin: number
  end: number
}

export interface SafetensorsHeader {
  /** byte offset of the data section in the file */
  dataStart: number
  tensors: Map<string, TensorInfo>
  metadata: Record<string, string>
}

function fail(file: string, message: string, tensor?: string): never {
  const where = tensor === undefined ? basename(file) : `${basename(file)}: tensor "${tensor}"`
  throw new SafetensorsError(`${where}: ${message}`, { file, ...(tensor === undefined ? {} : { tensor }) })
}

/** Weights are floats: any other dtype is refused naming the tensor. */
function weightDtype(file: string, dtype: string, tensor: string): FloatDtype {
  if (!(FLOAT_DTYPES as readonly string[]).includes(dtype))
    fail(file, `dtype ${dtype} is not supported for weights; allowed: ${FLOAT_DTYPES.join(', ')}`, tensor)
  return dtype as FloatDtype
}

/** The header length from the file's first 8 bytes, bounded and inside a file of `size` bytes. */
function headerLength(file: string, len: bigint, size: number): number {
  if (len > BigInt(MAX_HEADER_BYTES))
    fail(file, `header length ${len} exceeds the ${MAX_HEADER_BYTES}-byte limit`)
  const n = Number(len)
  if (8 + n > size) fail(file, `header length ${n} runs past the end of the ${size}-byte file: truncated`)
  return n
}

/** Parses and validates the header bytes; `fileSize` bounds every tensor's range. */
export function parseHeader(file: string, headerJson: Uint8Array, fileSize: number): SafetensorsHeader {
  let raw: unknown
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerJson))
  } catch (err) {
    fail(file, `header is not valid UTF-8 JSON (${(err as Error).message})`)
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    fail(file, 'header must be a JSON object')
  const dataStart = 8 + headerJson.length
  const dataSize = fileSize - dataStart
  const tensors = new Map<string, TensorInfo>()
  let metadata: Record<string, string> = {}
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v))
        fail(file, '__metadata__ must be an object')
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string') fail(file, `__metadata__ "${k}" must be a string`)
      }
      metadata = v as Record<string, string>
      continue
    }
    if (typeof v !== 'object' || v === null) fail(file, 'entry must be an object', name)
    const { dtype, shape, data_offsets: offs } = v as Record<string, unknown>
    if (typeof dtype !== 'string' || DTYPE_SIZE[dtype] === undefined) {
      fail(
        file,
        `unknown dtype ${JSON.stringify(dtype)}; allowed: ${Object.keys(DTYPE_SIZE).join(', ')}`,
        name
      )
    }
    if (
      !Array.isArray(shape) ||
      shape.length > MAX_RANK ||
      !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)
    ) {
      fail(
        file,
        `shape must be a list of at most ${MAX_RANK} non-negative integers, got ${JSON.stringify(shape)}`,
        name
      )
    }
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0) ||
      offs[1] < offs[0]
    ) {
      fail(
        file,
        `data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offs)}`,
        name
      )
    }
    const [begin, end] = offs as [number, number]
    const want = numel(shape as number[]) * DTYPE_SIZE[dtype]!
    if (end - begin !== want) {
      fail(
        file,
        `byte range ${end - begin} does not match shape ${JSON.stringify(shape)} × ${dtype} (${want} bytes)`,
        name
      )
    }
    if (end > dataSize) {
      fail(
        file,
        `data_offsets end ${end} is past the data section (${Math.max(0, dataSize)} bytes): file truncated or header corrupt`,
        name
      )
    }
    tensors.set(name, { dtype, shape: shape as number[], begin, end })
  }
  // ranges must tile [0, dataSize) exactly: a hole or overlap means a corrupt or hand-edited file
  const sorted = [...tensors.entries()].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end)
  let at = 0
  for (const [name, t] of sorted) {
    if (t.begin !== at)
      fail(file, `data_offsets begin ${t.begin} leaves a gap or overlap (expected ${at})`, name)
    at = t.end
  }
  if (at !== dataSize) fail(file, `data section is ${dataSize} bytes but tensors cover ${at}: trailing bytes`)
  return { dataStart, tensors, metadata }
}

/** Reads only the header (cheap: never touches tensor data). */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const fh = await open(file, 'r').catch((err: Error) => fail(file, `cannot open (${err.message})`))
  try {
    const size = (await fh.stat()).size
    if (size < 8) fail(file, `file is ${size} bytes, shorter than the 8-byte header length: truncated`)
    const lenBuf = Buffer.alloc(8)
    await fh.read(lenBuf, 0, 8, 0)
    const n = headerLength(file, lenBuf.readBigUInt64LE(0), size)
    const header = Buffer.alloc(n)
    await fh.read(header, 0, n, 8)
    return parseHeader(file, header, size)
  } finally {
    await fh.close()
  }
}

export interface LoadOptions {
  /** load only tensors for which this returns true (others are validated but not read) */
  filter?: (name: string) => boolean
}

/** Loads every float tensor of one file; a non-float dtype is an error naming the tensor. */
export async function loadSafetensors(file: string, opts: LoadOptions = {}): Promise<TensorMap> {
  const header = await readSafetensorsHeader(file)
  const out: TensorMap = new Map()
  const fh = await open(file, 'r')
  try {
    for (const [name, info] of header.tensors) {
      if (opts.filter && !opts.filter(name)) continue
      const dtype = weightDtype(file, info.dtype, name)
      const n = info.end - info.begin
      // F32 is read straight into the result's buffer (no second copy of a large checkpoint);
      // half types into a fresh aligned buffer that decodeFloats widens
      const f32 = dtype === 'F32' ? new Float32Array(n / 4) : null
      const bytes = f32 ? new Uint8Array(f32.buffer) : new Uint8Array(n)
      let got = 0
      while (got < n) {
        const { bytesRead } = await fh.read(bytes, got, n - got, header.dataStart + info.begin + got)
        if (bytesRead === 0) fail(file, `read ${got} of ${n} bytes: file changed or truncated`, name)
        got += bytesRead
      }
      out.set(name, { dtype, shape: info.shape, data: f32 ?? decodeFloats(dtype, bytes) })
    }
  } finally {
    await fh.close()
  }
  return out
}

export const INDEX_FILE = 'model.safetensors.index.json'
const MAX_INDEX_BYTES = 64 * 1024 * 1024

/**
 * A checkpoint opened for reading one tensor at a time: headers are read and checked up front
 * (shards against the index, float dtypes only, each tensor named once), tensor bytes only when
 * `read` asks. The graph build uses it so its peak memory is one layer's weights, not the whole
 * checkpoint widened to fp32 (32 GB for an 8B model). `read` is synchronous because the graph
 * builder is.
 */
export interface CheckpointReader {
  names(): string[]
  has(name: string): boolean
  info(name: string): { dtype: FloatDtype; shape: number[] } | undefined
  read(name: string): Float32Array
  close(): void
}

export async function openCheckpoint(dir: string): Promise<CheckpointReader> {
  const files = await checkpointFiles(dir)
  const where = new Map<string, { fd: number; path: string; info: TensorInfo; dataStart: number }>()
  const fds: number[] = []
  try {
    for (const shard of files.files) {
      const path = join(dir, shard)
      const header = await readSafetensorsHeader(path)
      const fd = openSync(path, 'r')
      fds.push(fd)
      for (const [name, info] of header.tensors) {
        if (files.weightMap !== null && files.weightMap.get(name) !== shard)
          fail(
            path,
            `is not listed for this shard in ${INDEX_FILE} (index says ${files.weightMap.get(name) ?? 'nothing'})`,
            name
          )
        weightDtype(path, info.dtype, name)
        if (where.has(name)) fail(path, `is also in ${where.get(name)!.path}`, name)
        where.set(name, { fd, path, info, dataStart: header.dataStart })
      }
    }
    for (const [name, shard] of files.weightMap ?? [])
      if (!where.has(name)) fail(join(dir, shard), `listed in ${INDEX_FILE} but missing from the shard`, name)
  } catch (err) {
    for (const fd of fds) closeSync(fd)
    throw err
  }
  return {
    names: () => [...where.keys()],
    has: (name) => where.has(name),
    info: (name) => {
      const w = where.get(name)
      return w && { dtype: w.info.dtype as FloatDtype, shape: w.info.shape }
    },
    read(name) {
      // a closed reader's descriptor numbers may already belong to other files
      if (fds.length === 0) throw new SafetensorsError(`checkpoint ${dir} is closed`, { tensor: name })
      const w = where.get(name)
      if (!w) throw new SafetensorsError(`checkpoint has no tensor "${name}"`, { tensor: name })
      const n = w.info.end - w.info.begin
      const dtype = w.info.dtype as FloatDtype
      const f32 = dtype === 'F32' ? new Float32Array(n / 4) : null
      const bytes = f32 ? new Uint8Array(f32.buffer) : new Uint8Array(n)
      let got = 0
      while (got < n) {
        const read = readSync(w.fd, bytes, got, n - got, w.dataStart + w.info.begin + got)
        if (read === 0) fail(w.path, `read ${got} of ${n} bytes: file changed or truncated`, name)
        got += read
      }
      return f32 ?? decodeFloats(dtype, bytes)
    },
    close() {
      for (const fd of fds.splice(0)) closeSync(fd)
    }
  }
}

/**
 * Loads a checkpoint's weights: `model.safetensors`, or the shards named by
 * `model.safetensors.index.json` (every tensor must be in the shard the index says, and no
 * shard may hold a tensor the index does not list). All of it, widened to fp32: for one tensor at
 * a time use openCheckpoint.
 */
export async function loadCheckpointWeights(dir: string, opts: LoadOptions = {}): Promise<TensorMap> {
  const checkpoint = await openCheckpoint(dir)
  try {
    const out: TensorMap = new Map()
    for (const name of checkpoint.names()) {
      if (opts.filter && !opts.filter(name)) continue
      const { dtype, shape } = checkpoint.info(name)!
      out.set(name, { dtype, shape, data: checkpoint.read(name) })
    }
    return out
  } finally {
    checkpoint.close()
  }
}

/** Which safetensors files make up a checkpoint (sorted), and the index's weight map if sharded. */
export async function checkpointFiles(
  dir: string
): Promise<{ files: string[]; weightMap: Map<string, string> | null }> {
  const indexPath = join(dir, INDEX_FILE)
  let text: string | null = null
  try {
    text = await readFile(indexPath, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (text === null) {
    return { files: ['model.safetensors'], weightMap: null }
  }
  if (text.length > MAX_INDEX_BYTES) fail(indexPath, `index is over ${MAX_INDEX_BYTES} bytes`)
  let idx: unknown
  try {
    idx = JSON.parse(text)
  } catch (err) {
    fail(indexPath, `not valid JSON (${(err as Error).message})`)
  }
  const wm = (idx as { weight_map?: unknown } | null)?.weight_map
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm))
    fail(indexPath, '"weight_map" must be an object')
  const weightMap = new Map<string, string>()
  for (const [name, shard] of Object.entries(wm)) {
    // a shard name is a bare file name in the same directory: never a path out of it
    if (typeof shard !== 'string' || !/^[\w.-]+\.safetensors$/.test(shard) || shard.startsWith('.')) {
      fail(
        indexPath,
        `weight_map entry must name a .safetensors file in the same directory, got ${JSON.stringify(shard)}`,
        name
      )
    }
    weightMap.set(name, shard)
  }
  return { files: [...new Set(weightMap.values())].sort(), weightMap }
}

/**
 * Parses a whole file already in memory (an adapter received from a peer, or read once to be
 * both hashed and loaded). `file` only names it in errors.
 */
export function parseSafetensorsBytes(
  file: string,
  bytes: Uint8Array
): { tensors: TensorMap; metadata: Record<string, string> } {
  if (bytes.length < 8)
    fail(file, `file is ${bytes.length} bytes, shorter than the 8-byte header length: truncated`)
  const n = headerLength(
    file,
    new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true),
    bytes.length
  )
  const header = parseHeader(file, bytes.subarray(8, 8 + n), bytes.length)
  const tensors: TensorMap = new Map()
  for (const [name, info] of header.tensors) {
    const dtype = weightDtype(file, info.dtype, name)
    const raw = bytes.subarray(header.dataStart + info.begin, header.dataStart + info.end)
    tensors.set(name, { dtype, shape: info.shape, data: decodeFloats(dtype, raw) })
  }
  return { tensors, metadata: header.metadata }
}
