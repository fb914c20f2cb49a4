// The node's own admin endpoints: /status (who am I, how connected) and /peers (connections and
// the PeerTable, what `openlora peers` prints).

import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { parseWith, z } from '../common/schema.ts'
import type { NodeComponents } from '../common/service.ts'
import { ADAPTER_TIERS, type AdapterTier } from '../serving/capability.ts'
import type { Host } from './host.ts'
import { NODE_VERSION } from './version.ts'

const startedAt = Date.now()

/**
 * POST /peers/block and /peers/unblock: an operator shutting peers out by hand (the connection
 * gater refuses them both ways and the node hangs up on them), and what the soak's network
 * partition uses (scripts/soak.ts). A peer id is base58btc (at most 64 characters).
 */
const PeerIdsSchema = z
  .array(
    z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{32,64}$/, 'must be a peer id (base58btc, 32..64 characters)')
  )
  .min(1)
  .max(1_000)
const BlockBodySchema = z.strictObject({
  peers: PeerIdsSchema,
  /** how long the ban lasts, at most a day (a forgotten block lifts by itself) */
  ms: z.int().min(1).max(86_400_000)
})
const UnblockBodySchema = z.strictObject({ peers: PeerIdsSchema })

/** GET /peers: what `openlora peers` prints and the swarm launcher polls (one shape for all three). */
export type PeersAnswer = ReturnType<typeof peersAnswer>

function peersAnswer(c: NodeComponents, host: Host) {
  return {
    self: c.identity.peerId.toString(),
    reachability: host.services.relayKeeper.reachability(),
    connections: c.libp2p.getConnections().map((conn) => ({
      peerId: conn.remotePeer.toString(),
      addr: conn.remoteAddr.toString(),
      direction: conn.direction,
      // relayed = a limited connection through a circuit relay (DCUtR may upgrade it)
      type: (conn.limits == null ? 'direct' : 'relayed') as 'direct' | 'relayed'
    })),
    table: c.peerTable.entries().map(({ peerId, advert, receivedAt }) => {
      const b = advert.body
      return {
        peerId,
        operator: b.operator,
        version: b.version,
        addrs: b.addrs,
        reachability: b.reachability ?? null,
        hardware: b.hardware,
        executionProvider: b.executionProvider,
        models: b.models,
        adapters: Object.fromEntries(ADAPTER_TIERS.map((t) => [t, b.adapters[t].count])) as Record<
          AdapterTier,
          number
        >,
        queueDepth: b.queueDepth,
        freeSlots: b.freeSlots,
        pricePer1kTokens: b.pricePer1kTokens,
        seq: b.seq,
        ts: b.ts,
        receivedAt,
        expires: b.expires
      }
    })
  }
}

/** `host` is the node's libp2p with its typed services (reachability, DHT mode). */
export function registerCoreRoutes(c: NodeComponents, host: Host): void {
  c.admin.route('/status', () => ({
    peerId: c.identity.peerId.toString(),
    operator: c.identity.operator.address,
    version: NODE_VERSION,
    pid: process.pid,
    uptimeMs: Date.now() - startedAt,
    addrs: c.libp2p.getMultiaddrs().map((m) => m.toString()),
    reachability: host.services.relayKeeper.reachability(),
    relays: host.services.relayKeeper.relays(),
    dht: host.services.dht?.getMode() ?? 'off',
    connections: c.libp2p.getConnections().length,
    peerTable: c.peerTable.size,
    adverts: { seq: c.adverts.current?.body.seq ?? null, ...c.adverts.stats }
  }))
  c.admin.route('/peers', () => peersAnswer(c, host))
  c.admin.action('/peers/block', (body) => {
    const b = parseWith(BlockBodySchema, body, { at: 'body', source: 'POST /peers/block' })
    const self = c.identity.peerId.toString()
    return {
      blocked: b.peers
        .filter((p) => p !== self)
        .map((p) => ({ peer: p, untilMs: c.peerScores.block(p, b.ms) }))
    }
  })
  c.admin.action('/peers/unblock', (body) => {
    const b = parseWith(UnblockBodySchema, body, { at: 'body', source: 'POST /peers/unblock' })
    return { unblocked: b.peers.filter((p) => c.peerScores.unblock(p)) }
  })
  // what a soak run samples over time (scripts/soak.ts): memory, live handles, banned peers
  c.admin.route('/process', () => processAnswer(c))
  // the same after a full garbage collection, so the heap figure is what is still live: a leak
  // check on heapUsed between collections mostly measures when V8 last collected (a one-minute
  // soak saw a +50 % "growth" that was garbage). A full collection of this node's heap takes
  // tens of ms and pauses it, so it is a POST the soak sends, never a side effect of a read.
  c.admin.action('/process/collect', (body) => {
    parseWith(EmptyBodySchema, body, { at: 'body', source: 'POST /process/collect' })
    fullCollection()
    return processAnswer(c)
  })
}

const EmptyBodySchema = z.strictObject({})

let gc: (() => void) | undefined
/**
 * Runs V8's full garbage collection. The node is not started with --expose-gc (nothing else
 * needs it), so the flag is set at the first call and the `gc` function taken from a fresh
 * context, where V8 installs it.
 */
function fullCollection(): void {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  }
  gc()
}

function processAnswer(c: NodeComponents) {
  const m = process.memoryUsage()
  return {
    pid: process.pid,
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
    activeResources: process.getActiveResourcesInfo().length,
    connections: c.libp2p.getConnections().length,
    bannedPeers: c.peerScores.banned().length
  }
}
