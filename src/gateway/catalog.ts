// What `model` may name, and GET /v1/models: the base models and adapters this node serves, and
// those its peers advertise (from the PeerTable), each adapter also under the names given to it
// with load_lora_adapter. Requests resolve a name here before any job is sent, so an unknown
// model is a 404 at once.
import type { AdapterTier } from '../serving/capability.ts'
import type { ModelObject } from './schemas.ts'

/** The serving stack as the gateway sees it (ServingStack fits through the extension's adapter). */
export interface GatewayServing {
  models(): { modelId: string; weightsHash: string }[]
  adapterTier(model: string, cid: string): AdapterTier | null | Promise<AdapterTier | null>
  /** every adapter in this node's stores with its live tier */
  listAdapters(): Promise<{ model: string; cid: string; tier: AdapterTier }[]>
}

/** A peer's advert as the catalog reads it (PeerTable entries fit). */
export interface GatewayPeers {
  entries(): {
    peerId: string
    advert: {
      body: {
        models: { id: string; weightsHash: string }[]
        adapters: Record<AdapterTier, { list: string[] }>
        pricePer1kTokens: string
        operator: string
      }
    }
  }[]
}

export interface Aliases {
  /** name → adapter CID */
  get(name: string): { cid: string; model: string } | undefined
  namesOf(cid: string): string[]
}

export interface Resolved {
  /** the base model id */
  model: string
  adapter: string | null
}

const TIER_RANK: Record<AdapterTier, number> = { hot: 0, warm: 1, cold: 2 }

export class Catalog {
  readonly #serving: GatewayServing | undefined
  readonly #peers: GatewayPeers | undefined
  readonly #aliases: Aliases
  readonly #self: { peerId: string; operator: string; pricePer1kTokens: string }
  readonly #created = Math.floor(Date.now() / 1000)

  constructor(
    serving: GatewayServing | undefined,
    peers: GatewayPeers | undefined,
    aliases: Aliases,
    self: { peerId: string; operator: string; pricePer1kTokens: string }
  ) {
    this.#serving = serving
    this.#peers = peers
    this.#aliases = aliases
    this.#self = self
  }

  /**
   * `model` as a base model id (here or on a peer), an adapter name, or an adapter CID (here or
   * advertised by a peer; its base model is the one that node serves). Null: nobody serves it.
   */
  async resolve(name: string): Promise<Resolved | null> {
    const local = this.#serving?.models() ?? []
    if (local.some((m) => m.modelId === name)) return { model: name, adapter: null }
    const peers = this.#peers?.entries() ?? []
    if (peers.some((p) => p.advert.body.models.some((m) => m.id === name)))
      return { model: name, adapter: null }
    const alias = this.#aliases.get(name)
    const cid = alias?.cid ?? name
    if (alias) return { model: alias.model, adapter: alias.cid }
    for (const m of local)
      if ((await this.#serving!.adapterTier(m.modelId, cid)) !== null)
        return { model: m.modelId, adapter: cid }
    // A peer that lists the adapter serves it on its (first) model; a node with that model fetches it
    for (const p of peers) {
      const a = p.advert.body.adapters
      if (
        p.advert.body.models.length > 0 &&
        (a.hot.list.includes(cid) || a.warm.list.includes(cid) || a.cold.list.includes(cid))
      )
        return { model: p.advert.body.models[0]!.id, adapter: cid }
    }
    return null
  }

  async list(): Promise<ModelObject[]> {
    type Entry = ModelObject & { openlora: ModelObject['openlora'] }
    const out = new Map<string, Entry>()
    const entry = (id: string, kind: 'base' | 'adapter', root: string, ownedBy: string): Entry => {
      let e = out.get(id)
      if (!e) {
        e = {
          id,
          object: 'model',
          created: this.#created,
          owned_by: ownedBy,
          root,
          parent: kind === 'adapter' ? root : null,
          openlora: {
            kind,
            aliases: kind === 'adapter' ? this.#aliases.namesOf(id) : [],
            tiers: { hot: 0, warm: 0, cold: 0 },
            local: null,
            nodes: [],
            minPricePer1kTokens: null
          }
        }
        out.set(id, e)
      }
      return e
    }
    const addNode = (e: Entry, peerId: string, tier: AdapterTier, price: string): void => {
      e.openlora.tiers[tier] += 1
      e.openlora.nodes.push({ peerId, tier, pricePer1kTokens: price })
      const min = e.openlora.minPricePer1kTokens
      if (min === null || BigInt(price) < BigInt(min)) e.openlora.minPricePer1kTokens = price
    }
    const self = this.#self
    for (const m of this.#serving?.models() ?? []) {
      const e = entry(m.modelId, 'base', m.modelId, self.operator)
      e.openlora.weightsHash = m.weightsHash
      e.openlora.local = 'hot'
      addNode(e, self.peerId, 'hot', '0')
    }
    for (const a of (await this.#serving?.listAdapters()) ?? []) {
      const e = entry(a.cid, 'adapter', a.model, self.operator)
      e.openlora.local = a.tier
      addNode(e, self.peerId, a.tier, '0')
    }
    for (const p of this.#peers?.entries() ?? []) {
      const b = p.advert.body
      if (p.peerId === self.peerId) continue
      for (const m of b.models) {
        const e = entry(m.id, 'base', m.id, b.operator)
        e.openlora.weightsHash ??= m.weightsHash
        addNode(e, p.peerId, 'hot', b.pricePer1kTokens)
      }
      const root = b.models[0]?.id
      if (root === undefined) continue
      for (const tier of ['hot', 'warm', 'cold'] as const)
        for (const cid of b.adapters[tier].list)
          addNode(entry(cid, 'adapter', root, b.operator), p.peerId, tier, b.pricePer1kTokens)
    }
    for (const e of out.values())
      e.openlora.nodes.sort((x, y) => TIER_RANK[x.tier as AdapterTier] - TIER_RANK[y.tier as AdapterTier])
    // base models first, then adapters, each by id: a stable order for clients that diff lists
    return [...out.values()].sort((x, y) =>
      x.openlora.kind === y.openlora.kind ? (x.id < y.id ? -1 : 1) : x.openlora.kind === 'base' ? -1 : 1
    )
  }
}
