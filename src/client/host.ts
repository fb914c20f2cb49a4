// A minimal libp2p host for a client that only dials (the CLI's `openlora infer`): TCP and
// WebSockets, Noise, Yamux, no listeners, an ephemeral key unless one is given.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { InferClient } from './client.ts'
import type { JobPayer } from './payer.ts'

/** Dials a multiaddr string (starts with '/') or a peer id string on a libp2p node. */
export function dialerOf(node: Pick<Libp2p, 'dialProtocol'>) {
  return (target: string, protocol: string, opts: { signal?: AbortSignal; negotiateFully?: boolean }) =>
    node.dialProtocol(target.startsWith('/') ? multiaddr(target) : peerIdFromString(target), protocol, opts)
}

/** An InferClient over an existing libp2p node (a running OpenLoRA node can be a client too). */
export function clientFor(node: Libp2p, privateKey: PrivateKey, payer?: JobPayer): InferClient {
  return new InferClient({ peerId: node.peerId.toString(), privateKey, dial: dialerOf(node), payer })
}

export async function createClientHost(
  opts: { privateKey?: PrivateKey; payer?: JobPayer } = {}
): Promise<{ client: InferClient; node: Libp2p; stop(): Promise<void> }> {
  const privateKey = opts.privateKey ?? (await generateKeyPair('Ed25519'))
  const node = await createLibp2p({
    privateKey,
    addresses: { listen: [] },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
  return { client: clientFor(node, privateKey, opts.payer), node, stop: async () => void (await node.stop()) }
}
