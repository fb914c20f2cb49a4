// Datanet content travelling between nodes: a version bundle names everything (record,
// contributions with their chunk manifests, every version's root and count); chunks move by
// hash (CID) separately. Importing checks the datanet id, every contribution CID, every leaf and
// every version root (and, when given, the root recorded on-chain) before a byte is stored.
import { messageOf, parseWith, uint, z } from '../common/schema.ts'
import type { Hex } from '../crypto/hash.ts'
import { contributionCid } from './chunking.ts'
import { MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_TAG_CHARS, MAX_TAGS } from './constants.ts'
import type { ContributionRecord, DatanetStore, VersionRecord } from './datanet-store.ts'
import { datanetIdOf, normaliseAddress } from './datanet-store.ts'
import { DatanetError, forkError } from './errors.ts'
import { buildMerkleTree, contributionLeaf } from './merkle.ts'
import type { ChunkRef } from './types.ts'

/** Limits on a bundle from a peer. */
export const MAX_BUNDLE_CONTRIBUTIONS = 1_000_000
export const MAX_BUNDLE_VERSIONS = 100_000
/** A contribution's `source` note (file name, row); longer ones are not a note. */
export const MAX_SOURCE_CHARS = 1024

/** Everything a peer needs to rebuild versions 1..version of a datanet, except the chunk bytes. */
export async function exportVersion(
  store: DatanetStore,
  datanetId: string,
  version: number
): Promise<VersionBundle> {
  const dn = await store.getDatanet(datanetId)
  const top = await store.getVersion(dn.id, version)
  const versions = (await store.versions(dn.id)).filter((v) => v.version <= version)
  const contributions = await store.contributions(dn.id, top.count)
  return {
    datanet: {
      id: dn.id,
      name: dn.name,
      description: dn.description,
      tags: dn.tags,
      owner: dn.owner,
      createdAt: dn.createdAt
    },
    versions: versions.map((v) => ({
      version: v.version,
      root: v.root,
      count: v.count,
      publishedAt: v.publishedAt
    })),
    contributions: contributions.map((c) => ({
      cid: c.cid,
      contributor: c.contributor,
      chunks: c.chunks,
      source: c.source
    }))
  }
}

const bad = (why: string) => new DatanetError('DATANET_INVALID', `datanet bundle rejected: ${why}`)

const count = uint()
const hex32 = z
  .string()
  .regex(/^0x[0-9a-f]{64}$/)
  .describe('0x + 64 lowercase hex') as unknown as z.ZodType<Hex, string>

/**
 * A bundle comes from a peer: every field it stores is type- and size-checked by this schema, the
 * same limits a local create or contribute enforces, so nothing oversized or mistyped reaches
 * LevelDB. Ids, CIDs, leaves and roots are then recomputed by checkVersionBundle.
 */
export const VersionBundleSchema = z.object({
  datanet: z.object({
    id: z.string().max(66) as unknown as z.ZodType<Hex, string>,
    name: z.string().min(1).max(MAX_NAME_CHARS),
    description: z.string().max(MAX_DESCRIPTION_CHARS),
    tags: z.array(z.string().max(MAX_TAG_CHARS)).max(MAX_TAGS),
    owner: z.string().max(42) as unknown as z.ZodType<Hex, string>,
    createdAt: count
  }),
  versions: z
    .array(z.object({ version: count, root: hex32, count, publishedAt: count }))
    .min(1)
    .max(MAX_BUNDLE_VERSIONS),
  contributions: z
    .array(
      z.object({
        cid: z.string().max(128),
        contributor: z.string().max(42) as unknown as z.ZodType<Hex, string>,
        chunks: z
          .array(z.object({ size: z.int().min(1).max(Number.MAX_SAFE_INTEGER), sha256: hex32 }))
          .min(1),
        source: z.string().max(MAX_SOURCE_CHARS)
      })
    )
    .max(MAX_BUNDLE_CONTRIBUTIONS)
})
export type VersionBundle = z.output<typeof VersionBundleSchema>

export interface CheckedBundle {
  owner: Hex
  records: ContributionRecord[]
  versions: VersionRecord[]
}

/**
 * Everything about a bundle that needs no store: shapes and sizes, the datanet id, every
 * contribution CID and leaf, every version root (and `trustedRoots`, version → root, e.g. from
 * the DatanetRegistry contract, where given). Throws DatanetError DATANET_INVALID naming what.
 */
export function checkVersionBundle(input: unknown, trustedRoots: Record<number, Hex> = {}): CheckedBundle {
  const bundle = parseWith(VersionBundleSchema, input, { at: 'bundle', error: (i) => bad(messageOf(i)) })
  const d = bundle.datanet
  const owner = normaliseAddress(d.owner, 'owner')
  if (datanetIdOf(d.name, owner, d.createdAt) !== d.id)
    throw bad(`id ${d.id} is not the hash of its creation record`)
  const records: ContributionRecord[] = bundle.contributions.map((c, seq) => {
    if (contributionCid(c.chunks) !== c.cid)
      throw bad(`contribution ${seq}: its chunk manifest does not give CID ${c.cid}`)
    const contributor = normaliseAddress(c.contributor, `contribution ${seq} contributor`)
    const bytes = c.chunks.reduce((a, r) => a + r.size, 0)
    const leaf = contributionLeaf(c.cid, contributor)
    return {
      seq,
      cid: c.cid,
      contributor,
      leaf,
      chunks: c.chunks,
      bytes,
      source: c.source ?? '',
      addedAt: Date.now()
    }
  })
  const versions: VersionRecord[] = []
  let prevCount = 0
  bundle.versions.forEach((v, i) => {
    if (v.version !== i + 1) throw bad(`versions must be 1, 2, … in order; got ${v.version} at ${i}`)
    if (!(v.count > prevCount && v.count <= records.length))
      throw bad(`version ${v.version} count ${v.count} does not grow`)
    const root = buildMerkleTree(records.slice(0, v.count).map((r) => r.leaf)).root
    if (root !== v.root)
      throw bad(`version ${v.version}: contributions give root ${root}, bundle says ${v.root}`)
    const t = trustedRoots[v.version]
    if (t !== undefined && t.toLowerCase() !== root)
      throw bad(`version ${v.version}: root ${root} is not the trusted ${t}`)
    versions.push({ datanetId: d.id, version: v.version, root, count: v.count, publishedAt: v.publishedAt })
    prevCount = v.count
  })
  if (prevCount !== records.length) throw bad('contributions after the last version')
  return { owner, records, versions }
}

/**
 * Checks a bundle (checkVersionBundle) and stores it, fetching each chunk the node lacks with
 * `fetchChunk` (by its sha256; the raw CID is cidForBytes of the same bytes).
 */
export async function importVersion(
  store: DatanetStore,
  bundle: VersionBundle,
  fetchChunk: (ref: ChunkRef) => Promise<Uint8Array>,
  trustedRoots: Record<number, Hex> = {}
): Promise<VersionRecord> {
  const { owner, records, versions } = checkVersionBundle(bundle, trustedRoots)
  const d = bundle.datanet
  // Local contributions must be a prefix of the bundle's (append-only versions).
  const local = await store.contributions(d.id).catch(() => [] as ContributionRecord[])
  local.forEach((c, i) => {
    if (records[i]?.leaf !== c.leaf) throw forkError(`local contribution ${i} differs from the bundle's`)
  })
  for (const r of records.slice(local.length))
    for (const ref of r.chunks) {
      try {
        await store.readChunk(ref)
      } catch {
        await store.putChunk(await fetchChunk(ref), ref)
      }
    }
  await store.appendReplicated(
    { ...d, owner, contributions: records.length, latestVersion: versions.length },
    records,
    versions,
    { checkedPrefix: local.length }
  )
  return versions[versions.length - 1]!
}
