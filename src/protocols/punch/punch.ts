// TCP hole punching that works behind endpoint-independent NATs, where libp2p's DCUtR over TCP
// never goes direct: Node cannot dial from its listening port, so identify drops the observed
// addresses DCUtR would send (js-libp2p#2620). Coordinated over the relayed connection
// (/openlora/punch/1, allowed on limited connections):
//
//   1. each side picks a fresh local port and dials the relay from it once (/openlora/observe/1
//      answers the address the relay saw: the NAT's mapping of that port; an endpoint-independent
//      NAT keeps it for every destination). A fresh port per attempt: a socket left in
//      FIN-WAIT/TIME-WAIT by an earlier attempt would block the same 4-tuple.
//   2. they swap those mappings, A measures the round trip, sends GO and waits half of it, B dials
//      on GO: both SYNs leave at the same moment (a lone early SYN would leave a conntrack entry
//      on the other NAT that drops the real punch), and TCP simultaneous open connects them.
//   3. A (who dialled through the relay) upgrades as initiator through libp2p's own dial with its
//      fixed local port; B upgrades its socket explicitly as the responder (libp2p's dial path is
//      always the initiator, and two initiators cannot agree).
//
// Behind a symmetric NAT the mapping changes per destination, the SYNs miss, and the connection
// stays relayed (jobs still run on it).
import { connect, createServer, type Socket } from 'node:net'
import type {
  ComponentLogger,
  Connection,
  Libp2pEvents,
  Logger,
  PeerId,
  Stream,
  TypedEventTarget,
  Upgrader
} from '@libp2p/interface'
import type { Registrar, TransportManager } from '@libp2p/interface-internal'
import { lpStream } from '@libp2p/utils'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { SocketConnection } from './socket-conn.ts'

export const PUNCH_PROTOCOL = '/openlora/punch/1'
export const OBSERVE_PROTOCOL = '/openlora/observe/1'
const MAX_FRAME = 1024
const ATTEMPTS = 3
const STEP_TIMEOUT_MS = 5_000

interface PunchComponents {
  peerId: PeerId
  registrar: Registrar
  transportManager: TransportManager
  upgrader: Upgrader
  events: TypedEventTarget<Libp2pEvents>
  logger: ComponentLogger
}

/** A free local TCP port (bound once and released: the punch binds it again at once). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '0.0.0.0', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

/** A peer's claimed mapping, checked: an IPv4 address and a port, nothing else is ever dialled. */
export function mappingFrom(v: Record<string, unknown>): { host: string; port: number } {
  const host = v.host
  const port = v.port
  if (
    typeof host !== 'string' ||
    !/^(\d{1,3})(\.\d{1,3}){3}$/.test(host) ||
    host.split('.').some((o) => Number(o) > 255)
  )
    throw new Error('punch message: host must be an IPv4 address')
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65_535)
    throw new Error('punch message: port must be 1..65535')
  return { host, port: port as number }
}

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v))
const dec = (b: { subarray(): Uint8Array }): Record<string, unknown> =>
  JSON.parse(new TextDecoder().decode(b.subarray()))

/** `/ip4/A/tcp/P` of a TCP multiaddr, or undefined for anything else (relayed, other transports). */
function ipTcp(ma: Multiaddr): { host: string; port: number } | undefined {
  const c = ma.getComponents()
  if (c[0]?.name !== 'ip4' || c[1]?.name !== 'tcp') return undefined
  return { host: c[0].value!, port: Number(c[1].value) }
}

export class HolePuncher {
  readonly #c: PunchComponents
  readonly #log: Logger
  readonly #tried = new Set<string>()
  /** attempts made and connections made direct, for status and the benchmark */
  readonly stats = { attempts: 0, direct: 0 }
  readonly #onOpen = (e: CustomEvent<Connection>): void => {
    const conn = e.detail
    // A side: we dialled a peer through a relay
    if (conn.limits == null || conn.direction !== 'outbound') return
    const peer = conn.remotePeer.toString()
    if (this.#tried.has(peer)) return
    this.#tried.add(peer)
    this.#initiate(conn)
      .catch((err) => this.#log('hole punch to %s failed: %s', peer, (err as Error).message))
      .finally(() => setTimeout(() => this.#tried.delete(peer), 30_000).unref())
  }

  constructor(components: PunchComponents) {
    this.#c = components
    this.#log = components.logger.forComponent('openlora:punch')
  }

  readonly [Symbol.toStringTag] = 'openlora/hole-puncher'

  async start(): Promise<void> {
    await this.#c.registrar.handle(OBSERVE_PROTOCOL, (s, c) => this.#observe(s, c))
    await this.#c.registrar.handle(PUNCH_PROTOCOL, (s, c) => this.#respond(s, c), {
      runOnLimitedConnection: true
    })
    this.#c.events.addEventListener('connection:open', this.#onOpen)
  }

  async stop(): Promise<void> {
    this.#c.events.removeEventListener('connection:open', this.#onOpen)
    await this.#c.registrar.unhandle(OBSERVE_PROTOCOL)
    await this.#c.registrar.unhandle(PUNCH_PROTOCOL)
  }

  async #observe(stream: Stream, conn: Connection): Promise<void> {
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME })
    await lp.write(enc({ addr: conn.remoteAddr.toString() }), {
      signal: AbortSignal.timeout(STEP_TIMEOUT_MS)
    })
    await stream.close().catch(() => {})
  }

  /**
   * Dials from a fixed local port. The transport manager, not the connection manager: the dial
   * queue keeps only its own options, while the TCP transport hands the rest to net.connect.
   */
  #dialFrom(ma: Multiaddr, port: number, signal: AbortSignal): Promise<Connection> {
    return this.#c.transportManager.dial(ma, { signal, localPort: port } as Parameters<
      TransportManager['dial']
    >[1])
  }

  /** Opens a connection to the relay from `port` and asks what address it came from. */
  async #mappingOf(relayAddr: Multiaddr, port: number): Promise<{ host: string; port: number }> {
    const signal = AbortSignal.timeout(STEP_TIMEOUT_MS)
    const conn = await this.#dialFrom(relayAddr, port, signal)
    try {
      const stream = await conn.newStream(OBSERVE_PROTOCOL, { signal })
      const lp = lpStream(stream, { maxDataLength: MAX_FRAME })
      const seen = ipTcp(multiaddr(String(dec(await lp.read({ signal })).addr)))
      if (!seen) throw new Error('the relay saw no TCP address')
      return seen
    } finally {
      await conn.close().catch(() => conn.abort(new Error('observation done')))
    }
  }

  /** A: the side that dialled through the relay. */
  async #initiate(relayed: Connection): Promise<void> {
    const relayAddr = multiaddr(relayed.remoteAddr.toString().split('/p2p-circuit')[0]!)
    if (!ipTcp(relayAddr)) return
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      if (relayed.status !== 'open') return
      this.stats.attempts++
      const signal = AbortSignal.timeout(3 * STEP_TIMEOUT_MS)
      const port = await freePort()
      const mine = await this.#mappingOf(relayAddr, port)
      const stream = await relayed.newStream(PUNCH_PROTOCOL, { signal, runOnLimitedConnection: true })
      const lp = lpStream(stream, { maxDataLength: MAX_FRAME })
      await lp.write(enc({ t: 'connect', ...mine }), { signal })
      const theirs = mappingFrom(dec(await lp.read({ signal })))
      const t0 = performance.now()
      await lp.write(enc({ t: 'sync' }), { signal })
      await lp.read({ signal })
      const rtt = performance.now() - t0
      await lp.write(enc({ t: 'go' }), { signal })
      await new Promise((r) => setTimeout(r, rtt / 2))
      try {
        const conn = await this.#dialFrom(
          multiaddr(`/ip4/${theirs.host}/tcp/${theirs.port}/p2p/${relayed.remotePeer}`),
          port,
          signal
        )
        this.stats.direct++
        this.#log('direct connection to %p on attempt %d: %a', relayed.remotePeer, attempt, conn.remoteAddr)
        await stream.close().catch(() => {})
        return
      } catch (err) {
        this.#log('punch attempt %d to %p failed: %s', attempt, relayed.remotePeer, (err as Error).message)
        stream.abort(err as Error)
      }
    }
  }

  /** B: answers a punch over the relayed connection and dials on GO. */
  async #respond(stream: Stream, relayed: Connection): Promise<void> {
    const signal = AbortSignal.timeout(3 * STEP_TIMEOUT_MS)
    const lp = lpStream(stream, { maxDataLength: MAX_FRAME })
    try {
      const theirs = mappingFrom(dec(await lp.read({ signal })))
      const relayAddr = multiaddr(relayed.remoteAddr.toString().split('/p2p-circuit')[0]!)
      const port = await freePort()
      const mine = await this.#mappingOf(relayAddr, port)
      await lp.write(enc({ t: 'connect', ...mine }), { signal })
      await lp.read({ signal })
      await lp.write(enc({ t: 'ack' }), { signal })
      await lp.read({ signal }) // go
      const socket = await new Promise<Socket>((resolve, reject) => {
        const s = connect({ host: theirs.host, port: theirs.port, localPort: port, noDelay: true })
        s.once('connect', () => resolve(s))
        s.once('error', reject)
        signal.addEventListener('abort', () => s.destroy(new Error('punch timed out')), { once: true })
      })
      await this.#c.upgrader.upgradeInbound(new SocketConnection(socket, this.#log), { signal })
      this.#log('direct connection from %p', relayed.remotePeer)
    } catch (err) {
      this.#log('punch from %p failed: %s', relayed.remotePeer, (err as Error).message)
      stream.abort(err as Error)
    }
  }
}

export function holePuncher(): (components: PunchComponents) => HolePuncher {
  return (components) => new HolePuncher(components)
}
