// Finding a trainer from a few bootstrap peers (`openlora train --bootstrap …`): join them, read
// the adverts they hold (the adverts-sync protocol a node runs on connect: every advert checked
// as gossip would check it: signature, operator binding, expiry), and pick the peers whose `train`
// capability offers the model, cheapest first (then least loaded). The trainer is then reached
// like any peer (findPeer: directly, or through a bootstrap peer's relay).
import type { Libp2p } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import { silentLogger } from '../common/log.ts'
import { BindingVerifier } from '../protocols/adverts/binding.ts'
import { PeerTable } from '../protocols/adverts/peer-table.ts'
import { AdvertSync } from '../protocols/adverts/sync.ts'
import { findPeer, PeerNotFoundError } from './find-peer.ts'

const DIAL_TIMEOUT_MS = 5_000

export interface TrainerOffer {
  peerId: string
  operator: string
  /** wei per 1k trained tokens */
  pricePer1kTokens: bigint
  /** the multiaddrs its advert names (each ending in /p2p/<peerId>) */
  addrs: string[]
}

export async function findTrainers(
  node: Libp2p,
  bootstrap: string[],
  q: { model: string; maxPrice?: bigint }
): Promise<TrainerOffer[]> {
  const table = new PeerTable()
  const sync = new AdvertSync({
    libp2p: node,
    peerTable: table,
    bindings: new BindingVerifier(),
    own: () => undefined,
    logger: silentLogger
  })
  let reached = 0
  for (const b of bootstrap) {
    try {
      const conn = await node.dial(multiaddr(b), { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      reached++
      // the bootstrap peer's own advert comes first in its answer, then every one it holds
      await sync.syncFrom(conn.remotePeer)
    } catch {
      // one unreachable bootstrap peer is not fatal while another answers
    }
  }
  if (reached === 0)
    throw new PeerNotFoundError(`none of the bootstrap peers answered: ${bootstrap.join(', ')}`)
  const offers: (TrainerOffer & { load: number })[] = []
  for (const e of table.entries()) {
    const b = e.advert.body
    if (!b.train?.models.includes(q.model)) continue
    const price = BigInt(b.train.pricePer1kTokens)
    if (q.maxPrice !== undefined && price > q.maxPrice) continue
    offers.push({
      peerId: e.peerId,
      operator: b.operator,
      pricePer1kTokens: price,
      addrs: b.addrs,
      load: b.queueDepth
    })
  }
  offers.sort((x, y) =>
    x.pricePer1kTokens !== y.pricePer1kTokens
      ? x.pricePer1kTokens < y.pricePer1kTokens
        ? -1
        : 1
      : x.load - y.load
  )
  return offers.map(({ load: _l, ...o }) => o)
}

/** Connects to a trainer: at an address its advert names, else as findPeer does (DHT, relays). */
export async function reachTrainer(node: Libp2p, offer: TrainerOffer, bootstrap: string[]): Promise<void> {
  for (const a of offer.addrs) {
    if (!a.endsWith(`/p2p/${offer.peerId}`)) continue // an advert only names its own peer's addresses
    try {
      await node.dial(multiaddr(a), { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
      return
    } catch {
      // the next address, or the relays below
    }
  }
  await findPeer(node, offer.peerId, bootstrap)
}
