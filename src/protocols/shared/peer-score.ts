// Peer scoring for request/response protocols (as Lodestar's req/resp rate limiter and peer
// manager do): a peer that sends frames that do not decode loses score; the score decays back
// toward 0 (half-life 1 min), so an honest peer with a rare bad frame never reaches the ban line;
// a peer that reaches it is disconnected and banned for a while (its streams are reset at once).
// Parameters and reasons: docs/PROTOCOL.md "Peer scoring".

export interface PeerScoreInit {
  /** score lost per frame that does not decode or fails the schema */
  invalidFramePenalty?: number
  /** at or below this the peer is banned: 5 invalid frames within a few seconds (decay counts) */
  banThreshold?: number
  decayHalfLifeMs?: number
  banMs?: number
  /** at most this many peers are tracked; the least recently seen is forgotten first */
  maxPeers?: number
  now?: () => number
}

interface Entry {
  score: number
  at: number
  bannedUntil: number
}

export const PEER_SCORE_DEFAULTS: Required<Omit<PeerScoreInit, 'now'>> = {
  invalidFramePenalty: 10,
  banThreshold: -45,
  decayHalfLifeMs: 60_000,
  banMs: 10 * 60_000,
  maxPeers: 10_000
}

export class PeerScores {
  readonly #init: Required<PeerScoreInit>
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

  /** Records an invalid frame; returns true when this one got the peer banned. */
  invalidFrame(peer: string): boolean {
    const now = this.#init.now()
    const e = this.#entry(peer, now)
    e.score -= this.#init.invalidFramePenalty
    if (e.score > this.#init.banThreshold || e.bannedUntil > now) return false
    e.bannedUntil = now + this.#init.banMs
    e.score = 0 // after the ban the peer starts afresh
    return true
  }
}
