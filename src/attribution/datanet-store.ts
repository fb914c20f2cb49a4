// Datanets on one node: records and contributions in LevelDB, chunk bytes on disk by hash,
// published versions as append-only prefixes of the contribution log with a Merkle root.
//
// LevelDB keys (JSON values, in the sublevel 'datanets' of the db passed in):
//   n:<datanetId>                       DatanetRecord
//   c:<datanetId>:<seq, 10 digits>      ContributionRecord (seq = order of arrival, from 0)
//   k:<datanetId>:<leaf>                seq (rejects the same contribution by the same contributor twice)
//   v:<datanetId>:<version, 10 digits>  VersionRecord: version N = contributions with seq < count
// Chunks: <dataDir>/chunks/<sha256 hex[0:2]>/<sha256 hex>, written before the LevelDB batch that
// refers to them, so a crash leaves at worst an unreferenced chunk.
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { AbstractLevel } from 'abstract-level'
import { KeyedLock } from '../common/keyed-lock.ts'
import { type Logger, silentLogger } from '../common/log.ts'
import { encodeCanonical } from '../crypto/cbor.ts'
import { type Hex, sha256, sha256Hex, toHex } from '../crypto/hash.ts'
import { chunkDocument, documentsFromFile } from './chunking.ts'
import {
  MAX_CONTRIBUTION_FILE_BYTES,
  MAX_DESCRIPTION_CHARS,
  MAX_NAME_CHARS,
  MAX_TAG_CHARS,
  MAX_TAGS
} from './constants.ts'
import { DatanetError, forkError } from './errors.ts'
import { buildMerkleTree, contributionLeaf } from './merkle.ts'
import type { ChunkRef } from './types.ts'

export interface DatanetRecord {
  id: Hex
  name: string
  description: string
  tags: string[]
  owner: Hex
  createdAt: number
  /** contributions received so far (the next seq) */
  contributions: number
  /** latest published version, 0 when none */
  latestVersion: number
}

export interface ContributionRecord {
  seq: number
  cid: string
  contributor: Hex
  leaf: Hex
  chunks: ChunkRef[]
  bytes: number
  /** file (and .jsonl row) it came from; informational, not hashed */
  source: string
  addedAt: number
}

export interface VersionRecord {
  datanetId: Hex
  version: number
  root: Hex
  /** contributions with seq < count belong to this version */
  count: number
  publishedAt: number
}

export interface CreateDatanetInput {
  name: string
  owner: string
  description?: string
  tags?: string[]
  createdAt?: number
}

// biome-ignore lint/suspicious/noExplicitAny: any level or sublevel with string keys will do
export type AnyLevel = AbstractLevel<any, string, any>

const ADDRESS = /^0x[0-9a-fA-F]{40}$/
const pad = (n: number): string => String(n).padStart(10, '0')

export function normaliseAddress(v: unknown, what: string): Hex {
  if (typeof v !== 'string' || !ADDRESS.test(v))
    throw new DatanetError('DATANET_INVALID', `${what} must be a 0x-prefixed 20-byte hex address, got "${v}"`)
  return v.toLowerCase() as Hex
}

/** datanetId = 0x + sha256 of the canonical creation record { name, owner, createdAt } (docs/INTERFACES.md). */
export function datanetIdOf(name: string, owner: Hex, createdAt: number): Hex {
  return sha256Hex(encodeCanonical({ name, owner, createdAt }))
}

export interface DatanetStoreComponents {
  db: AnyLevel
  /** chunks go under <dataDir>/chunks */
  dataDir: string
  logger?: Logger
}

export class DatanetStore {
  readonly dataDir: string
  private readonly db: AbstractLevel<unknown, string, unknown>
  private readonly log: Logger
  private readonly locks = new KeyedLock()

  constructor(components: DatanetStoreComponents) {
    this.db = components.db.sublevel<string, unknown>('datanets', { valueEncoding: 'json' }) as never
    this.dataDir = components.dataDir
    this.log = components.logger ?? silentLogger
  }

  /** Runs fn after every earlier fn on the same datanet, so seqs and versions never race. */
  private serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(key, fn)
  }

  private async getJson<T>(key: string): Promise<T | undefined> {
    return ((await this.db.get(key)) ?? undefined) as T | undefined
  }

  async createDatanet(input: CreateDatanetInput): Promise<DatanetRecord> {
    const name = typeof input.name === 'string' ? input.name.trim() : ''
    if (name === '' || name.length > MAX_NAME_CHARS)
      throw new DatanetError('DATANET_INVALID', `datanet name must be 1 to ${MAX_NAME_CHARS} characters`)
    const description = input.description ?? ''
    if (typeof description !== 'string' || description.length > MAX_DESCRIPTION_CHARS)
      throw new DatanetError(
        'DATANET_INVALID',
        `description must be at most ${MAX_DESCRIPTION_CHARS} characters`
      )
    const tags = [...new Set(input.tags ?? [])]
    if (
      tags.length > MAX_TAGS ||
      tags.some((t) => typeof t !== 'string' || t === '' || t.length > MAX_TAG_CHARS)
    )
      throw new DatanetError(
        'DATANET_INVALID',
        `at most ${MAX_TAGS} tags, each 1 to ${MAX_TAG_CHARS} characters`
      )
    const owner = normaliseAddress(input.owner, 'owner')
    const createdAt = input.createdAt ?? Date.now()
    if (!Number.isSafeInteger(createdAt) || createdAt < 0)
      throw new DatanetError('DATANET_INVALID', 'createdAt must be milliseconds since the epoch')
    const id = datanetIdOf(name, owner, createdAt)
    const rec: DatanetRecord = {
      id,
      name,
      description,
      tags,
      owner,
      createdAt,
      contributions: 0,
      latestVersion: 0
    }
    return this.serial(id, async () => {
      if (await this.getJson(`n:${id}`))
        throw new DatanetError('DATANET_INVALID', `datanet ${id} already exists`, { id })
      await this.db.put(`n:${id}`, rec)
      this.log.info('datanet created', { datanet: id, name })
      return rec
    })
  }

  async getDatanet(id: string): Promise<DatanetRecord> {
    const rec = await this.getJson<DatanetRecord>(`n:${id}`)
    if (!rec) throw new DatanetError('DATANET_NOT_FOUND', `no datanet ${id} on this node`, { id })
    return rec
  }

  async listDatanets(): Promise<DatanetRecord[]> {
    const out: DatanetRecord[] = []
    for await (const v of this.db.values({ gte: 'n:', lt: 'n;' })) out.push(v as DatanetRecord)
    return out
  }

  /** Adds one document as a contribution; it joins the next published version. */
  async contribute(datanetId: string, doc: { text: string; contributor: string; source?: string }) {
    const contributor = normaliseAddress(doc.contributor, 'contributor')
    const chunked = chunkDocument(doc.text)
    const leaf = contributionLeaf(chunked.cid, contributor)
    for (let i = 0; i < chunked.data.length; i++)
      await this.putChunkBytes(chunked.data[i]!, chunked.chunks[i]!)
    return this.serial(datanetId, async () => {
      const dn = await this.getDatanet(datanetId)
      if ((await this.getJson(`k:${dn.id}:${leaf}`)) !== undefined)
        throw new DatanetError(
          'CONTRIBUTION_DUPLICATE',
          `contribution ${chunked.cid} by ${contributor} is already in datanet ${dn.id}`,
          { cid: chunked.cid, contributor }
        )
      const rec: ContributionRecord = {
        seq: dn.contributions,
        cid: chunked.cid,
        contributor,
        leaf,
        chunks: chunked.chunks,
        bytes: chunked.bytes,
        source: doc.source ?? '',
        addedAt: Date.now()
      }
      await this.db.batch([
        { type: 'put', key: `c:${dn.id}:${pad(rec.seq)}`, value: rec },
        { type: 'put', key: `k:${dn.id}:${leaf}`, value: rec.seq },
        { type: 'put', key: `n:${dn.id}`, value: { ...dn, contributions: dn.contributions + 1 } }
      ])
      this.log.debug('contribution added', { datanet: dn.id, cid: rec.cid, seq: rec.seq })
      return rec
    })
  }

  /** Contributes every document of a .txt/.md/.jsonl file. */
  async contributeFile(datanetId: string, file: string, contributor: string): Promise<ContributionRecord[]> {
    normaliseAddress(contributor, 'contributor')
    await this.getDatanet(datanetId)
    let st: Awaited<ReturnType<typeof stat>>
    try {
      st = await stat(file)
    } catch (err) {
      throw new DatanetError('CONTRIBUTION_INVALID', `cannot read ${file}: ${(err as Error).message}`, {
        file
      })
    }
    if (st.size > MAX_CONTRIBUTION_FILE_BYTES)
      throw new DatanetError(
        'CONTRIBUTION_INVALID',
        `${file} is ${st.size} bytes; at most ${MAX_CONTRIBUTION_FILE_BYTES} per file`
      )
    const docs = documentsFromFile(file, new Uint8Array(await readFile(file)))
    const out: ContributionRecord[] = []
    for (const d of docs) out.push(await this.contribute(datanetId, { ...d, contributor }))
    return out
  }

  async contributions(datanetId: string, count?: number): Promise<ContributionRecord[]> {
    const lt = count === undefined ? `c:${datanetId};` : `c:${datanetId}:${pad(count)}`
    const out: ContributionRecord[] = []
    for await (const v of this.db.values({ gte: `c:${datanetId}:`, lt })) out.push(v as ContributionRecord)
    return out
  }

  /** Publishes every contribution so far as the next version and returns it with its Merkle root. */
  async publish(datanetId: string): Promise<VersionRecord> {
    return this.serial(datanetId, async () => {
      const dn = await this.getDatanet(datanetId)
      const prev = dn.latestVersion > 0 ? await this.getVersion(dn.id, dn.latestVersion) : undefined
      if (dn.contributions === 0 || (prev && prev.count === dn.contributions))
        throw new DatanetError(
          'NOTHING_TO_PUBLISH',
          `datanet ${dn.id} has no contributions since ${prev ? `version ${prev.version}` : 'it was created'}`
        )
      const contribs = await this.contributions(dn.id, dn.contributions)
      const tree = buildMerkleTree(contribs.map((c) => c.leaf))
      const version: VersionRecord = {
        datanetId: dn.id,
        version: dn.latestVersion + 1,
        root: tree.root,
        count: contribs.length,
        publishedAt: Date.now()
      }
      await this.db.batch([
        { type: 'put', key: `v:${dn.id}:${pad(version.version)}`, value: version },
        { type: 'put', key: `n:${dn.id}`, value: { ...dn, latestVersion: version.version } }
      ])
      this.log.info('datanet version published', {
        datanet: dn.id,
        version: version.version,
        root: version.root
      })
      return version
    })
  }

  /**
   * Appends contributions and versions that came from a peer, already checked by the caller
   * (replicate.ts: ids, CIDs, leaves, roots, chunk bytes). Local state must be a prefix of them.
   */
  async appendReplicated(
    dn: DatanetRecord,
    contributions: ContributionRecord[],
    versions: VersionRecord[],
    opts: { checkedPrefix?: number } = {}
  ): Promise<void> {
    await this.serial(dn.id, async () => {
      const local = await this.getJson<DatanetRecord>(`n:${dn.id}`)
      const have = local?.contributions ?? 0
      // checked again under the datanet's lock, so two replications at once cannot interleave
      // two histories: the records stored since the caller compared (stored records never
      // change), and every version both sides have
      for (let seq = opts.checkedPrefix ?? 0; seq < Math.min(have, contributions.length); seq++) {
        const mine = await this.getJson<ContributionRecord>(`c:${dn.id}:${pad(seq)}`)
        if (mine?.leaf !== contributions[seq]!.leaf)
          throw forkError(`local contribution ${seq} differs from the bundle's`)
      }
      for (const v of versions.filter((v) => v.version <= (local?.latestVersion ?? 0))) {
        const mine = await this.getJson<VersionRecord>(`v:${dn.id}:${pad(v.version)}`)
        if (mine?.root !== v.root)
          throw forkError(`local version ${v.version} has root ${mine?.root}, the bundle's ${v.root}`)
      }
      const fresh = contributions.filter((c) => c.seq >= have)
      const ops: { type: 'put'; key: string; value: unknown }[] = []
      for (const c of fresh) {
        ops.push({ type: 'put', key: `c:${dn.id}:${pad(c.seq)}`, value: c })
        ops.push({ type: 'put', key: `k:${dn.id}:${c.leaf}`, value: c.seq })
      }
      for (const v of versions.filter((v) => v.version > (local?.latestVersion ?? 0)))
        ops.push({ type: 'put', key: `v:${dn.id}:${pad(v.version)}`, value: v })
      const latest = Math.max(local?.latestVersion ?? 0, ...versions.map((v) => v.version))
      ops.push({
        type: 'put',
        key: `n:${dn.id}`,
        value: {
          ...(local ?? dn),
          contributions: Math.max(have, contributions.length),
          latestVersion: latest
        }
      })
      await this.db.batch(ops)
      this.log.info('datanet replicated', { datanet: dn.id, contributions: fresh.length, version: latest })
    })
  }

  async getVersion(datanetId: string, version: number): Promise<VersionRecord> {
    const v = await this.getJson<VersionRecord>(`v:${datanetId}:${pad(version)}`)
    if (!v) throw new DatanetError('VERSION_NOT_FOUND', `datanet ${datanetId} has no version ${version}`)
    return v
  }

  async versions(datanetId: string): Promise<VersionRecord[]> {
    const out: VersionRecord[] = []
    for await (const v of this.db.values({ gte: `v:${datanetId}:`, lt: `v:${datanetId};` }))
      out.push(v as VersionRecord)
    return out
  }

  /** The contributions of a published version and its Merkle tree (for proofs). */
  async versionContents(datanetId: string, version: number) {
    const v = await this.getVersion(datanetId, version)
    const contributions = await this.contributions(datanetId, v.count)
    const tree = buildMerkleTree(contributions.map((c) => c.leaf))
    if (tree.root !== v.root)
      throw new DatanetError(
        'INDEX_INVALID',
        `stored contributions of ${datanetId} v${version} do not match its root`
      )
    return { version: v, contributions, tree }
  }

  private chunkPath(sha: Hex): string {
    const h = sha.slice(2)
    return join(this.dataDir, 'chunks', h.slice(0, 2), h)
  }

  private async putChunkBytes(bytes: Uint8Array, ref: ChunkRef): Promise<void> {
    const p = this.chunkPath(ref.sha256)
    try {
      // An existing file is kept only if it is intact, so re-adding or re-fetching repairs a bad disk copy.
      const have = await readFile(p)
      if (have.length === ref.size && toHex(sha256(have)) === ref.sha256) return
    } catch {}
    await mkdir(join(p, '..'), { recursive: true })
    const tmp = `${p}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
    await writeFile(tmp, bytes)
    await rename(tmp, p)
  }

  /** Stores a chunk fetched from a peer after checking it hashes to what the manifest says. */
  async putChunk(bytes: Uint8Array, ref: ChunkRef): Promise<void> {
    if (bytes.length !== ref.size || toHex(sha256(bytes)) !== ref.sha256)
      throw new DatanetError('CHUNK_MISMATCH', `chunk bytes do not hash to ${ref.sha256}`, {
        sha256: ref.sha256
      })
    await this.putChunkBytes(bytes, ref)
  }

  /** Reads a chunk and checks its hash, so a corrupted disk never feeds an index or a proof. */
  async readChunk(ref: ChunkRef): Promise<Uint8Array> {
    let bytes: Uint8Array
    try {
      bytes = new Uint8Array(await readFile(this.chunkPath(ref.sha256)))
    } catch {
      throw new DatanetError('CHUNK_NOT_FOUND', `chunk ${ref.sha256} is not on this node`, {
        sha256: ref.sha256
      })
    }
    if (bytes.length !== ref.size || toHex(sha256(bytes)) !== ref.sha256)
      throw new DatanetError('CHUNK_MISMATCH', `chunk ${ref.sha256} on disk is corrupt`, {
        sha256: ref.sha256
      })
    return bytes
  }

  async readChunkText(ref: ChunkRef): Promise<string> {
    return Buffer.from(await this.readChunk(ref)).toString('utf8')
  }
}
