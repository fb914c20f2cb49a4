// Where a job runs: here, or at the best peer from the PeerTable. Order (issue 5): adapter tier
// hot > warm > cold, then queue depth, price and measured latency; this node wins ties because it
// costs no hop. "Fetchable" (this node serves the base model and a peer advertises the adapter)
// ranks as cold: either way the adapter is read and decoded before the first token, and serving
// here spreads popular adapters instead of piling their jobs onto the one peer that has them. The plan is a list so the caller can fail over to the next candidate; it never names a
// peer the job already visited, nor the client, and only this node once the hop budget is spent.

export type AdapterTier = 'hot' | 'warm' | 'cold'

/** What the router needs of a PeerTable entry (the adverts PeerTable's PeerMatch fits). */
export interface RoutingPeer {
  peerId: string
  tier: AdapterTier | null
  advert: { queueDepth: number; freeSlots: number; pricePer1kTokens: string; operator?: string }
}

/** The query the router makes (a subset of the adverts PeerTable's PeerQuery). */
export interface PeerDirectory {
  query(q: { adapter?: string; model?: string; exclude?: Iterable<string> }): RoutingPeer[]
}

export interface LocalState {
  hasModel: boolean
  /** where the adapter sits here; null = not here (no adapter requested counts as 'hot') */
  tier: AdapterTier | null
  queueDepth: number
  /** jobs this node still takes now; 0 = full */
  freeSlots: number
  pricePer1kTokens: string
}

export type RouteTarget =
  | { kind: 'local'; fetchFrom: string[] }
  | { kind: 'remote'; peerId: string; tier: AdapterTier | 'base' }

export interface PlanInput {
  self: string
  client: string
  model: string
  adapter: string | null
  /** peers the job passed through before reaching this node */
  route: readonly string[]
  maxHops: number
  local: LocalState
  peers: PeerDirectory
  /** measured round trip to a peer in ms, if known */
  latencyMs?: (peerId: string) => number | undefined
  /**
   * true for a peer this node failed to dial a moment ago (UnreachablePeers): it goes behind
   * every other candidate, but stays in the plan, so a peer that came back is still found
   */
  unreachable?: (peerId: string) => boolean
  /** how many remote candidates to keep for failover */
  maxCandidates?: number
  /**
   * A paid job's voucher names the operator it pays (its channel is client, node, adapter), so
   * only a node of that operator can serve it: set to that address; `selfOperator` is ours.
   */
  payTo?: string
  selfOperator?: string
}

interface Candidate {
  target: RouteTarget
  unreachable: boolean
  tierRank: number
  queue: number
  price: bigint
  latency: number
  local: boolean
}

const TIER_RANK: Record<AdapterTier, number> = { hot: 0, warm: 1, cold: 2 }
const FETCHABLE_RANK = TIER_RANK.cold

function compare(a: Candidate, b: Candidate): number {
  if (a.unreachable !== b.unreachable) return a.unreachable ? 1 : -1
  if (a.tierRank !== b.tierRank) return a.tierRank - b.tierRank
  if (a.queue !== b.queue) return a.queue - b.queue
  if (a.price !== b.price) return a.price < b.price ? -1 : 1
  if (a.local !== b.local) return a.local ? -1 : 1
  return a.latency - b.latency
}

/** Ranked targets for one job, best first; empty when nobody can serve it (see `whyNoRoute`). */
export function planRoute(input: PlanInput): RouteTarget[] {
  const { local, adapter } = input
  const exclude = new Set([...input.route, input.client, input.self])
  const canForward = input.route.length < input.maxHops
  const remote = canForward
    ? input.peers.query({ model: input.model, adapter: adapter ?? undefined, exclude })
    : []
  // Peers that hold the adapter but not the base model can still hand us its bytes.
  const sources =
    adapter === null
      ? []
      : input.peers
          .query({ adapter, exclude: [input.self, input.client] })
          .filter((p) => p.tier !== null)
          .map((p) => p.peerId)

  const paysUs = (op: string | undefined): boolean =>
    input.payTo === undefined || (op !== undefined && op.toLowerCase() === input.payTo.toLowerCase())
  const candidates: Candidate[] = []
  if (local.hasModel && local.freeSlots > 0 && paysUs(input.selfOperator)) {
    const localTier = adapter === null ? 'hot' : local.tier
    if (localTier !== null || sources.length > 0) {
      candidates.push({
        target: { kind: 'local', fetchFrom: localTier === null ? sources : [] },
        unreachable: false,
        tierRank: localTier === null ? FETCHABLE_RANK : TIER_RANK[localTier],
        queue: local.queueDepth,
        price: BigInt(local.pricePer1kTokens),
        latency: 0,
        local: true
      })
    }
  }
  for (const p of remote) {
    const tier = adapter === null ? null : p.tier
    if (adapter !== null && tier === null) continue
    if (!paysUs(p.advert.operator)) continue
    candidates.push({
      target: { kind: 'remote', peerId: p.peerId, tier: tier ?? 'base' },
      unreachable: input.unreachable?.(p.peerId) ?? false,
      tierRank: tier === null ? 0 : TIER_RANK[tier],
      // A full peer stays a last resort: behind every peer with room, whatever its queue.
      queue: p.advert.queueDepth + (p.advert.freeSlots <= 0 ? 1_000_000 : 0),
      price: BigInt(p.advert.pricePer1kTokens),
      latency: input.latencyMs?.(p.peerId) ?? Number.MAX_SAFE_INTEGER,
      local: false
    })
  }
  candidates.sort(compare)
  const max = (input.maxCandidates ?? 3) + 1
  return candidates.slice(0, max).map((c) => c.target)
}

/** Why planRoute found nothing, as the error code the client should see. */
export function whyNoRoute(input: PlanInput): 'MODEL_NOT_FOUND' | 'ADAPTER_NOT_FOUND' | 'BUSY' {
  const anyModel = input.local.hasModel || input.peers.query({ model: input.model }).length > 0
  if (!anyModel) return 'MODEL_NOT_FOUND'
  if (input.local.hasModel && input.local.freeSlots <= 0) return 'BUSY'
  return 'ADAPTER_NOT_FOUND'
}

/** Round-trip times to peers as an exponential moving average of what forwarding measured. */
export class LatencyTracker {
  readonly #ms = new Map<string, number>()
  readonly #alpha: number
  readonly #max: number

  constructor(alpha = 0.3, maxPeers = 10_000) {
    this.#alpha = alpha
    this.#max = maxPeers
  }

  record(peerId: string, ms: number): void {
    const prev = this.#ms.get(peerId)
    if (prev === undefined && this.#ms.size >= this.#max) {
      const oldest = this.#ms.keys().next().value
      if (oldest !== undefined) this.#ms.delete(oldest)
    }
    this.#ms.set(peerId, prev === undefined ? ms : prev + this.#alpha * (ms - prev))
  }

  get(peerId: string): number | undefined {
    return this.#ms.get(peerId)
  }
}

/**
 * Peers a forward could not dial (killed, partitioned, relay gone), for `ms` after the failure or
 * until a dial to them works again. Their adverts outlive them (the PeerTable keeps an advert
 * until its TTL), so without this every job would try the dead peer first and pay a failed dial
 * before failing over, as a router that health-checks its backends avoids.
 */
export class UnreachablePeers {
  readonly #until = new Map<string, number>()
  readonly #ms: number
  readonly #max: number

  constructor(ms = 10_000, maxPeers = 10_000) {
    this.#ms = ms
    this.#max = maxPeers
  }

  failed(peerId: string, now = Date.now()): void {
    this.#until.delete(peerId)
    if (this.#until.size >= this.#max) {
      const oldest = this.#until.keys().next().value
      if (oldest !== undefined) this.#until.delete(oldest)
    }
    this.#until.set(peerId, now + this.#ms)
  }

  reached(peerId: string): void {
    this.#until.delete(peerId)
  }

  has(peerId: string, now = Date.now()): boolean {
    const t = this.#until.get(peerId)
    if (t === undefined) return false
    if (t > now) return true
    this.#until.delete(peerId)
    return false
  }
}
