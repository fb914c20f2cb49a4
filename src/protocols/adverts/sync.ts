// Advert table sync (/openlora/adverts-sync/1): the dialled side writes a count and then every
// live advert it holds (its own first), each length-prefixed; the dialling side validates each
// one exactly as gossip would (signature, operator binding, expiry, sequence), except that a
// relayed advert needs no matching `from`. Gossip only carries adverts published after a peer
// joined, so without this a newcomer would wait for everyone's heartbeat.
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import type { Logger } from '../../common/log.ts'
import type { BindingVerifier } from './binding.ts'
import type { SignedAdvert } from './codec.ts'
import {
  ADVERTS_SYNC_PROTOCOL,
  MAX_ADVERT_BYTES,
  MAX_SYNC_ADVERTS,
  MAX_SYNC_BYTES,
  SYNC_MAX_INBOUND_STREAMS,
  SYNC_RETRY_MS,
  SYNC_TIMEOUT_MS
} from './constants.ts'
import type { PeerTable } from './peer-table.ts'
import { validateAdvert } from './validate.ts'

export interface AdvertSyncComponents {
  libp2p: Pick<
    Libp2p,
    'handle' | 'unhandle' | 'dialProtocol' | 'addEventListener' | 'removeEventListener' | 'peerId'
  >
  peerTable: PeerTable
  bindings: BindingVerifier
  /** this node's latest advert */
  own(): SignedAdvert | undefined
  logger: Logger
}

export interface SyncResult {
  received: number
  accepted: number
  rejected: number
}

export class AdvertSync {
  readonly #c: AdvertSyncComponents
  readonly #log: Logger
  readonly #onIdentify = (e: CustomEvent<{ peerId: PeerId; protocols: string[] }>): void => {
    if (!e.detail.protocols.includes(ADVERTS_SYNC_PROTOCOL)) return
    const peer = e.detail.peerId
    this.syncFrom(peer).catch((err) => {
      // An overloaded peer may time out; one retry, since gossip alone would leave us with
      // nothing until every peer's next heartbeat.
      this.#log.debug('advert sync failed; retrying once', { peer: peer.toString(), err })
      const t = setTimeout(() => {
        if (!this.#running) return
        this.syncFrom(peer).catch((e2) =>
          this.#log.debug('advert sync failed', { peer: peer.toString(), err: e2 })
        )
      }, SYNC_RETRY_MS)
      t.unref()
    })
  }
  #running = false

  constructor(components: AdvertSyncComponents) {
    this.#c = components
    this.#log = components.logger.child('sync')
  }

  async start(): Promise<void> {
    this.#running = true
    await this.#c.libp2p.handle(ADVERTS_SYNC_PROTOCOL, (stream) => this.#serve(stream), {
      maxInboundStreams: SYNC_MAX_INBOUND_STREAMS,
      // a node behind NAT may only be connected through a relay
      runOnLimitedConnection: true
    })
    this.#c.libp2p.addEventListener('peer:identify', this.#onIdentify)
  }

  async stop(): Promise<void> {
    this.#running = false
    this.#c.libp2p.removeEventListener('peer:identify', this.#onIdentify)
    await this.#c.libp2p.unhandle(ADVERTS_SYNC_PROTOCOL)
  }

  async #serve(stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(SYNC_TIMEOUT_MS)
    try {
      const own = this.#c.own()
      const others = this.#c.peerTable.entries().map((e) => e.advert.bytes)
      const all: Uint8Array[] = []
      let bytes = 0
      for (const a of own ? [own.bytes, ...others] : others) {
        if (all.length >= MAX_SYNC_ADVERTS || bytes + a.length > MAX_SYNC_BYTES) break
        all.push(a)
        bytes += a.length
      }
      const lp = lpStream(stream, { maxDataLength: MAX_ADVERT_BYTES })
      const count = new Uint8Array(4)
      new DataView(count.buffer).setUint32(0, all.length)
      await lp.writeV([count, ...all], { signal })
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err as Error)
    }
  }

  /** Pulls a peer's table into ours; returns what happened. */
  async syncFrom(peer: PeerId): Promise<SyncResult> {
    const signal = AbortSignal.timeout(SYNC_TIMEOUT_MS)
    const stream = await this.#c.libp2p.dialProtocol(peer, ADVERTS_SYNC_PROTOCOL, {
      signal,
      runOnLimitedConnection: true
    })
    const result: SyncResult = { received: 0, accepted: 0, rejected: 0 }
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_ADVERT_BYTES })
      const head = (await lp.read({ signal })).subarray()
      if (head.length !== 4) throw new Error('sync answer does not start with a 4-byte count')
      const n = new DataView(head.buffer, head.byteOffset, 4).getUint32(0)
      if (n > MAX_SYNC_ADVERTS)
        throw new Error(`sync answer announces ${n} adverts; at most ${MAX_SYNC_ADVERTS}`)
      const self = this.#c.libp2p.peerId.toString()
      let total = 0
      for (let i = 0; i < n; i++) {
        const bytes = (await lp.read({ signal })).subarray()
        total += bytes.length
        if (total > MAX_SYNC_BYTES) throw new Error(`sync answer exceeds ${MAX_SYNC_BYTES} bytes`)
        result.received++
        const v = await validateAdvert(bytes, {
          from: undefined,
          relayed: true,
          now: Date.now(),
          self,
          latestSeq: (p) => this.#c.peerTable.latestSeq(p),
          bindings: this.#c.bindings
        })
        if (v.action === 'accept') {
          if (await this.#c.peerTable.put(v.advert)) result.accepted++
        } else if (v.action === 'reject') {
          result.rejected++
        }
      }
      await stream.close({ signal })
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
    if (result.rejected > 0)
      this.#log.info('peer served invalid adverts', { peer: peer.toString(), ...result })
    else this.#log.debug('synced adverts', { peer: peer.toString(), ...result })
    return result
  }
}
