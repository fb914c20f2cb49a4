// The peers a user names for a fetch (`--from`): peer ids the node already knows, or multiaddrs
// ending in /p2p/ID that the node dials first (the adapter fetch and the datanet copy both take
// either, so the two commands read alike).
import type { Connection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'

/** The host slice this needs: dialling a multiaddr. */
export interface PeerDialer {
  dial(addr: ReturnType<typeof multiaddr>): Promise<Connection>
}

export interface PeerListErrors {
  /** the entry is neither a peer id nor a multiaddr (the caller's input) */
  bad(message: string): Error
  /** a named multiaddr does not answer */
  unreachable(message: string): Error
}

/** Peer ids for `from`, dialling each multiaddr entry; refuses malformed entries by name. */
export async function peerIdsOf(
  host: PeerDialer,
  from: readonly string[],
  errors: PeerListErrors
): Promise<string[]> {
  const out: string[] = []
  for (const f of from) {
    if (!f.startsWith('/')) {
      try {
        out.push(peerIdFromString(f).toString())
      } catch {
        throw errors.bad(`${f} is neither a peer id nor a multiaddr (one starting with /)`)
      }
      continue
    }
    let ma: ReturnType<typeof multiaddr>
    try {
      ma = multiaddr(f)
    } catch (err) {
      throw errors.bad(`${f} is not a multiaddr: ${(err as Error).message}`)
    }
    try {
      out.push((await host.dial(ma)).remotePeer.toString())
    } catch (err) {
      throw errors.unreachable(`cannot reach ${f}: ${(err as Error).message}`)
    }
  }
  return out
}
