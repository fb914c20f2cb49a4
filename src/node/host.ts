// The libp2p host: TCP + WebSockets + circuit relay v2, Noise, Yamux, identify, ping, gossipsub
// with peer scoring, AutoNAT v2, DCUtR, a Kademlia DHT, mDNS (optional) and bootstrap peers, an
// optional relay server and UPnP, with connection limits and announce addresses from config.
// Reachability (public | relayed | local) and relay reservations live in ./reachability.ts.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { autoNATv2 } from '@libp2p/autonat-v2'
import { bootstrap } from '@libp2p/bootstrap'
import { type CircuitRelayService, circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { type GossipSub, gossipsub } from '@libp2p/gossipsub'
import { createTopicScoreParams } from '@libp2p/gossipsub/score'
import { type Identify, identify } from '@libp2p/identify'
import type { ConnectionGater, Libp2p, PrivateKey } from '@libp2p/interface'
import { type KadDHT, kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { mdns } from '@libp2p/mdns'
import { type Ping, ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { uPnPNAT } from '@libp2p/upnp-nat'
import { webSockets } from '@libp2p/websockets'
import { createLibp2p, type Libp2pOptions } from 'libp2p'
import { ADVERTS_TOPIC, MAX_ADDRS, MAX_ADVERT_BYTES } from '../protocols/adverts/constants.ts'
import { holePuncher } from '../protocols/punch/punch.ts'
import { DHT_PROTOCOL } from '../protocols/routing/dht.ts'
import type { NodeConfig } from './config/schema.ts'
import { type RelayKeeper, relayKeeper } from './reachability.ts'

export type HostServices = {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
  dht?: KadDHT
  relayKeeper: RelayKeeper
  /** present with `network.relay.server` */
  relay?: CircuitRelayService
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

export async function createHost(
  config: NodeConfig,
  privateKey: PrivateKey,
  /** refuses connections with banned peers (src/protocols/shared/peer-score.ts) */
  connectionGater?: ConnectionGater
): Promise<Host> {
  const net = config.network
  const peerDiscovery: NonNullable<Libp2pOptions['peerDiscovery']> = []
  if (net.mdns) peerDiscovery.push(mdns({ interval: 10_000 }))
  if (net.bootstrap.length > 0) peerDiscovery.push(bootstrap({ list: net.bootstrap, timeout: 0 }))
  const relay = net.relay
  const services: Record<string, unknown> = {}
  if (relay.server)
    services.relay = circuitRelayServer({
      // libp2p's defaults (2 min, 128 KiB per relayed connection) cut an inference job or an
      // adapter transfer short; a relay for this network is sized for whole jobs.
      reservations: {
        maxReservations: relay.maxReservations,
        defaultDataLimit: BigInt(relay.dataLimitMb) * 1024n * 1024n,
        defaultDurationLimit: relay.durationLimitS * 1000,
        reservationTtl: relay.reservationTtlS * 1000
      }
    })
  if (net.upnp) services.upnp = uPnPNAT()
  if (net.dht !== 'off')
    services.dht = kadDHT({
      protocol: DHT_PROTOCOL,
      // 'auto': server once an address is confirmed public (AutoNAT), client before and behind NAT
      ...(net.dht === 'auto' ? {} : { clientMode: net.dht === 'client' }),
      // a LAN or loopback network is a real deployment too: keep every address a peer gives
      peerInfoMapper: passthroughMapper
    })
  return createLibp2p({
    // the node starts it as one step of its own ordered start
    start: false,
    privateKey,
    ...(connectionGater ? { connectionGater } : {}),
    addresses: { listen: net.listen, announce: net.announce },
    transports: [tcp(), webSockets(), circuitRelayTransport({ reservationCompletionTimeout: 10_000 })],
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
      // confirms a public listen address when another peer can dial it back; no confirmed public
      // address means "not reachable" (behind NAT it has none to test)
      autonat: autoNATv2({ startupDelay: 1_000 }),
      // hole punching: upgrades a relayed connection to a direct one where the NATs allow it
      dcutr: dcutr(),
      // TCP hole punching behind endpoint-independent NATs, where DCUtR over TCP cannot
      punch: holePuncher(),
      relayKeeper: relayKeeper({ bootstrap: net.bootstrap, intervalMs: relay.keeperIntervalMs }),
      ...(services as { relay?: () => CircuitRelayService }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        // adverts reach and leave nodes behind NAT over their relayed connections too
        runOnLimitedConnection: true,
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

/** Addresses worth putting in an advert: announced ones if configured, else dialable listen ones,
 * with relayed (`/p2p-circuit`) ones last: a direct address is better when both work. */
export function advertisedAddrs(host: Host, config: NodeConfig): string[] {
  const peer = host.peerId.toString()
  const all = host.getMultiaddrs().map((m) => m.toString())
  // at most two relayed ones, and always room for them within the advert's 8 addresses
  const relayed = all.filter((a) => a.includes('/p2p-circuit')).slice(0, 2)
  const direct =
    config.network.announce.length > 0
      ? config.network.announce.map((a) => `${a}/p2p/${peer}`)
      : all.filter(
          (a) => !a.includes('/p2p-circuit') && !a.includes('/ip4/0.0.0.0/') && !a.startsWith('/ip6/::/')
        )
  return [...direct.slice(0, MAX_ADDRS - relayed.length), ...relayed]
}
