// The advert service: publishes this node's signed capability advert at start, after every
// capability change (debounced) and as a heartbeat well inside its TTL; validates everything
// received on the topic and keeps the PeerTable current.
import type { GossipSub, Message, SubscriptionChangeData } from '@libp2p/gossipsub'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import type { Logger } from '../../common/log.ts'
import type { Hex } from '../../crypto/hash.ts'
import type { CapabilitySource } from '../../serving/capability.ts'
import { BindingVerifier } from './binding.ts'
import { buildAdvertBody, type SignedAdvert, signAdvert } from './codec.ts'
import {
  ADVERTS_TOPIC,
  DEFAULT_ADAPTER_LIST_LIMIT,
  DEFAULT_DEBOUNCE_MS,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_TTL_MS,
  PUBLISH_SPACING_MS
} from './constants.ts'
import type { AdvertIgnoreReason, AdvertRejectReason } from './errors.ts'
import type { PeerTable } from './peer-table.ts'
import { AdvertSync, type AdvertSyncComponents } from './sync.ts'
import { validateAdvert } from './validate.ts'

// The node builds these before any extension; services find them in their components.
declare module '../../common/service.ts' {
  interface NodeComponents {
    peerTable: PeerTable
    adverts: AdvertService
  }
}

export interface AdvertsInit {
  heartbeatMs?: number
  ttlMs?: number
  debounceMs?: number
  adapterListLimit?: number
  /** software version put in the advert */
  version?: string
}

export interface OperatorBinding {
  address: Hex
  /** operator's signature over operatorBindingMessage(peerId) */
  signature: Uint8Array
}

export interface AdvertsComponents {
  peerId: PeerId
  privateKey: PrivateKey
  pubsub: GossipSub
  peerTable: PeerTable
  capabilities: CapabilitySource
  operator: OperatorBinding
  /** multiaddrs (with /p2p/) other peers should dial us on */
  addresses(): string[]
  /** how other peers reach this node (put in the advert when given) */
  reachability?(): 'public' | 'relayed' | 'local'
  logger: Logger
  /** when given, tables are synced with every newly identified peer (sync.ts) */
  libp2p?: AdvertSyncComponents['libp2p']
}

export interface AdvertStats {
  published: number
  accepted: number
  rejected: Partial<Record<AdvertRejectReason, number>>
  ignored: Partial<Record<AdvertIgnoreReason, number>>
}

export class AdvertService {
  readonly #c: AdvertsComponents
  readonly #heartbeatMs: number
  readonly #ttlMs: number
  readonly #debounceMs: number
  readonly #listLimit: number
  readonly #version: string
  readonly #bindings = new BindingVerifier()
  readonly #log: Logger
  readonly stats: AdvertStats = { published: 0, accepted: 0, rejected: {}, ignored: {} }
  #current?: SignedAdvert
  #seq = 0
  #lastPublishAt = 0
  #heartbeat?: ReturnType<typeof setInterval>
  #debounce?: ReturnType<typeof setTimeout>
  #publishing?: Promise<unknown>
  #running = false
  #sync?: AdvertSync
  readonly #onChanged = (): void => this.schedulePublish()
  /**
   * A peer that newly subscribes has missed every advert published before; our sync answer
   * reaches only that peer, so re-publish (debounced) to carry ours to everyone it connects us
   * to. Only direct neighbours see a subscription, so a join costs O(degree) adverts.
   */
  readonly #onSubscription = (e: CustomEvent<SubscriptionChangeData>): void => {
    if (e.detail.subscriptions.some((s) => s.topic === ADVERTS_TOPIC && s.subscribe)) this.schedulePublish()
  }

  constructor(components: AdvertsComponents, init: AdvertsInit = {}) {
    this.#c = components
    this.#heartbeatMs = init.heartbeatMs ?? DEFAULT_HEARTBEAT_MS
    this.#ttlMs = init.ttlMs ?? DEFAULT_TTL_MS
    this.#debounceMs = init.debounceMs ?? DEFAULT_DEBOUNCE_MS
    this.#listLimit = init.adapterListLimit ?? DEFAULT_ADAPTER_LIST_LIMIT
    this.#version = init.version ?? '0.0.0'
    this.#log = components.logger.child('adverts')
  }

  /** The table sync (present when the service was given libp2p). */
  get sync(): AdvertSync | undefined {
    return this.#sync
  }

  /** The advert this node published last. */
  get current(): SignedAdvert | undefined {
    return this.#current
  }

  async start(): Promise<void> {
    const { pubsub } = this.#c
    pubsub.topicValidators.set(ADVERTS_TOPIC, (_peer, msg) => this.#validate(msg))
    pubsub.subscribe(ADVERTS_TOPIC)
    pubsub.addEventListener('subscription-change', this.#onSubscription)
    this.#c.capabilities.addEventListener('changed', this.#onChanged)
    this.#running = true
    await this.publish()
    if (this.#c.libp2p) {
      this.#sync = new AdvertSync({
        libp2p: this.#c.libp2p,
        peerTable: this.#c.peerTable,
        bindings: this.#bindings,
        own: () => this.#current,
        logger: this.#log
      })
      await this.#sync.start()
    }
    this.#heartbeat = setInterval(() => this.schedulePublish(0), this.#heartbeatMs)
  }

  async stop(): Promise<void> {
    this.#running = false
    clearInterval(this.#heartbeat)
    clearTimeout(this.#debounce)
    this.#c.capabilities.removeEventListener('changed', this.#onChanged)
    this.#c.pubsub.removeEventListener('subscription-change', this.#onSubscription)
    await this.#sync?.stop()
    await this.#publishing?.catch(() => {})
    this.#c.pubsub.unsubscribe(ADVERTS_TOPIC)
    this.#c.pubsub.topicValidators.delete(ADVERTS_TOPIC)
  }

  /** Coalesces bursts of changes into one publish after `delayMs` of quiet. */
  schedulePublish(delayMs = this.#debounceMs): void {
    if (!this.#running) return
    clearTimeout(this.#debounce)
    this.#debounce = setTimeout(() => {
      this.publish().catch((err) => this.#log.warn('advert publish failed', { err }))
    }, delayMs)
  }

  /** Builds, signs and publishes a fresh advert now (publishes never overlap). */
  async publish(): Promise<SignedAdvert> {
    const run = async (): Promise<SignedAdvert> => {
      const wait = this.#lastPublishAt + PUBLISH_SPACING_MS - Date.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
      const caps = await this.#c.capabilities.capabilities()
      const now = Date.now()
      this.#lastPublishAt = now
      // Millisecond timestamps keep seq increasing across restarts without persisting it.
      this.#seq = Math.max(this.#seq + 1, now)
      const body = buildAdvertBody({
        peerId: this.#c.peerId.toString(),
        operator: this.#c.operator.address,
        operatorSig: this.#c.operator.signature,
        version: this.#version,
        addrs: this.#c.addresses(),
        caps,
        seq: this.#seq,
        now,
        ttlMs: this.#ttlMs,
        adapterListLimit: this.#listLimit,
        reachability: this.#c.reachability?.()
      })
      const adv = await signAdvert(body, this.#c.privateKey)
      this.#current = adv
      const res = await this.#c.pubsub.publish(ADVERTS_TOPIC, adv.bytes)
      this.stats.published++
      this.#log.debug('advert published', {
        seq: adv.body.seq,
        bytes: adv.bytes.length,
        to: res.recipients.length
      })
      return adv
    }
    const p = (this.#publishing ?? Promise.resolve()).catch(() => {}).then(run)
    this.#publishing = p
    return p
  }

  async #validate(msg: Message): Promise<TopicValidatorResult> {
    const from = msg.type === 'signed' ? msg.from.toString() : undefined
    const verdict = await validateAdvert(msg.data, {
      from,
      now: Date.now(),
      self: this.#c.peerId.toString(),
      latestSeq: (p) => this.#c.peerTable.latestSeq(p),
      latestTs: (p) => this.#c.peerTable.latestTs(p),
      bindings: this.#bindings
    })
    if (verdict.action === 'accept') {
      this.stats.accepted++
      this.#c.peerTable.put(verdict.advert).catch((err) => this.#log.warn('peer table put failed', { err }))
      return TopicValidatorResult.Accept
    }
    const bucket: Record<string, number> =
      verdict.action === 'reject' ? this.stats.rejected : this.stats.ignored
    bucket[verdict.reason] = (bucket[verdict.reason] ?? 0) + 1
    const level = verdict.action === 'reject' ? 'info' : 'debug'
    this.#log[level](`advert ${verdict.action}ed`, { from, reason: verdict.reason, detail: verdict.message })
    return verdict.action === 'reject' ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
  }
}
