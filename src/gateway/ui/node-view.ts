// What the dashboard's pages show, read from the running node's own components and services (no
// copies kept, except the recent jobs and a few minutes of pending-reward samples, which nothing
// else remembers). Each method answers one page's JSON; wei amounts are decimal strings.
import type { NodeComponents } from '../../common/service.ts'
import type { FinishedJob } from '../../protocols/infer/infer.ts'
import { adapterIdOf } from '../../protocols/infer/receipt.ts'
import { ADAPTER_TIERS } from '../../serving/capability.ts'
import { earnings, type PendingSample } from './earnings.ts'
import { type JobRecord, jobRecord } from './jobs-log.ts'

const MAX_JOBS = 200
const SAMPLE_MS = 10_000
const KEEP_FLAT_MS = 60_000
/** at least an hour of samples */
const MAX_SAMPLES = 720
const ZERO = '0x0000000000000000000000000000000000000000'

interface RelayKeeperView {
  reachability(): string
}

export class NodeView {
  readonly #c: NodeComponents
  readonly #startedAt = Date.now()
  readonly #jobs: JobRecord[] = []
  readonly #jobListeners = new Set<(j: JobRecord) => void>()
  readonly #samples: PendingSample[] = []
  #unsubscribe: (() => void) | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(components: NodeComponents) {
    this.#c = components
  }

  start(): void {
    this.#unsubscribe = this.#c.services.infer?.onJob((e) => this.#onJob(e))
    void this.#sample()
    this.#timer = setInterval(() => void this.#sample(), SAMPLE_MS)
    this.#timer.unref()
  }

  stop(): void {
    this.#unsubscribe?.()
    clearInterval(this.#timer)
  }

  /** Called with each finished job; returns the unsubscribe. */
  onJob(listener: (j: JobRecord) => void): () => void {
    this.#jobListeners.add(listener)
    return () => this.#jobListeners.delete(listener)
  }

  #onJob(e: FinishedJob): void {
    const r = jobRecord(e, this.#c.identity.peerId.toString())
    this.#jobs.unshift(r)
    if (this.#jobs.length > MAX_JOBS) this.#jobs.length = MAX_JOBS
    for (const l of this.#jobListeners) l(r)
  }

  async #sample(): Promise<void> {
    const chain = this.#c.services.chain
    if (!chain) return
    try {
      let pending = 0n
      for (const u of await chain.store.unclaimed(this.#c.identity.operator.address)) pending += u.unclaimed
      // a point when the value moved, and one a minute while it stays (the chart stays flat)
      const last = this.#samples.at(-1)
      if (last && last.pending === pending && Date.now() - last.t < KEEP_FLAT_MS) return
      this.#samples.push({ t: Date.now(), pending })
      if (this.#samples.length > MAX_SAMPLES) this.#samples.shift()
    } catch (err) {
      this.#c.logger.debug('pending rewards sample failed', { err })
    }
  }

  #reachability(): string {
    const keeper = (this.#c.libp2p.services as Record<string, unknown>).relayKeeper as
      | RelayKeeperView
      | undefined
    return typeof keeper?.reachability === 'function' ? keeper.reachability() : 'unknown'
  }

  #connectionKinds(): Map<string, 'direct' | 'relayed'> {
    const out = new Map<string, 'direct' | 'relayed'>()
    for (const conn of this.#c.libp2p.getConnections()) {
      const id = conn.remotePeer.toString()
      // a direct connection beside a relayed one is what the peer is reachable by
      if (out.get(id) !== 'direct') out.set(id, conn.limits == null ? 'direct' : 'relayed')
    }
    return out
  }

  async overview() {
    const c = this.#c
    const caps = await c.capabilities.capabilities()
    const kinds = [...this.#connectionKinds().values()]
    const serving = c.services.serving
    const chain = c.services.chain
    return {
      peerId: c.identity.peerId.toString(),
      operator: c.identity.operator.address,
      version: c.adverts.current?.body.version ?? null,
      startedAt: this.#startedAt,
      uptimeMs: Date.now() - this.#startedAt,
      addrs: c.libp2p.getMultiaddrs().map((m) => m.toString()),
      reachability: this.#reachability(),
      connections: {
        direct: kinds.filter((k) => k === 'direct').length,
        relayed: kinds.filter((k) => k === 'relayed').length
      },
      peersKnown: c.peerTable.size,
      hardware: caps.hardware,
      executionProvider: caps.executionProvider,
      models:
        serving?.models().map((m) => ({ id: m.modelId, weightsHash: m.weightsHash, family: m.family })) ?? [],
      adapters: Object.fromEntries(ADAPTER_TIERS.map((t) => [t, caps.adapters[t].length])),
      load: serving?.load() ?? { queueDepth: 0, freeSlots: 0 },
      pricePer1kTokens: caps.pricePer1kTokens,
      jobsSeen: this.#jobs.length,
      chain: chain
        ? {
            chainId: chain.endpoint.chainId,
            settlement: chain.endpoint.addresses.settlement,
            local: chain.localChain !== undefined
          }
        : null
    }
  }

  network() {
    const kinds = this.#connectionKinds()
    const now = Date.now()
    return {
      self: this.#c.identity.peerId.toString(),
      peers: this.#c.peerTable.entries().map(({ peerId, advert, receivedAt }) => {
        const b = advert.body
        return {
          peerId,
          operator: b.operator,
          version: b.version,
          addrs: b.addrs,
          reachability: b.reachability ?? null,
          connection: kinds.get(peerId) ?? null,
          hardware: b.hardware,
          models: b.models.map((m) => m.id),
          adapters: Object.fromEntries(
            ADAPTER_TIERS.map((t) => [
              t,
              { count: b.adapters[t].count, list: b.adapters[t].list.slice(0, 20) }
            ])
          ),
          queueDepth: b.queueDepth,
          freeSlots: b.freeSlots,
          pricePer1kTokens: b.pricePer1kTokens,
          seq: b.seq,
          ageMs: now - receivedAt,
          live: b.expires > now
        }
      })
    }
  }

  async adapters() {
    const serving = this.#c.services.serving
    const chain = this.#c.services.chain
    const attribution = this.#c.services.attribution
    const rows = []
    const stats = []
    for (const m of serving?.models() ?? []) {
      const store = serving!.store(m.modelId)
      if (!store) continue
      stats.push({ model: m.modelId, ...store.stats() })
      for (const e of await store.listCold({ limit: 10_000 })) {
        const provenance = (await attribution?.provenance.get(e.cid)) ?? null
        rows.push({
          model: m.modelId,
          cid: e.cid,
          tier: store.tierOf(e.cid) ?? 'cold',
          rank: e.rank,
          sizeBytes: e.sizeBytes,
          ...store.adapterStats(e.cid),
          provenance: provenance?.datanets.map((d) => ({ id: d.id, version: d.version, bp: d.bp })) ?? null,
          onChain: chain ? await this.#adapterOnChain(e.cid) : null
        })
      }
    }
    return { chain: chain !== undefined, stats, adapters: rows }
  }

  async #adapterOnChain(cid: string) {
    const chain = this.#c.services.chain!
    try {
      const a = await chain.client.getAdapter(adapterIdOf(cid))
      if (a.owner === ZERO) return { registered: false as const }
      return {
        registered: true as const,
        owner: a.owner,
        feePer1kTokens: a.feePer1kTokens.toString(),
        datanets: a.datanets.length
      }
    } catch (err) {
      return { registered: false as const, error: (err as Error).message.split('\n')[0]! }
    }
  }

  jobs(): { jobs: JobRecord[] } {
    return { jobs: this.#jobs }
  }

  async earnings() {
    const chain = this.#c.services.chain
    if (!chain) return { chain: false as const }
    await this.#sample()
    return earnings(chain, this.#c.identity.operator.address, this.#samples)
  }

  async datanets() {
    const attribution = this.#c.services.attribution
    const chain = this.#c.services.chain
    if (!attribution) return { datanets: [] }
    const out = []
    for (const d of await attribution.store.listDatanets()) {
      const versions = []
      for (const v of await attribution.store.versions(d.id)) {
        let onChain: 'match' | 'mismatch' | 'absent' | null = null
        if (chain) {
          const root = await chain.client.datanetVersionRoot(d.id, v.version).catch(() => null)
          onChain =
            root === null || /^0x0+$/.test(root)
              ? 'absent'
              : root.toLowerCase() === v.root.toLowerCase()
                ? 'match'
                : 'mismatch'
        }
        versions.push({
          version: v.version,
          root: v.root,
          count: v.count,
          publishedAt: v.publishedAt,
          onChain
        })
      }
      const byContributor = new Map<string, { contributions: number; bytes: number }>()
      for (const x of await attribution.store.contributions(d.id)) {
        const e = byContributor.get(x.contributor) ?? { contributions: 0, bytes: 0 }
        e.contributions++
        e.bytes += x.bytes
        byContributor.set(x.contributor, e)
      }
      out.push({
        id: d.id,
        name: d.name,
        description: d.description,
        owner: d.owner,
        createdAt: d.createdAt,
        latestVersion: d.latestVersion,
        versions,
        contributors: [...byContributor].map(([address, e]) => ({ address, ...e }))
      })
    }
    return { datanets: out }
  }

  /** The ModelFactory page's choices: the models it can train on, the datanets it holds. */
  async factory() {
    const c = this.#c
    const trainable = new Set((await c.services.training?.models()) ?? [])
    const store = c.services.attribution?.store
    const chain = c.services.chain
    const datanets = []
    for (const d of (await store?.listDatanets()) ?? []) {
      if (d.latestVersion < 1) continue
      const v = await store!.getVersion(d.id, d.latestVersion)
      let onChain: boolean | null = null
      if (chain) {
        const root = await chain.client.datanetVersionRoot(d.id, v.version).catch(() => null)
        onChain = root !== null && root.toLowerCase() === v.root.toLowerCase()
      }
      datanets.push({ id: d.id, name: d.name, version: v.version, records: v.count, onChain })
    }
    return {
      offered: c.services.training?.provider !== undefined,
      chain: chain !== undefined,
      models: (c.services.serving?.models() ?? []).map((m) => ({
        id: m.modelId,
        family: m.family,
        trainable: trainable.has(m.modelId)
      })),
      datanets
    }
  }

  /** Span token ids as text with this node's tokenizer for `model` (null: it does not serve it). */
  decode(model: string, ids: number[]): string | null {
    return this.#c.services.serving?.decode(model, ids) ?? null
  }
}
