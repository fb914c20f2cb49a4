// The slice of the libp2p host a request/response protocol service uses: register a handler,
// remove it, open a stream to a peer. Services take this, not the whole node, so tests can
// hand them a real host or a fake one. Every protocol of ours runs on limited (relayed)
// connections too: a node behind NAT is reached through a circuit relay, whose limits the relay
// sizes for whole jobs (network.relay); without the flag libp2p refuses such streams.
import type { Connection, PeerId, Stream } from '@libp2p/interface'

export interface ProtocolHost {
  handle(
    protocol: string,
    handler: (stream: Stream, connection: Connection) => void | Promise<void>,
    opts?: { maxInboundStreams?: number; maxOutboundStreams?: number; runOnLimitedConnection?: boolean }
  ): Promise<void>
  unhandle(protocol: string): Promise<void>
  /** negotiateFully false: the first write carries the protocol negotiation (one round trip less) */
  dialProtocol(
    peer: PeerId,
    protocol: string,
    opts?: { signal?: AbortSignal; negotiateFully?: boolean; runOnLimitedConnection?: boolean }
  ): Promise<Stream>
}
