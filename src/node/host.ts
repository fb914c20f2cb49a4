// The libp2p host: TCP + WebSockets, Noise, Yamux, identify, ping, gossipsub with peer scoring,
// mDNS (optional) and bootstrap peers, with connection limits and announce addresses from config.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { bootstrap } from '@libp2p/bootstrap'
import { type GossipSub, gossipsub } from '@libp2p/gossipsub'
import { createTopicScoreParams } from '@libp2p/gossipsub/score'
import { type Identify, identify } from '@libp2p/identify'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { mdns } from '@libp2p/mdns'
import { type Ping, ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { createLibp2p, type Libp2pOptions } from 'libp2p'
import { ADVERTS_TOPIC, MAX_ADVERT_BYTES } from '../protocols/adverts/constants.ts'
import type { NodeConfig } from './config/schema.ts'

export type HostServices = {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
}

export type Host = Libp2p<HostServices>

/**
 * Topic scoring for adverts, a low-rate topic: reward first deliveries, punish invalid messages
 * hard (three forged adverts push a peer under the graylist threshold of -80), and leave the
 * mesh-delivery-rate penalty off because a quiet topic would penalise honest mesh peers.
 */
const ADVERT_TOPIC_SCORE = createTopicScoreParams({
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1_000,
  timeInMeshCap: 300,
  firstMessageDeliveriesWeight: 1,
  firstMessageDeliveriesDecay: 0.9,
  firstMessageDeliveriesCap: 20,
  meshMessageDeliveriesWeight: 0,
  meshFailurePenaltyWeight: 0,
  invalidMessageDeliveriesWeight: -10,
  // per 1 s decay interval: a forger's penalty halves in about 70 s
  invalidMessageDeliveriesDecay: 0.99
})

/** Loopback and private LAN hosts carry whole local swarms; one IP must not count as a Sybil. */
const COLOCATION_WHITELIST = new Set(['127.0.0.1', '::1'])

export async function createHost(config: NodeConfig, privateKey: PrivateKey): Promise<Host> {
  const net = config.network
  const peerDiscovery: NonNullable<Libp2pOptions['peerDiscovery']> = []
  if (net.mdns) peerDiscovery.push(mdns({ interval: 10_000 }))
  if (net.bootstrap.length > 0) peerDiscovery.push(bootstrap({ list: net.bootstrap, timeout: 0 }))
  return createLibp2p({
    // the node starts it as one step of its own ordered start
    start: false,
    privateKey,
    addresses: { listen: net.listen, announce: net.announce },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery,
    connectionManager: {
      maxConnections: net.maxConnections,
      dialTimeout: net.dialTimeoutMs,
      // A local swarm dials its first node from one IP many times a second.
      inboundConnectionThreshold: Math.max(5, net.maxConnections),
      // ...and has that many handshakes in flight at once (libp2p's default is 10)
      maxIncomingPendingConnections: Math.max(10, Math.min(net.maxConnections, 64))
    },
    services: {
      // identify gates gossipsub and table sync; 5 s (the default) is too short on a loaded host
      identify: identify({ timeout: 15_000 }),
      ping: ping(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        // Our own validator sees oversized adverts (and so can penalise the sender); the gossip
        // frame limit only has to stay above the largest valid message plus framing.
        maxInboundDataLength: 4 * MAX_ADVERT_BYTES,
        scoreParams: {
          IPColocationFactorWhitelist: COLOCATION_WHITELIST,
          topics: { [ADVERTS_TOPIC]: ADVERT_TOPIC_SCORE }
        }
      })
    }
  })
}

/** Addresses worth putting in an advert: announced ones if configured, else dialable listen ones. */
export function advertisedAddrs(host: Host, config: NodeConfig): string[] {
  const peer = host.peerId.toString()
  if (config.network.announce.length > 0) return config.network.announce.map((a) => `${a}/p2p/${peer}`)
  return host
    .getMultiaddrs()
    .map((m) => m.toString())
    .filter((a) => !a.includes('/ip4/0.0.0.0/') && !a.startsWith('/ip6/::/'))
}
