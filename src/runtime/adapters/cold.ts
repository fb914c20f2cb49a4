// The cold tier: adapter files on disk, content-addressed, indexed in LevelDB.
//
// Layout under `dir`:
//   blobs/<cid>/adapter_config.json, blobs/<cid>/adapter_model.safetensors   (immutable)
//   index/                                                                   (LevelDB)
//   tmp/                                                                     (imports in flight)
// Index keys: `a:<cid>` → entry JSON, `u:<cid>` → last use (ms; written in batches, so a hot
// adapter costs no write per request), `m:count` / `m:bytes` → totals kept in the same batch as
// every put/del. Opening the store reads the totals only: start-up and lookup cost the same with
// 10 or 10,000 registered adapters (no scan).

import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { foreignCode } from '../../common/errors.ts'
import { cidForManifest } from '../../crypto/cid.ts'
import { sha256 } from '../../crypto/hash.ts'
import { AdapterStoreError } from './errors.ts'

export const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const
export type AdapterFileName = (typeof ADAPTER_FILES)[number]
export type AdapterFiles = Record<AdapterFileName, Uint8Array>

export interface ColdEntry {
  cid: string
  /** modelId of the base model the adapter was checked against at import */
  baseModel: string
  /** largest rank over its layers and targets */
  rank: number
  /** short target names, sorted: q_proj, v_proj, … */
  targets: string[]
  /** bytes on disk (both files) */
  sizeBytes: number
  /** bytes of its decoded fp32 A/B tensors: what it costs in the warm tier */
  fp32Bytes: number
  addedAt: number
}

/** CID of a PEFT adapter: the canonical manifest over exactly its two files (INTERFACES.md). */
export function adapterCid(files: AdapterFiles): string {
  return cidForManifest({
    v: 1,
    kind: 'peft-adapter',
    files: ADAPTER_FILES.map((name) => ({ name, size: files[name].length, sha256: sha256(files[name]) }))
  })
}

const CID_RE = /^[a-z0-9]{10,100}$/

export class ColdIndex {
  readonly dir: string
  private readonly db: Level<string, string>
  private count = 0
  private bytes = 0
  private readonly lastUse = new Map<string, number>()
  private flushTimer: NodeJS.Timeout | undefined

  constructor(dir: string) {
    this.dir = dir
    this.db = new Level<string, string>(join(dir, 'index'), { valueEncoding: 'utf8' })
  }

  async open(flushEveryMs: number): Promise<void> {
    await mkdir(join(this.dir, 'blobs'), { recursive: true })
    // the index's lock comes first: only its holder may clear tmp/ (another process's imports)
    try {
      await this.db.open()
    } catch (err) {
      const locked = err instanceof Error && foreignCode(err.cause) === 'LEVEL_LOCKED'
      throw new AdapterStoreError(
        locked ? 'STORE_LOCKED' : 'STORE_CLOSED',
        locked
          ? `the adapter index ${join(this.dir, 'index')} is in use by another process; one node (or tool) per store directory`
          : `cannot open the adapter index ${join(this.dir, 'index')}: ${(err as Error).message}`,
        { dir: this.dir },
        { cause: err }
      )
    }
    await rm(join(this.dir, 'tmp'), { recursive: true, force: true })
    await mkdir(join(this.dir, 'tmp'), { recursive: true })
    this.count = Number((await this.db.get('m:count')) ?? 0)
    this.bytes = Number((await this.db.get('m:bytes')) ?? 0)
    this.flushTimer = setInterval(() => void this.flushLastUse().catch(() => {}), flushEveryMs)
    this.flushTimer.unref()
  }

  async close(): Promise<void> {
    clearInterval(this.flushTimer)
    await this.flushLastUse()
    await this.db.close()
  }

  get size(): number {
    return this.count
  }

  get totalBytes(): number {
    return this.bytes
  }

  blobDir(cid: string): string {
    if (!CID_RE.test(cid))
      throw new AdapterStoreError('ADAPTER_INVALID', `not an adapter CID: "${cid.slice(0, 80)}"`)
    return join(this.dir, 'blobs', cid)
  }

  async get(cid: string): Promise<ColdEntry | undefined> {
    if (!CID_RE.test(cid)) return undefined
    const raw = await this.db.get(`a:${cid}`)
    return raw === undefined ? undefined : (JSON.parse(raw) as ColdEntry)
  }

  async lastUsed(cid: string): Promise<number | undefined> {
    const mem = this.lastUse.get(cid)
    if (mem !== undefined) return mem
    const raw = await this.db.get(`u:${cid}`)
    return raw === undefined ? undefined : Number(raw)
  }

  touch(cid: string, at = Date.now()): void {
    this.lastUse.set(cid, at)
  }

  async flushLastUse(): Promise<void> {
    if (this.lastUse.size === 0 || this.db.status !== 'open') return
    const ops = [...this.lastUse].map(([cid, at]) => ({
      type: 'put' as const,
      key: `u:${cid}`,
      value: String(at)
    }))
    this.lastUse.clear()
    await this.db.batch(ops)
  }

  /** Writes an adapter's files to tmp/ so they can be checked before they get a CID's name. */
  async stage(files: AdapterFiles): Promise<string> {
    const tmp = join(this.dir, 'tmp', Math.random().toString(36).slice(2))
    await mkdir(tmp, { recursive: true })
    for (const name of ADAPTER_FILES) await writeFile(join(tmp, name), files[name])
    return tmp
  }

  async discard(staged: string): Promise<void> {
    await rm(staged, { recursive: true, force: true })
  }

  /**
   * Renames a checked, staged directory to its CID and indexes it: a crash never leaves a
   * half-written blob under a CID. Returns false when the CID was already registered.
   */
  async commit(entry: ColdEntry, staged: string): Promise<boolean> {
    const existing = await this.get(entry.cid)
    const dest = this.blobDir(entry.cid)
    if (existing !== undefined && (await exists(dest))) {
      await this.discard(staged)
      return false
    }
    await rm(dest, { recursive: true, force: true })
    await rename(staged, dest)
    if (existing !== undefined) return false
    this.count += 1
    this.bytes += entry.sizeBytes
    await this.db.batch([
      { type: 'put', key: `a:${entry.cid}`, value: JSON.stringify(entry) },
      { type: 'put', key: 'm:count', value: String(this.count) },
      { type: 'put', key: 'm:bytes', value: String(this.bytes) }
    ])
    return true
  }

  /** Many entries in one batch, for tools and tests that register a large catalogue at once. */
  async putIndexOnly(entries: ColdEntry[]): Promise<void> {
    const ops: { type: 'put'; key: string; value: string }[] = []
    for (const e of entries) {
      if ((await this.get(e.cid)) !== undefined) continue
      this.count += 1
      this.bytes += e.sizeBytes
      ops.push({ type: 'put', key: `a:${e.cid}`, value: JSON.stringify(e) })
    }
    ops.push({ type: 'put', key: 'm:count', value: String(this.count) })
    ops.push({ type: 'put', key: 'm:bytes', value: String(this.bytes) })
    await this.db.batch(ops)
  }

  async remove(cid: string): Promise<boolean> {
    const entry = await this.get(cid)
    if (entry === undefined) return false
    this.count -= 1
    this.bytes -= entry.sizeBytes
    this.lastUse.delete(cid)
    await this.db.batch([
      { type: 'del', key: `a:${cid}` },
      { type: 'del', key: `u:${cid}` },
      { type: 'put', key: 'm:count', value: String(this.count) },
      { type: 'put', key: 'm:bytes', value: String(this.bytes) }
    ])
    await rm(this.blobDir(cid), { recursive: true, force: true })
    return true
  }

  async readFiles(cid: string): Promise<AdapterFiles> {
    const dir = this.blobDir(cid)
    const [config, weights] = await Promise.all(ADAPTER_FILES.map((n) => readFile(join(dir, n))))
    return { 'adapter_config.json': config!, 'adapter_model.safetensors': weights! }
  }

  /** Registered CIDs in key order, paged (`after` = last CID of the previous page). */
  async list(opts: { limit: number; after?: string }): Promise<ColdEntry[]> {
    const out: ColdEntry[] = []
    const range = { gt: opts.after === undefined ? 'a:' : `a:${opts.after}`, lt: 'a;', limit: opts.limit }
    for await (const v of this.db.values(range)) out.push(JSON.parse(v) as ColdEntry)
    return out
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p)
    return true
  } catch {
    return false
  }
}
