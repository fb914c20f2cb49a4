// A minimal libp2p host for a client that only dials (the CLI's `openlora infer`): TCP,
// WebSockets and circuit relay v2 (a node behind NAT is reached through its relay), Noise, Yamux,
// identify, DCUtR (so a relayed connection can become a direct one) and a DHT client, no listeners, an
// ephemeral key unless one is given.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { dcutr } from '@libp2p/dcutr'
import { identify } from '@libp2p/identify'
import type { Connection, PrivateKey, Stream } from '@libp2p/interface'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { settleWithin } from '../common/stop.ts'
import { holePuncher } from '../protocols/punch/punch.ts'
import { DHT_PROTOCOL } from '../protocols/routing/dht.ts'
import { type ConnectionKind, InferClient } from './client.ts'
import type { JobPayer } from './payer.ts'

/** How long stop() lets libp2p close its connections before it cuts those left (src/common/stop.ts). */
export const CLIENT_STOP_MS = 3_000

/** How long a job on a fresh relayed connection waits for hole punching to give a direct one. */
export const DEFAULT_DIRECT_WAIT_MS = 3_000

type DialOpts = { signal?: AbortSignal; negotiateFully?: boolean; runOnLimitedConnection?: boolean }

export function connectionKind(conn: Pick<Connection, 'limits'>): ConnectionKind {
  return conn.limits == null ? 'direct' : 'relayed'
}

/** Open connections to the peer a target names (a peer id, or a multiaddr ending in /p2p/ID). */
function connectionsTo(node: Partial<Libp2p>, target: string): Connection[] {
  const last = target.startsWith('/') ? target.split('/p2p/').slice(1).pop() : target
  if (!last || !node.getConnections) return []
  try {
    return node.getConnections(peerIdFromString(last)).filter((c) => c.status === 'open')
  } catch {
    return [] // not a peer id: dial the address as given
  }
}

/** Resolves with a direct connection to `peer` if one opens within `ms`, else undefined. */
function directWithin(
  node: Libp2p,
  peer: string,
  ms: number,
  signal?: AbortSignal
): Promise<Connection | undefined> {
  const open = node
    .getConnections(peerIdFromString(peer))
    .find((c) => c.limits == null && c.status === 'open')
  if (open || ms <= 0) return Promise.resolve(open)
  return new Promise((resolve) => {
    const done = (c?: Connection): void => {
      clearTimeout(timer)
      node.removeEventListener('connection:open', onOpen)
      signal?.removeEventListener('abort', onAbort)
      resolve(c)
    }
    const onOpen = (e: CustomEvent<Connection>): void => {
      if (e.detail.remotePeer.toString() === peer && e.detail.limits == null) done(e.detail)
    }
    const onAbort = (): void => done()
    const timer = setTimeout(done, ms)
    node.addEventListener('connection:open', onOpen)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Dials a multiaddr string (starts with '/') or a peer id string on a libp2p node. On a relayed
 * connection it first waits up to `directWaitMs` (once per connection) for DCUtR's direct one,
 * so a job moves to the direct path when hole punching works and stays relayed when it cannot;
 * `connectionOf(stream)` says which carried it.
 */
export function dialerOf(node: Pick<Libp2p, 'dial'> & Partial<Libp2p>, opts: { directWaitMs?: number } = {}) {
  const waitMs = opts.directWaitMs ?? DEFAULT_DIRECT_WAIT_MS
  const kinds = new WeakMap<Stream, ConnectionKind>()
  const waited = new WeakSet<Connection>()
  const dial = async (target: string, protocol: string, o: DialOpts): Promise<Stream> => {
    // libp2p's dial never reuses a limited connection (each call would open another relayed
    // one through the relay); reuse an open connection to the peer, a direct one first
    const open = connectionsTo(node, target)
    let conn =
      open.find((c) => c.limits == null) ??
      open[0] ??
      (await node.dial(target.startsWith('/') ? multiaddr(target) : peerIdFromString(target), {
        signal: o.signal
      }))
    if (conn.limits != null && !waited.has(conn) && node.getConnections && node.addEventListener) {
      waited.add(conn)
      conn = (await directWithin(node as Libp2p, conn.remotePeer.toString(), waitMs, o.signal)) ?? conn
    }
    const stream = await conn.newStream(protocol, o)
    kinds.set(stream, connectionKind(conn))
    return stream
  }
  return Object.assign(dial, { connectionOf: (s: Stream) => kinds.get(s) })
}

/** An InferClient over an existing libp2p node (a running OpenLoRA node can be a client too). */
export function clientFor(node: Libp2p, privateKey: PrivateKey, payer?: JobPayer): InferClient {
  const dial = dialerOf(node)
  return new InferClient({
    peerId: node.peerId.toString(),
    privateKey,
    dial,
    connectionOf: dial.connectionOf,
    payer
  })
}

export async function createClientHost(
  opts: {
    privateKey?: PrivateKey
    payer?: JobPayer
    /** false: never hole-punch, so jobs to a node behind NAT stay on the relay (default true) */
    holePunch?: boolean
  } = {}
): Promise<{ client: InferClient; node: Libp2p; stop(): Promise<void> }> {
  const privateKey = opts.privateKey ?? (await generateKeyPair('Ed25519'))
  const node = await createLibp2p({
    privateKey,
    addresses: { listen: [] },
    transports: [tcp(), webSockets(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      dcutr: dcutr(),
      ...(opts.holePunch === false ? {} : { punch: holePuncher() }),
      // finds a peer by id (`openlora infer --peer`); a client never serves the DHT
      dht: kadDHT({ protocol: DHT_PROTOCOL, clientMode: true, peerInfoMapper: passthroughMapper })
    }
  })
  const stop = async (): Promise<void> => {
    if ((await settleWithin(Promise.resolve(node.stop()), CLIENT_STOP_MS)) === 'settled') return
    for (const c of node.getConnections()) c.abort(new Error('client host stopped'))
  }
  return { client: clientFor(node, privateKey, opts.payer), node, stop }
}
