// The tiered AdapterStore of one base model (S-LoRA's unified paging, reduced to three tiers):
//   cold: files on disk, content-addressed, indexed in LevelDB (cold.ts);
//   warm: decoded fp32 A/B tensors in RAM, LRU within a byte budget;
//   hot:  a slot in the model's SlotPools, LRU among slots no running sequence holds.
// `acquire(cid)` moves an adapter up to hot and pins its slot until the lease is released; the
// engine holds one lease per running sequence, so eviction can never touch a slot in use.
// Concurrent acquires of the same cold adapter share one disk load. The tiers' bookkeeping is
// warm.ts and hot.ts; this class moves adapters between them, counts and tells its listeners.
import { OpenLoraError } from '../../common/errors.ts'
import { type Logger, silentLogger } from '../../common/log.ts'
import { checkFileSize, checkFitsPools, readAdapterDir } from './admission.ts'
import { ADAPTER_FILES, type AdapterFiles, adapterCid, type ColdEntry, ColdIndex } from './cold.ts'
import { AdapterNotFoundError, AdapterStoreError, NoFreeSlotError } from './errors.ts'
import { HotSlots } from './hot.ts'
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
import { WarmTier } from './warm.ts'

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
  private readonly maxAdapterBytes: number
  private readonly flushEveryMs: number
  private readonly warm: WarmTier<A>
  private readonly hot: HotSlots
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
    this.warm = new WarmTier(init.warmBudgetBytes ?? DEFAULT_WARM_BUDGET)
    this.maxAdapterBytes = init.maxAdapterBytes ?? DEFAULT_MAX_ADAPTER_BYTES
    this.flushEveryMs = init.flushEveryMs ?? DEFAULT_FLUSH_MS
    const slots = this.model.pools.slots
    if (!Number.isInteger(slots) || slots < 2)
      throw new AdapterStoreError(
        'ADAPTER_INVALID',
        `pool has ${slots} slots; need at least 2 (slot 0 = no adapter)`
      )
    this.hot = new HotSlots(slots)
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
    return this.importFiles(await readAdapterDir(dir, this.maxAdapterBytes))
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
      checkFileSize(name, files[name].length, this.maxAdapterBytes)
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
      const shape = checkFitsPools(cid, adapter, this.model.pools)
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
    let slot = this.hot.slotOf(cid)
    if (slot === undefined) {
      let adapter = this.warm.get(cid)
      from = 'warm'
      if (adapter === undefined) {
        from = 'cold'
        adapter = await this.loadOnce(cid)
      }
      // another acquire may have placed it while this one waited on the disk
      slot = this.hot.slotOf(cid) ?? this.placeHot(cid, adapter)
    } else {
      this.hot.touch(cid)
    }
    this.hot.pin(slot)
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
        this.hot.unpin(pinned)
      }
    }
  }

  /** Unregisters an adapter and deletes its files; refused while a sequence holds it. */
  async remove(cid: string): Promise<boolean> {
    this.checkOpen()
    const slot = this.hot.slotOf(cid)
    if (slot !== undefined) {
      if (this.hot.pinned(slot))
        throw new AdapterStoreError(
          'ADAPTER_INVALID',
          `adapter ${cid} is in use by a running sequence; remove it when idle`,
          { cid }
        )
      this.evictHot(slot, false)
      this.model.pools.clear(slot)
    }
    this.warm.delete(cid)
    const removed = await this.cold.remove(cid)
    this.perAdapter.delete(cid)
    if (removed) this.emitChange(cid, 'removed')
    return removed
  }

  /** Each adapter in its highest tier, for adverts; cold is a count (list it with listCold). */
  tiers(): { hot: string[]; warm: string[]; cold: number } {
    const hot = this.hot.cids()
    const warm = this.warm.cids().filter((c) => !this.hot.has(c))
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
    return this.hot.slotOf(cid)
  }

  stats(): AdapterStoreStats {
    return {
      registered: this.cold.size,
      registeredBytes: this.cold.totalBytes,
      warm: this.warm.size,
      warmBytes: this.warm.bytes,
      warmBudgetBytes: this.warm.budget,
      hot: this.hot.size,
      hotPinned: this.hot.pinnedCount(),
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

  private checkOpen(): void {
    if (!this.open)
      throw new AdapterStoreError('STORE_CLOSED', 'the adapter store is not started (call start())')
  }

  private warmPut(cid: string, adapter: A, bytes: number): void {
    for (const old of this.warm.put(cid, adapter, bytes)) {
      this.counters.evictions.warm += 1
      if (!this.hot.has(old)) this.emitChange(old, 'cold')
    }
    this.emitChange(cid, this.hot.has(cid) ? 'hot' : 'warm')
  }

  private placeHot(cid: string, adapter: A): number {
    const taken = this.hot.take()
    if (taken === undefined) throw new NoFreeSlotError(cid, this.model.pools.slots)
    if (taken.evicted !== undefined) this.leftHot(taken.evicted, true)
    this.model.pools.write(taken.slot, adapter)
    this.hot.assign(cid, taken.slot)
    // an adapter bigger than the whole warm budget was only kept for this write
    if (this.warm.overBudget()) this.warm.delete(cid)
    this.emitChange(cid, 'hot')
    return taken.slot
  }

  private evictHot(slot: number, counted: boolean): void {
    const cid = this.hot.evict(slot)
    if (cid !== undefined) this.leftHot(cid, counted)
  }

  private leftHot(cid: string, counted: boolean): void {
    if (counted) this.counters.evictions.hot += 1
    this.emitChange(cid, this.warm.has(cid) ? 'warm' : 'cold')
  }

  private emitChange(cid: string, tier: TierChange['tier']): void {
    this.dispatchEvent(new CustomEvent<TierChange>('changed', { detail: { cid, tier } }))
  }
}
