// The tiered AdapterStore of one base model (S-LoRA's unified paging, reduced to three tiers):
//   cold: files on disk, content-addressed, indexed in LevelDB (cold.ts);
//   warm: decoded fp32 A/B tensors in RAM, LRU within a byte budget;
//   hot:  a slot in the model's SlotPools, LRU among slots no running sequence holds.
// `acquire(cid)` moves an adapter up to hot and pins its slot until the lease is released; the
// engine holds one lease per running sequence, so eviction can never touch a slot in use.
// Concurrent acquires of the same cold adapter share one disk load.
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { OpenLoraError } from '../../common/errors.ts'
import { type Logger, silentLogger } from '../../common/log.ts'
import { ADAPTER_FILES, type AdapterFiles, adapterCid, type ColdEntry, ColdIndex } from './cold.ts'
import { AdapterNotFoundError, AdapterStoreError, NoFreeSlotError } from './errors.ts'
import {
  type AdapterLease,
  type AdapterStoreComponents,
  type AdapterStoreInit,
  type AdapterStoreStats,
  adapterShape,
  type DecodedAdapter,
  type Tier,
  type TierChange
} from './types.ts'

export * from './types.ts'

const DEFAULT_WARM_BUDGET = 2 * 1024 ** 3
const DEFAULT_MAX_ADAPTER_BYTES = 1024 ** 3
const DEFAULT_FLUSH_MS = 30_000

export class AdapterStore<A extends DecodedAdapter = DecodedAdapter> extends EventTarget {
  private readonly cold: ColdIndex
  private readonly model: AdapterStoreComponents<A>['model']
  private readonly loadAdapter: (dir: string, config: unknown) => Promise<A>
  private readonly log: Logger
  private readonly onLoad: AdapterStoreComponents<A>['onLoad']
  private readonly warmBudget: number
  private readonly maxAdapterBytes: number
  private readonly flushEveryMs: number
  // Map iteration order is insertion order: delete + set moves an entry to the young end.
  private readonly warm = new Map<string, { adapter: A; bytes: number }>()
  private warmBytes = 0
  private readonly hot = new Map<string, number>()
  private readonly slotCid: (string | undefined)[]
  private readonly slotRefs: number[]
  private readonly freeSlots: number[] = []
  private readonly loading = new Map<string, Promise<A>>()
  private readonly importing = new Map<string, Promise<{ cid: string; added: boolean }>>()
  private readonly counters = {
    hits: { hot: 0, warm: 0, cold: 0 } as Record<Tier, number>,
    coldLoads: 0,
    sharedLoads: 0,
    loadErrors: 0,
    evictions: { warm: 0, hot: 0 },
    imports: 0
  }
  /** per adapter: acquisitions and the last cold load's time (the dashboard's Adapters page);
   * bounded by the registered adapters (an entry goes with its adapter) */
  private readonly perAdapter = new Map<string, { hits: number; loads: number; lastLoadMs: number | null }>()
  private open = false

  constructor(init: AdapterStoreInit, components: AdapterStoreComponents<A>) {
    super()
    this.cold = new ColdIndex(init.dir)
    this.model = components.model
    this.loadAdapter = components.loadAdapter as (dir: string, config: unknown) => Promise<A>
    this.log = (components.logger ?? silentLogger).child('adapters')
    this.onLoad = components.onLoad
    this.warmBudget = init.warmBudgetBytes ?? DEFAULT_WARM_BUDGET
    this.maxAdapterBytes = init.maxAdapterBytes ?? DEFAULT_MAX_ADAPTER_BYTES
    this.flushEveryMs = init.flushEveryMs ?? DEFAULT_FLUSH_MS
    const slots = this.model.pools.slots
    if (!Number.isInteger(slots) || slots < 2)
      throw new AdapterStoreError(
        'ADAPTER_INVALID',
        `pool has ${slots} slots; need at least 2 (slot 0 = no adapter)`
      )
    this.slotCid = new Array(slots).fill(undefined)
    this.slotRefs = new Array(slots).fill(0)
    // slot 0 is reserved for "no adapter"; hand out low slots first
    for (let s = slots - 1; s >= 1; s--) this.freeSlots.push(s)
  }

  async start(): Promise<void> {
    await this.cold.open(this.flushEveryMs)
    this.open = true
    this.log.info('adapter store open', { registered: this.cold.size, slots: this.model.pools.slots })
  }

  async stop(): Promise<void> {
    if (!this.open) return
    this.open = false
    await Promise.allSettled([...this.loading.values(), ...this.importing.values()])
    await this.cold.close()
  }

  /** Copies a PEFT directory into the cold store after checking it fits this model and pool. */
  async import(dir: string): Promise<{ cid: string; added: boolean }> {
    const files = {} as AdapterFiles
    for (const name of ADAPTER_FILES) {
      const p = join(dir, name)
      const size = await stat(p).then(
        (s) => s.size,
        () => {
          throw new AdapterStoreError(
            'ADAPTER_INVALID',
            `${p} is missing; a PEFT adapter needs ${ADAPTER_FILES.join(' and ')}`
          )
        }
      )
      this.checkSize(name, size)
      files[name] = await readFile(p)
    }
    return this.importFiles(files)
  }

  /** Registers adapter files from anywhere (a directory, a peer); `expectedCid` is checked first. */
  async importFiles(
    files: AdapterFiles,
    opts: { expectedCid?: string } = {}
  ): Promise<{ cid: string; added: boolean }> {
    this.checkOpen()
    for (const name of ADAPTER_FILES) {
      if (!(files[name] instanceof Uint8Array))
        throw new AdapterStoreError('ADAPTER_INVALID', `adapter file ${name} is missing`)
      this.checkSize(name, files[name].length)
    }
    const cid = adapterCid(files)
    if (opts.expectedCid !== undefined && opts.expectedCid !== cid)
      throw new AdapterStoreError(
        'ADAPTER_CID_MISMATCH',
        `adapter files hash to ${cid}, not the requested ${opts.expectedCid}; refusing them`,
        { cid, expectedCid: opts.expectedCid }
      )
    const pending = this.importing.get(cid)
    if (pending !== undefined) return pending.then((r) => ({ ...r, added: false }))
    const p = this.doImport(cid, files).finally(() => this.importing.delete(cid))
    this.importing.set(cid, p)
    return p
  }

  private async doImport(cid: string, files: AdapterFiles): Promise<{ cid: string; added: boolean }> {
    if ((await this.cold.get(cid)) !== undefined) return { cid, added: false }
    const staged = await this.cold.stage(files)
    let adapter: A
    try {
      adapter = await this.loadAdapter(staged, this.model.config)
    } catch (err) {
      await this.cold.discard(staged)
      throw err instanceof OpenLoraError
        ? err
        : new AdapterStoreError(
            'ADAPTER_INVALID',
            `adapter ${cid} could not be decoded: ${(err as Error).message}`,
            { cid },
            { cause: err }
          )
    }
    try {
      if (adapter.cid !== undefined && adapter.cid !== cid)
        throw new AdapterStoreError(
          'ADAPTER_CID_MISMATCH',
          `loader named the adapter ${adapter.cid}, the store ${cid}`,
          { cid }
        )
      const shape = this.checkFits(cid, adapter)
      const entry: ColdEntry = {
        cid,
        baseModel: this.model.modelId,
        rank: shape.rank,
        targets: shape.targets,
        sizeBytes: files['adapter_config.json'].length + files['adapter_model.safetensors'].length,
        fp32Bytes: shape.fp32Bytes,
        addedAt: Date.now()
      }
      const added = await this.cold.commit(entry, staged)
      if (added) {
        this.counters.imports += 1
        this.log.debug('adapter imported', { cid, rank: shape.rank, targets: shape.targets })
        this.emitChange(cid, 'cold')
      }
      return { cid, added }
    } catch (err) {
      await this.cold.discard(staged)
      throw err
    }
  }

  /** Registers index entries without files (catalogue tools, start-up tests of a large index). */
  async registerIndexOnly(entries: ColdEntry[]): Promise<void> {
    this.checkOpen()
    await this.cold.putIndexOnly(entries)
  }

  async has(cid: string): Promise<boolean> {
    return this.hot.has(cid) || this.warm.has(cid) || (await this.cold.get(cid)) !== undefined
  }

  async entry(cid: string): Promise<ColdEntry | undefined> {
    return this.cold.get(cid)
  }

  /** The adapter's files, for serving it to a peer that fetches it by CID. */
  async files(cid: string): Promise<AdapterFiles> {
    if ((await this.cold.get(cid)) === undefined) throw new AdapterNotFoundError(cid)
    return this.cold.readFiles(cid)
  }

  /** Moves the adapter up to hot without holding its slot; reports the tier it came from. */
  async ensure(cid: string): Promise<{ from: Tier; slot: number; ms: number }> {
    const lease = await this.acquire(cid)
    lease.release()
    return { from: lease.from, slot: lease.slot, ms: lease.ms }
  }

  /** Moves the adapter up to hot and pins its slot until `release()`. */
  async acquire(cid: string): Promise<AdapterLease> {
    this.checkOpen()
    const t0 = performance.now()
    let from: Tier = 'hot'
    let slot = this.hot.get(cid)
    if (slot === undefined) {
      let adapter = this.warmGet(cid)
      from = 'warm'
      if (adapter === undefined) {
        from = 'cold'
        adapter = await this.loadOnce(cid)
      }
      // another acquire may have placed it while this one waited on the disk
      slot = this.hot.get(cid) ?? this.placeHot(cid, adapter)
    } else {
      this.hot.delete(cid)
      this.hot.set(cid, slot)
    }
    this.slotRefs[slot]! += 1
    this.counters.hits[from] += 1
    this.adapterCounters(cid).hits += 1
    this.cold.touch(cid)
    const pinned = slot
    let released = false
    const ms = performance.now() - t0
    if (from !== 'hot') this.onLoad?.(from, ms)
    return {
      cid,
      slot,
      from,
      ms,
      release: () => {
        if (released) return
        released = true
        this.slotRefs[pinned]! -= 1
      }
    }
  }

  /** Unregisters an adapter and deletes its files; refused while a sequence holds it. */
  async remove(cid: string): Promise<boolean> {
    this.checkOpen()
    const slot = this.hot.get(cid)
    if (slot !== undefined) {
      if (this.slotRefs[slot]! > 0)
        throw new AdapterStoreError(
          'ADAPTER_INVALID',
          `adapter ${cid} is in use by a running sequence; remove it when idle`,
          { cid }
        )
      this.evictHot(slot, false)
      this.model.pools.clear(slot)
    }
    this.warmDelete(cid)
    const removed = await this.cold.remove(cid)
    this.perAdapter.delete(cid)
    if (removed) this.emitChange(cid, 'removed')
    return removed
  }

  /** Each adapter in its highest tier, for adverts; cold is a count (list it with listCold). */
  tiers(): { hot: string[]; warm: string[]; cold: number } {
    const hot = [...this.hot.keys()]
    const warm = [...this.warm.keys()].filter((c) => !this.hot.has(c))
    return { hot, warm, cold: this.cold.size }
  }

  listCold(opts: { limit: number; after?: string }): Promise<ColdEntry[]> {
    return this.cold.list(opts)
  }

  tierOf(cid: string): Tier | undefined {
    if (this.hot.has(cid)) return 'hot'
    if (this.warm.has(cid)) return 'warm'
    return undefined
  }

  slotOf(cid: string): number | undefined {
    return this.hot.get(cid)
  }

  stats(): AdapterStoreStats {
    let hotPinned = 0
    for (const r of this.slotRefs) if (r > 0) hotPinned += 1
    return {
      registered: this.cold.size,
      registeredBytes: this.cold.totalBytes,
      warm: this.warm.size,
      warmBytes: this.warmBytes,
      warmBudgetBytes: this.warmBudget,
      hot: this.hot.size,
      hotPinned,
      slots: this.model.pools.slots,
      hits: { ...this.counters.hits },
      coldLoads: this.counters.coldLoads,
      sharedLoads: this.counters.sharedLoads,
      loadErrors: this.counters.loadErrors,
      evictions: { ...this.counters.evictions },
      imports: this.counters.imports
    }
  }

  /** Acquisitions since start and cold loads of one adapter (zeros for one never used). */
  adapterStats(cid: string): { hits: number; loads: number; lastLoadMs: number | null } {
    return { ...(this.perAdapter.get(cid) ?? { hits: 0, loads: 0, lastLoadMs: null }) }
  }

  private adapterCounters(cid: string): { hits: number; loads: number; lastLoadMs: number | null } {
    let c = this.perAdapter.get(cid)
    if (!c) this.perAdapter.set(cid, (c = { hits: 0, loads: 0, lastLoadMs: null }))
    return c
  }

  private loadOnce(cid: string): Promise<A> {
    const pending = this.loading.get(cid)
    if (pending !== undefined) {
      this.counters.sharedLoads += 1
      return pending
    }
    const p = this.loadCold(cid).finally(() => this.loading.delete(cid))
    this.loading.set(cid, p)
    return p
  }

  private async loadCold(cid: string): Promise<A> {
    const entry = await this.cold.get(cid)
    if (entry === undefined) throw new AdapterNotFoundError(cid)
    if (entry.baseModel !== this.model.modelId)
      throw new AdapterStoreError(
        'ADAPTER_BASE_MISMATCH',
        `adapter ${cid} was registered for base model ${entry.baseModel}, not ${this.model.modelId}`,
        { cid, baseModel: entry.baseModel, modelId: this.model.modelId }
      )
    let adapter: A
    const t0 = performance.now()
    try {
      adapter = await this.loadAdapter(this.cold.blobDir(cid), this.model.config)
    } catch (err) {
      this.counters.loadErrors += 1
      throw err
    }
    this.counters.coldLoads += 1
    const per = this.adapterCounters(cid)
    per.loads += 1
    per.lastLoadMs = performance.now() - t0
    this.warmPut(cid, adapter, entry.fp32Bytes || adapterShape(adapter).fp32Bytes)
    return adapter
  }

  private checkFits(cid: string, adapter: A): { rank: number; targets: string[]; fp32Bytes: number } {
    const shape = adapterShape(adapter)
    const pools = this.model.pools
    if (shape.rank > pools.maxRank)
      throw new AdapterStoreError(
        'ADAPTER_RANK_TOO_LARGE',
        `adapter ${cid} has rank ${shape.rank}; this model's slot pool holds ranks up to ${pools.maxRank} (raise pool.maxRank)`,
        { cid, rank: shape.rank, maxRank: pools.maxRank }
      )
    const missing = shape.targets.filter((t) => !pools.targets.includes(t))
    if (missing.length > 0)
      throw new AdapterStoreError(
        'ADAPTER_TARGET_UNSUPPORTED',
        `adapter ${cid} targets ${missing.join(', ')}; this model's slot pool covers ${pools.targets.join(', ')} (set pool.targets)`,
        { cid, targets: shape.targets, poolTargets: pools.targets }
      )
    return shape
  }

  private checkSize(name: string, size: number): void {
    if (size > this.maxAdapterBytes)
      throw new AdapterStoreError(
        'ADAPTER_TOO_LARGE',
        `adapter file ${name} is ${size} bytes; the limit is ${this.maxAdapterBytes} (adapters.maxAdapterBytes)`,
        { name, size, limit: this.maxAdapterBytes }
      )
  }

  private checkOpen(): void {
    if (!this.open)
      throw new AdapterStoreError('STORE_CLOSED', 'the adapter store is not started (call start())')
  }

  private warmGet(cid: string): A | undefined {
    const w = this.warm.get(cid)
    if (w === undefined) return undefined
    this.warm.delete(cid)
    this.warm.set(cid, w)
    return w.adapter
  }

  private warmPut(cid: string, adapter: A, bytes: number): void {
    this.warmDelete(cid)
    this.warm.set(cid, { adapter, bytes })
    this.warmBytes += bytes
    for (const old of this.warm.keys()) {
      if (this.warmBytes <= this.warmBudget) break
      if (old === cid) continue
      this.warmDelete(old)
      this.counters.evictions.warm += 1
      if (!this.hot.has(old)) this.emitChange(old, 'cold')
    }
    this.emitChange(cid, this.hot.has(cid) ? 'hot' : 'warm')
  }

  private warmDelete(cid: string): void {
    const w = this.warm.get(cid)
    if (w === undefined) return
    this.warm.delete(cid)
    this.warmBytes -= w.bytes
  }

  private placeHot(cid: string, adapter: A): number {
    let slot = this.freeSlots.pop()
    if (slot === undefined) {
      for (const [, s] of this.hot) {
        if (this.slotRefs[s] === 0) {
          slot = s
          break
        }
      }
      if (slot === undefined) throw new NoFreeSlotError(cid, this.model.pools.slots)
      this.evictHot(slot, true)
      this.freeSlots.pop()
    }
    this.model.pools.write(slot, adapter)
    this.slotCid[slot] = cid
    this.hot.set(cid, slot)
    // an adapter bigger than the whole warm budget was only kept for this write
    if (this.warmBytes > this.warmBudget) this.warmDelete(cid)
    this.emitChange(cid, 'hot')
    return slot
  }

  private evictHot(slot: number, counted: boolean): void {
    const cid = this.slotCid[slot]
    if (cid === undefined) return
    this.hot.delete(cid)
    this.slotCid[slot] = undefined
    this.freeSlots.push(slot)
    if (counted) this.counters.evictions.hot += 1
    this.emitChange(cid, this.warm.has(cid) ? 'warm' : 'cold')
  }

  private emitChange(cid: string, tier: TierChange['tier']): void {
    this.dispatchEvent(new CustomEvent<TierChange>('changed', { detail: { cid, tier } }))
  }
}
