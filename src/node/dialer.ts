// Adverts carry dialable addresses, so a node that joined through one bootstrap peer can connect
// to more peers as their adverts arrive, until it holds `targetPeers` connections. Without this a
// swarm joined through its first node is a star, and gossipsub's mesh limits (D_hi = 12) would
// leave leaves waiting a heartbeat for gossip instead of getting adverts pushed at once.
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../common/log.ts'
import type { PeerEntry, PeerTable } from '../protocols/adverts/peer-table.ts'
import type { Host } from './host.ts'

/** Long enough for the other side's dial (a local handshake takes tens of ms) to land first. */
const TIE_BREAK_DELAY_MS = 1_000

export class AdvertDialer {
  readonly #host: Host
  readonly #table: PeerTable
  readonly #target: number
  readonly #log: Logger
  readonly #dialing = new Set<string>()
  #running = false
  readonly #onUpdate = (e: Event): void => this.#consider((e as CustomEvent<PeerEntry>).detail)

  constructor(host: Host, table: PeerTable, targetPeers: number, logger: Logger) {
    this.#host = host
    this.#table = table
    this.#target = targetPeers
    this.#log = logger.child('dialer')
  }

  start(): void {
    this.#running = true
    this.#table.addEventListener('update', this.#onUpdate)
  }

  stop(): void {
    this.#running = false
    this.#table.removeEventListener('update', this.#onUpdate)
  }

  #connected(peer: string): boolean {
    return this.#host.getConnections().some((c) => c.remotePeer.toString() === peer)
  }

  #consider(entry: PeerEntry): void {
    const peer = entry.peerId
    if (this.#dialing.has(peer) || this.#connected(peer)) return
    // When two peers learn of each other at once both would dial, leaving two connections per
    // pair; the one with the larger id waits, and dials only if the other did not.
    if (this.#host.peerId.toString() > peer) {
      setTimeout(() => this.#dial(entry), TIE_BREAK_DELAY_MS).unref()
      return
    }
    this.#dial(entry)
  }

  #dial(entry: PeerEntry): void {
    const peer = entry.peerId
    if (!this.#running || this.#dialing.has(peer) || this.#connected(peer)) return
    if (this.#host.getPeers().length + this.#dialing.size >= this.#target) return
    const addrs = entry.advert.body.addrs.flatMap((a) => {
      try {
        const ma = multiaddr(a)
        return ma.getComponents().some((c) => c.name === 'p2p' && c.value === peer) ? [ma] : []
      } catch {
        return []
      }
    })
    if (addrs.length === 0) return
    this.#dialing.add(peer)
    this.#host
      .dial(addrs)
      .then(() => this.#log.debug('dialed advertised peer', { peer }))
      .catch((err) => this.#log.debug('could not dial advertised peer', { peer, err }))
      .finally(() => this.#dialing.delete(peer))
  }
}
