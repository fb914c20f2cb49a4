// Finding a peer by id from a few bootstrap peers (`openlora infer --peer … --bootstrap …`): the
// DHT (its record names the peer's addresses, relayed ones included) and, at the same time, each
// bootstrap peer as a relay (`<bootstrap>/p2p-circuit/p2p/<peer>`: a node behind NAT holds its reservation
// on the relay it bootstrapped from). The returned target is what the infer client dials.
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { OpenLoraError } from '../common/errors.ts'

/** The peer could not be found or reached from the bootstrap peers given. */
export class PeerNotFoundError extends OpenLoraError<'PEER_NOT_FOUND'> {
  constructor(message: string) {
    super('PEER_NOT_FOUND', message)
  }
}

const FIND_TIMEOUT_MS = 5_000
/**
 * A DHT that does not know the peer tends to run its query to the deadline; the relays answer
 * in a round trip, so the DHT gets less time than a dial before the lookup gives up.
 */
const DHT_TIMEOUT_MS = 2_000

export async function findPeer(node: Libp2p, peer: string, bootstrap: string[]): Promise<string> {
  const id = peerIdFromString(peer)
  const reached: string[] = []
  for (const b of bootstrap) {
    try {
      await node.dial(multiaddr(b), { signal: AbortSignal.timeout(FIND_TIMEOUT_MS) })
      reached.push(b)
    } catch {
      // one unreachable bootstrap peer is not fatal while another answers
    }
  }
  if (node.getConnections(id).length > 0) return peer
  if (reached.length === 0)
    throw new PeerNotFoundError(`none of the bootstrap peers answered: ${bootstrap.join(', ')}`)
  // The DHT and the relays are asked at once and the first that reaches the peer wins: a DHT that
  // does not know the peer (a relay that just restarted) would otherwise hold the job for its
  // whole timeout. A relayed start still moves to a direct connection when DCUtR makes one.
  const viaDht = async (): Promise<string> => {
    const info = await node.peerRouting.findPeer(id, { signal: AbortSignal.timeout(DHT_TIMEOUT_MS) })
    if (info.multiaddrs.length === 0) throw new Error('no addresses')
    await node.dial(id, { signal: AbortSignal.timeout(FIND_TIMEOUT_MS) })
    return peer
  }
  const viaRelays = async (): Promise<string> => {
    for (const b of reached) {
      const circuit = `${b}/p2p-circuit/p2p/${peer}`
      try {
        await node.dial(multiaddr(circuit), { signal: AbortSignal.timeout(FIND_TIMEOUT_MS) })
        return circuit
      } catch {
        // this bootstrap peer holds no reservation for the peer; try the next
      }
    }
    throw new Error('no relay reached it')
  }
  try {
    return await Promise.any([viaDht(), viaRelays()])
  } catch {
    // both failed: said below
  }
  throw new PeerNotFoundError(
    `peer ${peer} was not found in the DHT nor reachable through the relays of ${reached.join(', ')}`
  )
}
