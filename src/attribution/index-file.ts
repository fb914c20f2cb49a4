// Building, persisting and loading span indexes. An index is built once per (datanet version,
// tokenizer) from the version's chunks, written to <dataDir>/index/<datanetId>/v<N>.<tokenizerId>.olsa
// and loaded on first use. Every contribution chunk is tokenized on its own, so the corpus token
// sequence of a contribution is the concatenation of its chunks' tokens; the verifier re-creates
// exactly that from the chunks a proof carries.
//
// File: 8-byte magic "OLSPAN01", uint32 LE header length, JSON header, zero padding to a multiple
// of 8, then tokens (padded to 4), sa, chunkAt, docChunk as little-endian arrays.

import { mkdir, open, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { foreignCode } from '../common/errors.ts'
import { type Logger, silentLogger } from '../common/log.ts'
import type { Hex } from '../crypto/hash.ts'
import type { DatanetStore } from './datanet-store.ts'
import { DatanetError } from './errors.ts'
import { flagBit, type IndexedContribution, type IndexHeader, SpanIndex } from './span-index.ts'
import { buildSuffixArray } from './suffix-array.ts'
import type { TextEncoder } from './types.ts'

const MAGIC = 'OLSPAN01'
const MAX_HEADER_BYTES = 64 * 1024 * 1024
const TOKENIZER_ID = /^[A-Za-z0-9_-]{1,80}$/

export interface CorpusDoc extends IndexedContribution {
  /** token ids of each chunk, in order */
  chunkTokens: number[][]
}

/** Builds the in-memory index over tokenized contributions (in version order). */
export function buildSpanIndex(
  docs: readonly CorpusDoc[],
  meta: { datanetId: Hex; version: number; root: Hex; tokenizerId: string }
): SpanIndex {
  let n = 0
  let chunks = 0
  let maxId = 0
  for (const d of docs)
    for (const c of d.chunkTokens) {
      chunks++
      n += c.length
      for (const t of c) {
        if (!Number.isInteger(t) || t < 0 || t >= 0x80000000)
          throw new DatanetError(
            'INDEX_INVALID',
            `tokenizer produced token id ${t}; ids must be integers in 0..2^31-1`
          )
        if (t > maxId) maxId = t
      }
    }
  const width: 2 | 3 | 4 = maxId < 0x8000 ? 2 : maxId < 0x800000 ? 3 : 4
  const flag = flagBit(width)
  const compact = new Uint32Array(n)
  const chunkAt = new Uint32Array(chunks + 1)
  const docChunk = new Uint32Array(docs.length + 1)
  let p = 0
  let c = 0
  docs.forEach((d, i) => {
    docChunk[i] = c
    for (const ct of d.chunkTokens) {
      chunkAt[c++] = p
      compact.set(ct, p)
      p += ct.length
    }
    if (p > 0 && d.chunkTokens.some((ct) => ct.length > 0)) compact[p - 1] = (compact[p - 1]! | flag) >>> 0
  })
  chunkAt[chunks] = n
  docChunk[docs.length] = chunks

  // Dense ranks for SA-IS: 0 = final sentinel, 1 = separator after each contribution, 2.. = tokens.
  const { rank, k } = denseRanks(compact, flag, maxId)
  const ext = new Int32Array(n + docs.length + 1)
  const extToCompact = new Int32Array(ext.length).fill(-1)
  let e = 0
  for (let i = 0; i < n; i++) {
    ext[e] = rank((compact[i]! & ~flag) >>> 0)
    extToCompact[e++] = i
    if ((compact[i]! & flag) !== 0) ext[e++] = 1
  }
  const extLen = e + 1 // the sentinel 0 is already there (Int32Array starts zeroed)
  const saExt = buildSuffixArray(ext.subarray(0, extLen), k)
  const sa = new Uint32Array(n)
  let j = 0
  for (let i = 0; i < extLen; i++) {
    const cp = extToCompact[saExt[i]!]!
    if (cp >= 0) sa[j++] = cp
  }

  const tokens = new Uint8Array(n * width)
  if (width === 2) new Uint16Array(tokens.buffer).set(compact)
  else if (width === 4) new Uint32Array(tokens.buffer).set(compact)
  else
    for (let i = 0; i < n; i++) {
      const v = compact[i]!
      tokens[3 * i] = v & 0xff
      tokens[3 * i + 1] = (v >>> 8) & 0xff
      tokens[3 * i + 2] = (v >>> 16) & 0xff
    }
  const header: IndexHeader = {
    format: 'openlora-span-index/1',
    ...meta,
    n,
    width,
    chunks,
    docs: docs.map((d) => ({ cid: d.cid, contributor: d.contributor }))
  }
  return new SpanIndex(header, tokens, sa, chunkAt, docChunk)
}

/** Maps each token id to 2 + its rank among the distinct ids present (a table, or a sorted list for huge ids). */
function denseRanks(
  compact: Uint32Array,
  flag: number,
  maxId: number
): { rank: (t: number) => number; k: number } {
  if (maxId < 1 << 24) {
    const rank = new Int32Array(maxId + 1)
    for (let i = 0; i < compact.length; i++) rank[compact[i]! & ~flag] = 1
    let k = 2
    for (let t = 0; t <= maxId; t++) if (rank[t] === 1) rank[t] = k++
    return { rank: (t) => rank[t]!, k }
  }
  const ids = [...new Set(Array.from(compact, (v) => (v & ~flag) >>> 0))].sort((a, b) => a - b)
  const map = new Map(ids.map((t, i) => [t, i + 2]))
  return { rank: (t) => map.get(t)!, k: ids.length + 2 }
}

const pad = (x: number, a: number): number => Math.ceil(x / a) * a

export async function writeSpanIndex(file: string, index: SpanIndex): Promise<void> {
  const { tokens, sa, chunkAt, docChunk } = index.arrays()
  const header = Buffer.from(JSON.stringify(index.header), 'utf8')
  const headEnd = pad(12 + header.length, 8)
  const tokEnd = headEnd + pad(tokens.byteLength, 4)
  const total = tokEnd + sa.byteLength + chunkAt.byteLength + docChunk.byteLength
  const buf = Buffer.alloc(total)
  buf.write(MAGIC, 0, 'latin1')
  buf.writeUInt32LE(header.length, 8)
  header.copy(buf, 12)
  buf.set(tokens, headEnd)
  buf.set(new Uint8Array(sa.buffer, sa.byteOffset, sa.byteLength), tokEnd)
  buf.set(new Uint8Array(chunkAt.buffer, chunkAt.byteOffset, chunkAt.byteLength), tokEnd + sa.byteLength)
  buf.set(
    new Uint8Array(docChunk.buffer, docChunk.byteOffset, docChunk.byteLength),
    tokEnd + sa.byteLength + chunkAt.byteLength
  )
  await mkdir(join(file, '..'), { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, buf)
  await rename(tmp, file)
}

export async function loadSpanIndex(file: string): Promise<SpanIndex> {
  const fh = await open(file, 'r')
  try {
    const size = (await fh.stat()).size
    // Our own ArrayBuffer (not Node's pooled one) so the typed-array views start 4-aligned.
    const buf = new Uint8Array(new ArrayBuffer(size))
    let off = 0
    while (off < size) {
      const { bytesRead } = await fh.read(buf, off, size - off, off)
      if (bytesRead === 0) break
      off += bytesRead
    }
    const bad = (why: string) => new DatanetError('INDEX_INVALID', `span index ${file} is invalid: ${why}`)
    if (off !== size || size < 12 || Buffer.from(buf.subarray(0, 8)).toString('latin1') !== MAGIC)
      throw bad('bad magic or truncated')
    const hlen = new DataView(buf.buffer).getUint32(8, true)
    if (hlen > MAX_HEADER_BYTES || 12 + hlen > size) throw bad('header length')
    const header = JSON.parse(Buffer.from(buf.subarray(12, 12 + hlen)).toString('utf8')) as IndexHeader
    if (header.format !== 'openlora-span-index/1' || ![2, 3, 4].includes(header.width)) throw bad('format')
    const headEnd = pad(12 + hlen, 8)
    const tokEnd = headEnd + pad(header.n * header.width, 4)
    const saEnd = tokEnd + header.n * 4
    const chunkEnd = saEnd + (header.chunks + 1) * 4
    if (chunkEnd + (header.docs.length + 1) * 4 !== size) throw bad('size does not match header')
    return new SpanIndex(
      header,
      buf.subarray(headEnd, headEnd + header.n * header.width),
      new Uint32Array(buf.buffer, tokEnd, header.n),
      new Uint32Array(buf.buffer, saEnd, header.chunks + 1),
      new Uint32Array(buf.buffer, chunkEnd, header.docs.length + 1)
    )
  } finally {
    await fh.close()
  }
}

export interface SpanIndexCacheComponents {
  store: DatanetStore
  tokenizer: TextEncoder
  logger?: Logger
}

/**
 * Opens span indexes on demand: from memory, else from disk, else built from the store's chunks
 * and written for next time. `tokenizerId` names the tokenizer (e.g. a hash of tokenizer.json) so
 * indexes of different tokenizers never mix.
 */
export class SpanIndexCache {
  private readonly store: DatanetStore
  private readonly tokenizer: TextEncoder
  private readonly tokenizerId: string
  private readonly log: Logger
  private readonly open = new Map<string, Promise<SpanIndex>>()

  constructor(components: SpanIndexCacheComponents, init: { tokenizerId?: string } = {}) {
    this.store = components.store
    this.tokenizer = components.tokenizer
    this.tokenizerId = init.tokenizerId ?? 'default'
    if (!TOKENIZER_ID.test(this.tokenizerId))
      throw new DatanetError('INDEX_INVALID', 'tokenizerId must be 1 to 80 characters of [A-Za-z0-9_-]')
    this.log = components.logger ?? silentLogger
  }

  fileFor(datanetId: string, version: number): string {
    return join(this.store.dataDir, 'index', datanetId, `v${version}.${this.tokenizerId}.olsa`)
  }

  get(datanetId: string, version: number): Promise<SpanIndex> {
    const key = `${datanetId}@${version}`
    let p = this.open.get(key)
    if (!p) {
      p = this.openOrBuild(datanetId, version)
      this.open.set(key, p)
      p.catch(() => this.open.delete(key))
    }
    return p
  }

  private async openOrBuild(datanetId: string, version: number): Promise<SpanIndex> {
    const file = this.fileFor(datanetId, version)
    const v = await this.store.getVersion(datanetId, version)
    try {
      const idx = await loadSpanIndex(file)
      if (idx.header.root === v.root && idx.header.tokenizerId === this.tokenizerId) return idx
      this.log.warn('span index does not match its version; rebuilding', { datanet: datanetId, version })
    } catch (err) {
      if (foreignCode(err) !== 'ENOENT') this.log.warn('span index unreadable; rebuilding', { err })
    }
    const t0 = performance.now()
    const { contributions } = await this.store.versionContents(datanetId, version)
    const docs: CorpusDoc[] = []
    for (const c of contributions) {
      const chunkTokens: number[][] = []
      for (const ref of c.chunks) chunkTokens.push(this.tokenizer.encode(await this.store.readChunkText(ref)))
      docs.push({ cid: c.cid, contributor: c.contributor, chunkTokens })
    }
    const idx = buildSpanIndex(docs, {
      datanetId: v.datanetId,
      version,
      root: v.root,
      tokenizerId: this.tokenizerId
    })
    await writeSpanIndex(file, idx)
    this.log.info('span index built', {
      datanet: datanetId,
      version,
      tokens: idx.n,
      ms: Math.round(performance.now() - t0)
    })
    return idx
  }
}
