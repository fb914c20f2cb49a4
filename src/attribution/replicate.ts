// Datanet content travelling between nodes: a version bundle names everything (record,
// contributions with their chunk manifests, every version's root and count); chunks move by
// hash (CID) separately. Importing checks the datanet id, every contribution CID, every leaf and
// every version root (and, when given, the root recorded on-chain) before a byte is stored.
import type { Hex } from '../crypto/hash.ts'
import { contributionCid } from './chunking.ts'
import { MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_TAG_CHARS, MAX_TAGS } from './constants.ts'
import type { ContributionRecord, DatanetRecord, DatanetStore, VersionRecord } from './datanet-store.ts'
import { datanetIdOf, normaliseAddress } from './datanet-store.ts'
import { DatanetError, forkError } from './errors.ts'
import { buildMerkleTree, contributionLeaf } from './merkle.ts'
import type { ChunkRef } from './types.ts'

export interface VersionBundle {
  datanet: Pick<DatanetRecord, 'id' | 'name' | 'description' | 'tags' | 'owner' | 'createdAt'>
  versions: { version: number; root: Hex; count: number; publishedAt: number }[]
  contributions: { cid: string; contributor: Hex; chunks: ChunkRef[]; source: string }[]
}

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

const isStr = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0

/**
 * A bundle comes from a peer: every field it stores is type- and size-checked here, the same
 * limits a local create or contribute enforces, so nothing oversized or mistyped reaches LevelDB.
 */
function checkBundleShape(bundle: VersionBundle): void {
  const d = bundle?.datanet as Partial<VersionBundle['datanet']> | undefined
  if (!d || typeof d !== 'object') throw bad('it has no datanet record')
  if (!isStr(d.name, MAX_NAME_CHARS) || d.name === '')
    throw bad(`name must be 1 to ${MAX_NAME_CHARS} characters`)
  if (!isStr(d.description, MAX_DESCRIPTION_CHARS))
    throw bad(`description must be a string of at most ${MAX_DESCRIPTION_CHARS} characters`)
  if (!Array.isArray(d.tags) || d.tags.length > MAX_TAGS || !d.tags.every((t) => isStr(t, MAX_TAG_CHARS)))
    throw bad(`tags must be at most ${MAX_TAGS} strings of at most ${MAX_TAG_CHARS} characters`)
  if (!isCount(d.createdAt)) throw bad('createdAt must be ms since epoch')
  if (!Array.isArray(bundle.versions)) throw bad('versions must be a list')
  for (const [i, v] of bundle.versions.entries())
    if (!isCount(v?.version) || !isCount(v.count) || !isCount(v.publishedAt) || typeof v.root !== 'string')
      throw bad(`version entry ${i} must be { version, root, count, publishedAt } with integer counts`)
  if (!Array.isArray(bundle.contributions)) throw bad('contributions must be a list')
  for (const [i, c] of bundle.contributions.entries())
    if (c?.source !== undefined && !isStr(c.source, MAX_SOURCE_CHARS))
      throw bad(`contribution ${i} source must be a string of at most ${MAX_SOURCE_CHARS} characters`)
}

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
export function checkVersionBundle(
  bundle: VersionBundle,
  trustedRoots: Record<number, Hex> = {}
): CheckedBundle {
  checkBundleShape(bundle)
  const d = bundle.datanet
  const owner = normaliseAddress(d.owner, 'owner')
  if (datanetIdOf(d.name, owner, d.createdAt) !== d.id)
    throw bad(`id ${d.id} is not the hash of its creation record`)
  if (!Array.isArray(bundle.contributions) || bundle.contributions.length > MAX_BUNDLE_CONTRIBUTIONS)
    throw bad(`at most ${MAX_BUNDLE_CONTRIBUTIONS} contributions`)
  if (
    !Array.isArray(bundle.versions) ||
    bundle.versions.length === 0 ||
    bundle.versions.length > MAX_BUNDLE_VERSIONS
  )
    throw bad(`1 to ${MAX_BUNDLE_VERSIONS} versions`)
  const records: ContributionRecord[] = bundle.contributions.map((c, seq) => {
    if (
      typeof c?.cid !== 'string' ||
      !Array.isArray(c.chunks) ||
      c.chunks.length === 0 ||
      !c.chunks.every(
        (r) => Number.isSafeInteger(r?.size) && r.size > 0 && /^0x[0-9a-f]{64}$/.test(String(r.sha256))
      )
    )
      throw bad(`contribution ${seq} must be { cid, contributor, chunks: [{ size, sha256 }] }`)
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
