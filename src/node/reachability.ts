// How the world reaches this node, and keeping it reachable through relays.
//
// Reachability: `public` when libp2p holds a confirmed public, non-relayed address (AutoNAT v2
// confirmed it, or the operator announced it), `relayed` when the node is reachable only through
// circuit relay reservations, `local` when neither (a LAN or loopback node). AutoNAT cannot
// report a NAT'd TCP node "unreachable" (it has no public address to test), so "no confirmed
// public address" is what "not public" means here.
//
// RelayKeeper: a libp2p service that, while the node is not public, holds a reservation on a
// relay it knows (a bootstrap peer or any connected peer speaking the relay's hop protocol) by
// listening on `<relay>/p2p-circuit`. It re-makes the reservation whenever it is gone: libp2p
// 3 makes a relay listen address once and never again after the relay restarts
// (js-libp2p#3601), and a relay that is down when a node starts would make a configured
// `/p2p-circuit` listen address fail the whole start. So no circuit address is configured; the
// keeper checks every `intervalMs` and on every connection close.
import type { Libp2pEvents, PeerId, PeerStore, TypedEventTarget } from '@libp2p/interface'
import type { ConnectionManager, TransportManager } from '@libp2p/interface-internal'
import { peerIdFromString } from '@libp2p/peer-id'
import { isPrivate } from '@libp2p/utils'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'

export type Reachability = 'public' | 'relayed' | 'local'
export const REACHABILITIES: readonly Reachability[] = ['public', 'relayed', 'local']

/** The circuit relay v2 hop protocol: a peer that speaks it can relay for us. */
export const RELAY_HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop'

export function isRelayed(ma: Multiaddr | string): boolean {
  return ma.toString().includes('/p2p-circuit')
}

/** What a set of the node's own (confirmed) addresses says about its reachability. */
export function reachabilityOf(addrs: ReadonlyArray<Multiaddr>): Reachability {
  if (addrs.some((ma) => !isRelayed(ma) && isPublic(ma))) return 'public'
  if (addrs.some((ma) => isRelayed(ma))) return 'relayed'
  return 'local'
}

function isPublic(ma: Multiaddr): boolean {
  const ip = ma.getComponents()[0]
  if (ip?.name === 'dns' || ip?.name === 'dns4' || ip?.name === 'dns6') return true
  if (ip?.name !== 'ip4' && ip?.name !== 'ip6') return false
  if (ip.value === '0.0.0.0' || ip.value === '::') return false
  return isPrivate(ma) === false
}

/** The peer id a relay address names: `/…/p2p/RELAY/p2p-circuit/…` → RELAY. */
export function relayOf(ma: Multiaddr | string): string | undefined {
  const parts = ma.toString().split('/p2p-circuit')[0]!.split('/p2p/')
  return parts.length > 1 ? parts[parts.length - 1] : undefined
}

export interface RelayKeeperInit {
  /** bootstrap multiaddrs: the first relays tried */
  bootstrap: string[]
  /** how often the keeper checks its reservations */
  intervalMs: number
  /** reservations to hold at once (on distinct relays) */
  wanted?: number
}

interface KeeperComponents {
  peerId: PeerId
  peerStore: PeerStore
  events: TypedEventTarget<Libp2pEvents>
  connectionManager: ConnectionManager
  transportManager: TransportManager
  addressManager: { getAddresses(): Multiaddr[] }
}

export interface RelayKeeperStats {
  /** reservations made (first ones and re-made ones) */
  made: number
  /** attempts that failed (relay down, refused) */
  failed: number
  lastMadeAt: number | null
}

export class RelayKeeper {
  readonly #c: KeeperComponents
  readonly #bootstrap: Multiaddr[]
  readonly #intervalMs: number
  readonly #wanted: number
  readonly #inFlight = new Set<string>()
  readonly stats: RelayKeeperStats = { made: 0, failed: 0, lastMadeAt: null }
  #timer?: ReturnType<typeof setInterval>
  #running = false
  readonly #soon = (): void => {
    // a connection closing (the relay's takes its reservation with it) or a peer identified (a
    // new relay candidate): look again soon
    setTimeout(() => this.check(), 250).unref()
  }

  constructor(components: KeeperComponents, init: RelayKeeperInit) {
    this.#c = components
    this.#bootstrap = init.bootstrap.map((a) => multiaddr(a))
    this.#intervalMs = init.intervalMs
    this.#wanted = init.wanted ?? 1
  }

  readonly [Symbol.toStringTag] = 'openlora/relay-keeper'

  start(): void {
    this.#running = true
  }

  afterStart(): void {
    this.#timer = setInterval(() => this.check(), this.#intervalMs)
    this.#timer.unref()
    this.#c.events.addEventListener('connection:close', this.#soon)
    this.#c.events.addEventListener('peer:identify', this.#soon)
    this.check()
  }

  stop(): void {
    this.#running = false
    clearInterval(this.#timer)
    this.#c.events.removeEventListener('connection:close', this.#soon)
    this.#c.events.removeEventListener('peer:identify', this.#soon)
  }

  reachability(): Reachability {
    return reachabilityOf(this.#c.addressManager.getAddresses())
  }

  /** Relays we hold a reservation on now (peer ids). */
  relays(): string[] {
    const ids = this.#c.addressManager
      .getAddresses()
      .filter(isRelayed)
      .map((ma) => relayOf(ma))
    return [...new Set(ids.filter((id): id is string => id !== undefined))]
  }

  /** One pass: while not public, reserve on known relays until `wanted` are held. */
  check(): void {
    if (!this.#running || this.reachability() === 'public') return
    const held = new Set(this.relays())
    if (held.size >= this.#wanted) return
    this.#candidates()
      .then((candidates) => {
        for (const [peer, addr] of candidates) {
          if (held.size + this.#inFlight.size >= this.#wanted) break
          if (held.has(peer) || this.#inFlight.has(peer)) continue
          this.#reserve(peer, addr)
        }
      })
      .catch(() => {})
  }

  /** Bootstrap peers first, then every connected peer known to speak the hop protocol. */
  async #candidates(): Promise<Array<[string, Multiaddr]>> {
    const self = this.#c.peerId.toString()
    const out = new Map<string, Multiaddr>()
    for (const ma of this.#bootstrap) {
      const peer = ma.getComponents().findLast((c) => c.name === 'p2p')?.value
      if (peer && peer !== self && !isRelayed(ma)) out.set(peer, ma)
    }
    for (const conn of this.#c.connectionManager.getConnections()) {
      const peer = conn.remotePeer.toString()
      if (out.has(peer) || conn.limits != null || isRelayed(conn.remoteAddr)) continue
      const info = await this.#c.peerStore.get(conn.remotePeer).catch(() => undefined)
      if (info?.protocols.includes(RELAY_HOP_PROTOCOL))
        out.set(peer, conn.remoteAddr.encapsulate(`/p2p/${peer}`))
    }
    // a bootstrap peer that is not a relay is skipped once identify has said so
    const relays: Array<[string, Multiaddr]> = []
    for (const [peer, ma] of out) {
      const info = await this.#c.peerStore.get(peerIdFromString(peer)).catch(() => undefined)
      if (info && info.protocols.length > 0 && !info.protocols.includes(RELAY_HOP_PROTOCOL)) continue
      relays.push([peer, ma])
    }
    return relays
  }

  #reserve(peer: string, addr: Multiaddr): void {
    this.#inFlight.add(peer)
    const withPeer = addr.toString().includes(`/p2p/${peer}`) ? addr : addr.encapsulate(`/p2p/${peer}`)
    this.#c.transportManager
      .listen([withPeer.encapsulate('/p2p-circuit')])
      .then(() => {
        if (this.relays().includes(peer)) {
          this.stats.made++
          this.stats.lastMadeAt = Date.now()
        }
      })
      .catch(() => {
        this.stats.failed++
      })
      .finally(() => this.#inFlight.delete(peer))
  }
}

export function relayKeeper(init: RelayKeeperInit): (components: KeeperComponents) => RelayKeeper {
  return (components) => new RelayKeeper(components, init)
}
