// Keeps the node connected. Peers found by mDNS are dialled (libp2p 3 does not auto-dial). Adverts carry dialable addresses, so a node that joined through one
// bootstrap peer connects to more peers as their adverts arrive, until it holds `targetPeers`
// (without this a swarm joined through its first node is a star, and gossipsub's mesh limit
// D_hi = 12 would leave leaves waiting a heartbeat for gossip). A periodic check re-dials the
// bootstrap peers and known peers while below target: libp2p's bootstrap module dials once, and
// a busy first node (a whole swarm joining at once) may drop some of those first dials.
import type { Connection, PeerInfo } from '@libp2p/interface'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../common/log.ts'
import type { PeerEntry, PeerTable } from '../protocols/adverts/peer-table.ts'
import type { Host } from './host.ts'

/** Long enough for the other side's dial (a local handshake takes tens of ms) to land first. */
const TIE_BREAK_DELAY_MS = 1_000
/** How often the node checks it is still below target and re-dials. */
const KEEPER_INTERVAL_MS = 5_000
/**
 * A connection whose identify never completed (it timed out on an overloaded peer) is useless:
 * gossipsub and table sync only start after identify. After this long identify runs once more
 * (closing and re-dialling instead would add handshakes exactly when the machine is overloaded).
 */
const IDENTIFY_GRACE_MS = 20_000

function peerOf(ma: Multiaddr): string | undefined {
  return ma.getComponents().findLast((c) => c.name === 'p2p')?.value
}

export class AdvertDialer {
  readonly #host: Host
  readonly #table: PeerTable
  readonly #target: number
  readonly #dialTimeoutMs: number
  readonly #bootstrap: Multiaddr[]
  readonly #log: Logger
  readonly #dialing = new Set<string>()
  readonly #reidentified = new WeakSet<Connection>()
  #running = false
  #timer?: ReturnType<typeof setInterval>
  readonly #onUpdate = (e: Event): void => this.#consider((e as CustomEvent<PeerEntry>).detail)
  /** libp2p 3 only reports discovered peers (mDNS); dialling them is up to us. */
  readonly #onDiscovery = (e: CustomEvent<PeerInfo>): void => {
    const { id, multiaddrs } = e.detail
    if (!this.#belowTarget() || id.equals(this.#host.peerId)) return
    this.#dialAddrs(id.toString(), multiaddrs)
  }

  constructor(
    host: Host,
    table: PeerTable,
    opts: { targetPeers: number; bootstrap: string[]; dialTimeoutMs: number },
    logger: Logger
  ) {
    this.#host = host
    this.#table = table
    this.#target = opts.targetPeers
    this.#dialTimeoutMs = opts.dialTimeoutMs
    this.#bootstrap = opts.bootstrap.map((a) => multiaddr(a))
    this.#log = logger.child('dialer')
  }

  start(): void {
    this.#running = true
    this.#table.addEventListener('update', this.#onUpdate)
    this.#host.addEventListener('peer:discovery', this.#onDiscovery)
    this.#timer = setInterval(() => this.#keep(), KEEPER_INTERVAL_MS)
    this.#timer.unref()
  }

  stop(): void {
    this.#running = false
    clearInterval(this.#timer)
    this.#table.removeEventListener('update', this.#onUpdate)
    this.#host.removeEventListener('peer:discovery', this.#onDiscovery)
  }

  #connected(peer: string): boolean {
    return this.#host.getConnections().some((c) => c.remotePeer.toString() === peer)
  }

  #belowTarget(): boolean {
    return this.#host.getPeers().length + this.#dialing.size < this.#target
  }

  #keep(): void {
    if (!this.#running) return
    this.#reidentify().catch((err) => this.#log.debug('identify check failed', { err }))
    if (!this.#belowTarget()) return
    for (const ma of this.#bootstrap) {
      const peer = peerOf(ma)
      if (peer && peer !== this.#host.peerId.toString()) this.#dialAddrs(peer, [ma])
    }
    for (const entry of this.#table.entries()) {
      if (!this.#belowTarget()) break
      this.#dial(entry)
    }
  }

  async #reidentify(): Promise<void> {
    const now = Date.now()
    for (const conn of this.#host.getConnections()) {
      if (
        conn.status !== 'open' ||
        this.#reidentified.has(conn) ||
        now - conn.timeline.open < IDENTIFY_GRACE_MS
      )
        continue
      const peer = await this.#host.peerStore.get(conn.remotePeer).catch(() => undefined)
      if (peer && peer.protocols.length > 0) continue
      this.#reidentified.add(conn)
      this.#log.debug('identify never finished; running it again', { peer: conn.remotePeer.toString() })
      await this.#host.services.identify
        .identify(conn, { signal: AbortSignal.timeout(this.#dialTimeoutMs) })
        .catch((err) => this.#log.debug('identify failed again', { peer: conn.remotePeer.toString(), err }))
    }
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
    if (!this.#belowTarget()) return
    const peer = entry.peerId
    const addrs = entry.advert.body.addrs.flatMap((a) => {
      try {
        const ma = multiaddr(a)
        return peerOf(ma) === peer ? [ma] : []
      } catch {
        return []
      }
    })
    this.#dialAddrs(peer, addrs)
  }

  #dialAddrs(peer: string, addrs: Multiaddr[]): void {
    if (!this.#running || addrs.length === 0 || this.#dialing.has(peer) || this.#connected(peer)) return
    this.#dialing.add(peer)
    this.#host
      // a dial that never settles would block this peer's re-dials for good
      .dial(addrs, { signal: AbortSignal.timeout(this.#dialTimeoutMs) })
      .then(() => this.#log.debug('dialed peer', { peer }))
      .catch((err) => this.#log.debug('could not dial peer', { peer, err }))
      .finally(() => this.#dialing.delete(peer))
  }
}
