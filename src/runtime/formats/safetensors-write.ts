// Writes the safetensors format: tensors sorted by name (the same tensors give the same bytes) and
// the JSON header padded by spaces to a multiple of 8 bytes, as the reference implementation does.
// Apart from the reader because writing trusts its input (our own tensors) while reading checks
// every field of a file from a user or a peer; the two meet only in the format's layout.
import { open, writeFile } from 'node:fs/promises'
import { encodeFloats, type FloatDtype } from './dtypes.ts'
import { numel, SafetensorsError } from './safetensors-common.ts'

export interface WriteTensor {
  shape: number[]
  data: Float32Array
  /** dtype to store; fp32 by default */
  dtype?: FloatDtype
}

export interface TensorSpec {
  name: string
  shape: number[]
  dtype?: FloatDtype
}

/** The padded header bytes for tensors laid out back to back in the given order. */
function encodeHeader(
  layout: { name: string; dtype: FloatDtype; shape: number[]; bytes: number }[],
  metadata: Record<string, string> | undefined
): { header: Buffer; dataBytes: number } {
  const header: Record<string, unknown> = {}
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata
  let at = 0
  for (const t of layout) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.bytes] }
    at += t.bytes
  }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8)
  return { header: Buffer.from(json, 'utf8'), dataBytes: at }
}

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

/** Serialises tensors into one buffer: the 8-byte header length, the header, the data. */
export function encodeSafetensors(
  tensors: Map<string, WriteTensor> | Record<string, WriteTensor>,
  metadata?: Record<string, string>
): Uint8Array {
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)).sort((a, b) =>
    byName(a[0], b[0])
  )
  const chunks: Uint8Array[] = []
  for (const [name, t] of entries) {
    if (numel(t.shape) !== t.data.length) {
      throw new SafetensorsError(
        `tensor "${name}": shape ${JSON.stringify(t.shape)} does not match ${t.data.length} values`,
        { tensor: name }
      )
    }
    chunks.push(encodeFloats(t.dtype ?? 'F32', t.data))
  }
  const { header, dataBytes } = encodeHeader(
    entries.map(([name, t], i) => ({
      name,
      dtype: t.dtype ?? 'F32',
      shape: t.shape,
      bytes: chunks[i]!.length
    })),
    metadata
  )
  const out = new Uint8Array(8 + header.length + dataBytes)
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true)
  out.set(header, 8)
  let off = 8 + header.length
  for (const c of chunks) {
    out.set(c, off)
    off += c.length
  }
  return out
}

export async function writeSafetensors(
  file: string,
  tensors: Map<string, WriteTensor> | Record<string, WriteTensor>,
  metadata?: Record<string, string>
): Promise<void> {
  await writeFile(file, encodeSafetensors(tensors, metadata))
}

/**
 * Writes a file whose tensors are produced one at a time (in name order), so a generator never
 * holds a whole multi-hundred-MB checkpoint in memory. Same bytes as encodeSafetensors.
 */
export async function writeSafetensorsStreaming(
  file: string,
  specs: TensorSpec[],
  produce: (name: string) => Float32Array,
  metadata?: Record<string, string>
): Promise<number> {
  const sorted = [...specs].sort((a, b) => byName(a.name, b.name))
  const { header, dataBytes } = encodeHeader(
    sorted.map((s) => ({
      name: s.name,
      dtype: s.dtype ?? 'F32',
      shape: s.shape,
      bytes: numel(s.shape) * (s.dtype === undefined || s.dtype === 'F32' ? 4 : 2)
    })),
    metadata
  )
  const fh = await open(file, 'w')
  try {
    const len = Buffer.alloc(8)
    len.writeBigUInt64LE(BigInt(header.length))
    await fh.write(len)
    await fh.write(header)
    for (const s of sorted) {
      const data = produce(s.name)
      if (data.length !== numel(s.shape)) {
        throw new SafetensorsError(
          `tensor "${s.name}": produced ${data.length} values for shape ${JSON.stringify(s.shape)}`,
          { tensor: s.name }
        )
      }
      await fh.write(encodeFloats(s.dtype ?? 'F32', data))
    }
  } finally {
    await fh.close()
  }
  return 8 + header.length + dataBytes
}
