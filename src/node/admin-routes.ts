// The node's own admin endpoints: /status (who am I, how connected) and /peers (connections and
// the PeerTable, what `openlora peers` prints).

import type { NodeComponents } from '../common/service.ts'
import { ADAPTER_TIERS } from '../serving/capability.ts'
import { NODE_VERSION } from './version.ts'

const startedAt = Date.now()

export function registerCoreRoutes(c: NodeComponents): void {
  c.admin.route('/status', () => ({
    peerId: c.identity.peerId.toString(),
    operator: c.identity.operator.address,
    version: NODE_VERSION,
    pid: process.pid,
    uptimeMs: Date.now() - startedAt,
    addrs: c.libp2p.getMultiaddrs().map((m) => m.toString()),
    connections: c.libp2p.getConnections().length,
    peerTable: c.peerTable.size,
    adverts: { seq: c.adverts.current?.body.seq ?? null, ...c.adverts.stats }
  }))
  c.admin.route('/peers', () => ({
    self: c.identity.peerId.toString(),
    connections: c.libp2p.getConnections().map((conn) => ({
      peerId: conn.remotePeer.toString(),
      addr: conn.remoteAddr.toString(),
      direction: conn.direction
    })),
    table: c.peerTable.entries().map(({ peerId, advert, receivedAt }) => {
      const b = advert.body
      return {
        peerId,
        operator: b.operator,
        version: b.version,
        addrs: b.addrs,
        hardware: b.hardware,
        executionProvider: b.executionProvider,
        models: b.models,
        adapters: Object.fromEntries(ADAPTER_TIERS.map((t) => [t, b.adapters[t].count])),
        queueDepth: b.queueDepth,
        freeSlots: b.freeSlots,
        pricePer1kTokens: b.pricePer1kTokens,
        seq: b.seq,
        ts: b.ts,
        receivedAt,
        expires: b.expires
      }
    })
  }))
}
