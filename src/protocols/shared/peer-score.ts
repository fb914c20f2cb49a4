// Peer scoring for request/response protocols (as Lodestar's req/resp rate limiter and peer
// manager do): a peer that sends frames that do not decode loses score; the score decays back
// toward 0 (half-life 1 min), so an honest peer with a rare bad frame never reaches the ban line;
// a peer that reaches it is disconnected and banned for a while. One instance serves the whole
// node (every request/response protocol scores into it), and the libp2p connection gater asks it
// (`bannedPeerGater`), so a banned peer can neither dial in nor be dialled until the ban lifts.
// Parameters and reasons: docs/PROTOCOL.md "Peer scoring".
import type { ConnectionGater, PeerId } from '@libp2p/interface'

export interface PeerScoreInit {
  /** score lost per frame that does not decode or fails the schema (or bytes that fail a hash) */
  invalidFramePenalty?: number
  /**
   * score lost per request refused for going over a rate or concurrency limit: a client that
   * honours the retry hint is refused rarely; one that ignores it is banned after ~45 refusals in
   * a burst, or when it keeps above ~0.5 refusals/s (the decay offsets less than that)
   */
  rateLimitPenalty?: number
  /** at or below this the peer is banned: 5 invalid frames within a few seconds (decay counts) */
  banThreshold?: number
  decayHalfLifeMs?: number
  banMs?: number
  /** at most this many peers are tracked; the least recently seen is forgotten first */
  maxPeers?: number
  now?: () => number
  /** called once per ban (the node hangs up on the peer) */
  onBan?: (peer: string, untilMs: number) => void
}

interface Entry {
  score: number
  at: number
  bannedUntil: number
}

export const PEER_SCORE_DEFAULTS: Required<Omit<PeerScoreInit, 'now' | 'onBan'>> = {
  invalidFramePenalty: 10,
  rateLimitPenalty: 1,
  banThreshold: -45,
  decayHalfLifeMs: 60_000,
  banMs: 10 * 60_000,
  maxPeers: 10_000
}

declare module '../../common/service.ts' {
  interface NodeComponents {
    /** the node's one peer score table (every protocol's invalid frames and refusals) */
    peerScores: PeerScores
  }
}

export class PeerScores {
  readonly #init: Required<Omit<PeerScoreInit, 'onBan'>> & Pick<PeerScoreInit, 'onBan'>
  readonly #peers = new Map<string, Entry>()

  constructor(init: PeerScoreInit = {}) {
    this.#init = { ...PEER_SCORE_DEFAULTS, now: Date.now, ...init }
  }

  #entry(peer: string, now: number): Entry {
    let e = this.#peers.get(peer)
    if (e === undefined) {
      e = { score: 0, at: now, bannedUntil: 0 }
      if (this.#peers.size >= this.#init.maxPeers) {
        const oldest = this.#peers.keys().next().value
        if (oldest !== undefined) this.#peers.delete(oldest)
      }
    } else {
      e.score *= 0.5 ** ((now - e.at) / this.#init.decayHalfLifeMs)
      e.at = now
      this.#peers.delete(peer) // re-inserted below: the map's order is recency
    }
    this.#peers.set(peer, e)
    return e
  }

  score(peer: string): number {
    return this.#entry(peer, this.#init.now()).score
  }

  isBanned(peer: string): boolean {
    const e = this.#peers.get(peer)
    return e !== undefined && e.bannedUntil > this.#init.now()
  }

  /** Peers banned now, with the time each ban lifts (what the admin endpoint shows). */
  banned(): { peer: string; untilMs: number }[] {
    const now = this.#init.now()
    const out: { peer: string; untilMs: number }[] = []
    for (const [peer, e] of this.#peers) if (e.bannedUntil > now) out.push({ peer, untilMs: e.bannedUntil })
    return out
  }

  /**
   * Bans a peer by hand for `ms` (the admin endpoint's `POST /peers/block`: an operator shutting
   * out a peer, the soak cutting the swarm in two); the node hangs up on it as on any ban.
   */
  block(peer: string, ms: number): number {
    const e = this.#entry(peer, this.#init.now())
    e.bannedUntil = this.#init.now() + ms
    this.#init.onBan?.(peer, e.bannedUntil)
    return e.bannedUntil
  }

  /** Lifts a ban (by hand or earned) at once; false when the peer was not banned. */
  unblock(peer: string): boolean {
    const e = this.#peers.get(peer)
    if (e === undefined || e.bannedUntil <= this.#init.now()) return false
    e.bannedUntil = 0
    return true
  }

  /** Records an invalid frame; returns true when this one got the peer banned. */
  invalidFrame(peer: string): boolean {
    return this.#penalise(peer, this.#init.invalidFramePenalty)
  }

  /** Records a request refused by a rate or concurrency limit; true when it got the peer banned. */
  rateLimited(peer: string): boolean {
    return this.#penalise(peer, this.#init.rateLimitPenalty)
  }

  #penalise(peer: string, penalty: number): boolean {
    const now = this.#init.now()
    const e = this.#entry(peer, now)
    e.score -= penalty
    if (e.score > this.#init.banThreshold || e.bannedUntil > now) return false
    e.bannedUntil = now + this.#init.banMs
    e.score = 0 // after the ban the peer starts afresh
    this.#init.onBan?.(peer, e.bannedUntil)
    return true
  }
}

/**
 * The libp2p connection gater of a node: no connection with a banned peer either way (an
 * inbound one is dropped right after the handshake names the peer, before any protocol runs).
 */
export function bannedPeerGater(scores: Pick<PeerScores, 'isBanned'>): ConnectionGater {
  const banned = (peer: PeerId) => scores.isBanned(peer.toString())
  return {
    denyDialPeer: banned,
    denyInboundEncryptedConnection: banned,
    // a dial by address alone learns the peer in the handshake: refused there
    denyOutboundEncryptedConnection: banned
  }
}
