// The latest valid advert of every peer we have heard from: what the router asks "who serves
// adapter X / model Y, cheaply, with room?". Entries expire at their advert's `expires`; the
// table is written through to LevelDB so a restarted node routes from a warm table at once
// (entries are re-verified and expired ones dropped on load). Writes are batched once a second
// (write-behind): a busy network updates every entry often, and a restart losing the last
// second of updates only means those peers' next adverts refresh them.
import type { Logger } from '../../common/log.ts'
import { silentLogger } from '../../common/log.ts'
import { ADAPTER_TIERS, type AdapterTier } from '../../serving/capability.ts'
import { type AdvertBody, decodeAdvert, type SignedAdvert, tierHas, verifyAdvertSignature } from './codec.ts'

export type PeerTableOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }

/** The part of a LevelDB sublevel the table uses (string keys, byte values). */
export interface PeerTableStore {
  batch(ops: PeerTableOp[]): Promise<void>
  iterator(): AsyncIterable<[string, Uint8Array]>
}

const FLUSH_INTERVAL_MS = 1_000

export interface PeerEntry {
  peerId: string
  advert: SignedAdvert
  receivedAt: number
}

export interface PeerQuery {
  /** adapter CID the peer should hold (any tier unless `tiers` narrows it) */
  adapter?: string
  tiers?: AdapterTier[]
  /** modelId or weightsHash of a base model the peer serves */
  model?: string
  /** highest acceptable price, wei per 1k tokens */
  maxPrice?: bigint | string
  maxQueueDepth?: number
  minFreeSlots?: number
  /** leave these peers out (e.g. ourselves, peers already tried) */
  exclude?: Iterable<string>
  limit?: number
}

export interface PeerMatch {
  peerId: string
  advert: AdvertBody
  /** where the adapter sits on that peer (null when the query named no adapter) */
  tier: AdapterTier | null
  /** 'bloom' is a probable hit (about 1% false positives) */
  match: 'list' | 'bloom' | null
}

export interface PeerTableInit {
  store?: PeerTableStore
  logger?: Logger
  now?: () => number
  /** how often expired entries are swept out */
  sweepIntervalMs?: number
}

const TIER_RANK: Record<AdapterTier, number> = { hot: 0, warm: 1, cold: 2 }

export class PeerTable extends EventTarget {
  readonly #entries = new Map<string, PeerEntry>()
  readonly #store?: PeerTableStore
  readonly #log: Logger
  readonly #now: () => number
  readonly #sweepMs: number
  #timer?: ReturnType<typeof setInterval>
  #flushTimer?: ReturnType<typeof setTimeout>
  /** peer id → bytes to write, or null to delete */
  readonly #dirty = new Map<string, Uint8Array | null>()
  #flushing: Promise<void> = Promise.resolve()

  constructor(init: PeerTableInit = {}) {
    super()
    this.#store = init.store
    this.#log = init.logger ?? silentLogger
    this.#now = init.now ?? Date.now
    this.#sweepMs = init.sweepIntervalMs ?? 5_000
  }

  /** Loads persisted adverts (dropping expired or unverifiable ones) and starts the sweeper. */
  async start(): Promise<void> {
    if (this.#store) {
      let loaded = 0
      const drop: string[] = []
      for await (const [key, bytes] of this.#store.iterator()) {
        try {
          const adv = decodeAdvert(bytes)
          if (
            adv.body.peerId !== key ||
            adv.body.expires <= this.#now() ||
            !(await verifyAdvertSignature(adv))
          ) {
            drop.push(key)
            continue
          }
          this.#entries.set(key, { peerId: key, advert: adv, receivedAt: adv.body.ts })
          loaded++
        } catch {
          drop.push(key)
        }
      }
      if (drop.length > 0) await this.#store.batch(drop.map((key) => ({ type: 'del' as const, key })))
      this.#log.debug('peer table loaded', { loaded, dropped: drop.length })
    }
    this.#timer = setInterval(() => void this.sweep(), this.#sweepMs)
    this.#timer.unref()
  }

  /** Stops the sweeper and writes what is still pending (the node closes the DB right after). */
  async stop(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.flush()
  }

  /** Writes pending changes now. */
  flush(): Promise<void> {
    clearTimeout(this.#flushTimer)
    this.#flushTimer = undefined
    if (!this.#store || this.#dirty.size === 0) return this.#flushing
    const ops: PeerTableOp[] = [...this.#dirty].map(([key, value]) =>
      value === null ? { type: 'del', key } : { type: 'put', key, value }
    )
    this.#dirty.clear()
    const store = this.#store
    this.#flushing = this.#flushing
      .then(() => store.batch(ops))
      .catch((err) => {
        // The table still serves from memory; only a warm restart misses these entries.
        this.#log.warn('could not persist adverts', { count: ops.length, err })
      })
    return this.#flushing
  }

  #markDirty(peerId: string, value: Uint8Array | null): void {
    // before start() (or after stop()) there is nothing to write to
    if (!this.#store || this.#timer === undefined) return
    this.#dirty.set(peerId, value)
    this.#flushTimer ??= setTimeout(() => void this.flush(), FLUSH_INTERVAL_MS)
  }

  get size(): number {
    return this.#entries.size
  }

  get(peerId: string): PeerEntry | undefined {
    const e = this.#entries.get(peerId)
    return e && e.advert.body.expires > this.#now() ? e : undefined
  }

  latestSeq(peerId: string): number | undefined {
    return this.#entries.get(peerId)?.advert.body.seq
  }

  latestTs(peerId: string): number | undefined {
    return this.#entries.get(peerId)?.advert.body.ts
  }

  /** Live (unexpired) entries. */
  entries(): PeerEntry[] {
    const now = this.#now()
    return [...this.#entries.values()].filter((e) => e.advert.body.expires > now)
  }

  /** Stores an already-validated advert if it is newer than what is held; returns whether it was. */
  async put(advert: SignedAdvert): Promise<boolean> {
    const peerId = advert.body.peerId
    const held = this.#entries.get(peerId)
    if (held && held.advert.body.seq >= advert.body.seq) return false
    const entry = { peerId, advert, receivedAt: this.#now() }
    this.#entries.set(peerId, entry)
    this.#markDirty(peerId, advert.bytes)
    this.dispatchEvent(new CustomEvent('update', { detail: entry }))
    return true
  }

  async remove(peerId: string): Promise<void> {
    if (!this.#entries.delete(peerId)) return
    this.#markDirty(peerId, null)
    this.dispatchEvent(new CustomEvent('remove', { detail: { peerId } }))
  }

  async sweep(): Promise<number> {
    const now = this.#now()
    const gone = [...this.#entries.values()].filter((e) => e.advert.body.expires <= now).map((e) => e.peerId)
    for (const p of gone) await this.remove(p)
    if (gone.length > 0) this.#log.debug('expired adverts', { count: gone.length })
    return gone.length
  }

  /** Peers matching every given criterion, best first: adapter tier, then load, then price. */
  query(q: PeerQuery = {}): PeerMatch[] {
    const exclude = new Set(q.exclude ?? [])
    const maxPrice = q.maxPrice === undefined ? undefined : BigInt(q.maxPrice)
    const tiers = q.tiers ?? ADAPTER_TIERS
    const out: PeerMatch[] = []
    for (const e of this.entries()) {
      const b = e.advert.body
      if (exclude.has(e.peerId)) continue
      if (q.model !== undefined && !b.models.some((m) => m.id === q.model || m.weightsHash === q.model))
        continue
      if (maxPrice !== undefined && BigInt(b.pricePer1kTokens) > maxPrice) continue
      if (q.maxQueueDepth !== undefined && b.queueDepth > q.maxQueueDepth) continue
      if (q.minFreeSlots !== undefined && b.freeSlots < q.minFreeSlots) continue
      let tier: AdapterTier | null = null
      let match: 'list' | 'bloom' | null = null
      if (q.adapter !== undefined) {
        // A listed hit in any tier beats a Bloom (probable) hit; warmer tiers come first.
        let bloomTier: AdapterTier | null = null
        for (const t of tiers) {
          const m = tierHas(b.adapters[t], q.adapter)
          if (m === 'list') {
            tier = t
            match = 'list'
            break
          }
          if (m === 'bloom' && bloomTier === null) bloomTier = t
        }
        if (match === null && bloomTier !== null) {
          tier = bloomTier
          match = 'bloom'
        }
        if (match === null) continue
      }
      out.push({ peerId: e.peerId, advert: b, tier, match })
    }
    out.sort((x, y) => {
      const tx = x.tier ? TIER_RANK[x.tier] : 3
      const ty = y.tier ? TIER_RANK[y.tier] : 3
      if (tx !== ty) return tx - ty
      if (x.match !== y.match) return x.match === 'list' ? -1 : 1
      const lx = x.advert.queueDepth - x.advert.freeSlots
      const ly = y.advert.queueDepth - y.advert.freeSlots
      if (lx !== ly) return lx - ly
      const px = BigInt(x.advert.pricePer1kTokens)
      const py = BigInt(y.advert.pricePer1kTokens)
      return px < py ? -1 : px > py ? 1 : 0
    })
    return q.limit !== undefined ? out.slice(0, q.limit) : out
  }
}
