// The slice of the libp2p host a request/response protocol service uses: register a handler,
// remove it, open a stream to a peer. Services take this, not the whole node, so tests can
// hand them a real host or a fake one.
import type { Connection, PeerId, Stream } from '@libp2p/interface'

export interface ProtocolHost {
  handle(
    protocol: string,
    handler: (stream: Stream, connection: Connection) => void | Promise<void>,
    opts?: { maxInboundStreams?: number; maxOutboundStreams?: number }
  ): Promise<void>
  unhandle(protocol: string): Promise<void>
  /** negotiateFully false: the first write carries the protocol negotiation (one round trip less) */
  dialProtocol(
    peer: PeerId,
    protocol: string,
    opts?: { signal?: AbortSignal; negotiateFully?: boolean }
  ): Promise<Stream>
}
