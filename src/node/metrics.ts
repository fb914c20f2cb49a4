// The node's own part of the metrics (docs/METRICS.md): GET /metrics on the admin port, and the
// gauges only the composition root can fill (connections, the PeerTable, the advert validator's
// counts). Each layer counts its own events into the same registry (components.metrics).
import type { NodeComponents } from '../common/service.ts'
import type { AdminServer } from './admin.ts'
import { REACHABILITIES, type Reachability } from './reachability.ts'

export function wireNodeMetrics(c: NodeComponents, admin: AdminServer): void {
  const m = c.metrics
  admin.text('/metrics', async () => ({ contentType: m.contentType, body: await m.scrape() }))
  // advert counts live in AdvertService.stats (gossip validation); the counters follow their increase
  const seen = { accepted: 0, reasons: new Map<string, number>() }
  m.addCollector(() => {
    const conns = c.libp2p.getConnections()
    m.peersConnected.set(new Set(conns.map((x) => x.remotePeer.toString())).size)
    const relayed = conns.filter((x) => x.limits != null).length
    m.connections.set({ kind: 'relayed' }, relayed)
    m.connections.set({ kind: 'direct' }, conns.length - relayed)
    // how a home operator tells whether the world reaches the node (docs/NODE.md)
    const keeper = (c.libp2p.services as Record<string, unknown>).relayKeeper as
      | { reachability?: () => Reachability }
      | undefined
    const now = typeof keeper?.reachability === 'function' ? keeper.reachability() : undefined
    if (now) for (const r of REACHABILITIES) m.reachability.set({ state: r }, r === now ? 1 : 0)
    m.peerTableSize.set(c.peerTable.size)
    const s = c.adverts.stats
    const refused = new Map<string, number>()
    for (const bucket of [s.rejected, s.ignored] as Record<string, number | undefined>[])
      for (const [reason, n = 0] of Object.entries(bucket))
        refused.set(reason, (refused.get(reason) ?? 0) + n)
    let received = s.accepted - seen.accepted
    for (const [reason, n] of refused) {
      const more = n - (seen.reasons.get(reason) ?? 0)
      if (more > 0) m.advertsRejected.inc({ reason }, more)
      received += Math.max(0, more)
      seen.reasons.set(reason, n)
    }
    if (s.accepted > seen.accepted) m.advertsAccepted.inc(s.accepted - seen.accepted)
    seen.accepted = s.accepted
    if (received > 0) m.advertsReceived.inc(received)
  })
}
