// Per-peer admission: concurrent jobs and a token-bucket request rate per remote peer, plus a
// node-wide cap on jobs in flight. Beyond a per-peer limit the peer gets RATE_LIMITED, beyond the
// node-wide one BUSY; both with a retry hint, never a dropped stream.
import { OpenLoraError } from '../../common/errors.ts'

/** A refused admission; a protocol answers it with its own error of the same code (infer: toInferError). */
export class AdmissionError extends OpenLoraError<'RATE_LIMITED' | 'BUSY'> {
  /** when the peer may try again */
  get retryAfterMs(): number {
    return this.data.retryAfterMs as number
  }
}

export interface PeerLimitsInit {
  maxConcurrentJobsPerPeer: number
  requestsPerSecondPerPeer: number
  requestBurstPerPeer: number
  maxConcurrentJobs: number
  now?: () => number
  /** buckets of peers idle this long are forgotten, so the map cannot grow without bound */
  idleForgetMs?: number
}

interface PeerState {
  tokens: number
  updatedAt: number
  active: number
}

export class PeerLimits {
  readonly #init: Required<PeerLimitsInit>
  readonly #peers = new Map<string, PeerState>()
  #active = 0

  constructor(init: PeerLimitsInit) {
    this.#init = { now: Date.now, idleForgetMs: 60_000, ...init }
  }

  get active(): number {
    return this.#active
  }

  /** Admits one job from `peer` or throws RATE_LIMITED / BUSY; call the returned release once. */
  admit(peer: string): () => void {
    const now = this.#init.now()
    this.#sweep(now)
    let s = this.#peers.get(peer)
    if (s === undefined) {
      s = { tokens: this.#init.requestBurstPerPeer, updatedAt: now, active: 0 }
      this.#peers.set(peer, s)
    }
    const rate = this.#init.requestsPerSecondPerPeer
    s.tokens = Math.min(this.#init.requestBurstPerPeer, s.tokens + ((now - s.updatedAt) / 1000) * rate)
    s.updatedAt = now
    if (s.tokens < 1) {
      const retryAfterMs = Math.ceil(((1 - s.tokens) / rate) * 1000)
      throw new AdmissionError('RATE_LIMITED', `more than ${rate} requests/s from this peer; retry later`, {
        retryAfterMs,
        limit: 'requestsPerSecond'
      })
    }
    if (s.active >= this.#init.maxConcurrentJobsPerPeer)
      throw new AdmissionError(
        'RATE_LIMITED',
        `this peer already has ${s.active} jobs running here (limit ${this.#init.maxConcurrentJobsPerPeer})`,
        { retryAfterMs: 1000, limit: 'concurrentJobs' }
      )
    if (this.#active >= this.#init.maxConcurrentJobs)
      throw new AdmissionError('BUSY', `node is at its limit of ${this.#init.maxConcurrentJobs} jobs`, {
        retryAfterMs: 1000
      })
    s.tokens -= 1
    s.active += 1
    this.#active += 1
    let released = false
    const state = s
    return () => {
      if (released) return
      released = true
      state.active -= 1
      this.#active -= 1
    }
  }

  /**
   * Admits a job the node submits itself (its HTTP gateway, which limits per API key): only the
   * node-wide cap applies. Call the returned release once.
   */
  admitNodeWide(): () => void {
    if (this.#active >= this.#init.maxConcurrentJobs)
      throw new AdmissionError('BUSY', `node is at its limit of ${this.#init.maxConcurrentJobs} jobs`, {
        retryAfterMs: 1000
      })
    this.#active += 1
    let released = false
    return () => {
      if (released) return
      released = true
      this.#active -= 1
    }
  }

  #sweep(now: number): void {
    if (this.#peers.size < 1024) return
    for (const [peer, s] of this.#peers)
      if (s.active === 0 && now - s.updatedAt > this.#init.idleForgetMs) this.#peers.delete(peer)
  }
}
