// tensors.json: where each initializer of a built graph is, written next to weights.bin. ONNX
// Runtime reads the graph's own external-data entries; the native decoder (runtime/native/) maps
// weights.bin itself and needs the same placements without parsing a protobuf graph. Tensors of
// 1 KB or more are an offset and a length in weights.bin; smaller ones sit inline in the graph, so
// their values are in the manifest itself.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseWith, z } from '../../common/schema.ts'
import { DT, type Placement } from '../graph/proto.ts'
import { ModelWeightsError } from './weights-error.ts'

export const MANIFEST_FILE = 'tensors.json'
export const MANIFEST_VERSION = 1

const TYPES = Object.values(DT) as number[]

const dims = z.array(z.number().int().nonnegative()).max(8)
const type = z
  .number()
  .int()
  .refine((t) => TYPES.includes(t), { message: `must be an ONNX data type among ${TYPES.join(', ')}` })
const ExternalTensor = z.strictObject({
  type,
  dims,
  offset: z.number().int().nonnegative(),
  bytes: z.number().int().positive()
})
// 8-bit and 4-bit types as their stored bytes (0..255, packed pairs for UINT4); others as values
const InlineTensor = z.strictObject({ type, dims, values: z.array(z.number()).max(1024) })
const ManifestSchema = z.strictObject({
  version: z.literal(MANIFEST_VERSION),
  /** size of weights.bin: every external tensor lies inside it */
  dataBytes: z.number().int().nonnegative(),
  tensors: z.record(z.string().max(512), z.union([ExternalTensor, InlineTensor]))
})
export type TensorManifest = z.output<typeof ManifestSchema>
export type ManifestTensor = TensorManifest['tensors'][string]

/** An inline tensor's values: Float32Array for FLOAT, bytes for 8/4-bit types, numbers otherwise. */
function inlineValues(p: Extract<Placement, { raw: Uint8Array }>): number[] {
  const r = p.raw
  if (p.type === DT.FLOAT)
    return [...new Float32Array(r.buffer.slice(r.byteOffset, r.byteOffset + r.byteLength))]
  if (p.type === DT.INT32)
    return [...new Int32Array(r.buffer.slice(r.byteOffset, r.byteOffset + r.byteLength))]
  if (p.type === DT.INT64)
    return [...new BigInt64Array(r.buffer.slice(r.byteOffset, r.byteOffset + r.byteLength))].map(Number)
  return [...r]
}

export function manifestOf(placements: readonly Placement[], dataBytes: number): TensorManifest {
  const tensors: TensorManifest['tensors'] = {}
  for (const p of placements) {
    tensors[p.name] =
      'raw' in p
        ? { type: p.type, dims: p.dims, values: inlineValues(p) }
        : { type: p.type, dims: p.dims, offset: p.offset, bytes: p.bytes }
  }
  return { version: MANIFEST_VERSION, dataBytes, tensors }
}

export async function writeManifest(
  dir: string,
  placements: readonly Placement[],
  dataBytes: number
): Promise<void> {
  await writeFile(join(dir, MANIFEST_FILE), JSON.stringify(manifestOf(placements, dataBytes)))
}

/** Reads and checks a built model's tensors.json (every external tensor inside weights.bin). */
export async function readManifest(dir: string): Promise<TensorManifest> {
  const path = join(dir, MANIFEST_FILE)
  let raw: unknown
  try {
    raw = JSON.parse(await readFile(path, 'utf8'))
  } catch (err) {
    throw new ModelWeightsError(`cannot read ${path}: ${(err as Error).message}`, { file: path })
  }
  const m = parseWith(ManifestSchema, raw, {
    source: path,
    error: (issue) => new ModelWeightsError(`${path}: ${issue.field}: ${issue.problem}`, { file: path })
  })
  for (const [name, t] of Object.entries(m.tensors)) {
    if ('offset' in t && t.offset + t.bytes > m.dataBytes)
      throw new ModelWeightsError(
        `${path}: tensor "${name}" ends at byte ${t.offset + t.bytes}, past weights.bin's ${m.dataBytes}`,
        { file: path, tensor: name }
      )
  }
  return m
}
