// What a request/response protocol does with a fresh inbound stream before it serves it: a banned
// peer's stream is reset unanswered; a peer over its request rate or concurrency (or the node
// over its total) is refused with RATE_LIMITED / BUSY and a retry hint, which costs it a little
// score; a request that does not decode costs it more, and the ban that follows hangs up on it
// (the node's onBan) and shuts it out at the connection gater. Used by the adapter and datanet
// exchanges; infer keys its limits by the job's client instead, so it calls the parts itself.
import type { Connection, Stream } from '@libp2p/interface'
import { AdmissionError, PeerLimits, type PeerLimitsInit } from './limits.ts'
import { PeerScores } from './peer-score.ts'

export interface StreamLimits {
  requestsPerSecondPerPeer: number
  requestBurstPerPeer: number
  maxConcurrentPerPeer: number
  maxConcurrent: number
}

export class StreamGuard {
  readonly limits: PeerLimits
  readonly scores: PeerScores

  constructor(limits: StreamLimits, scores?: PeerScores, now?: () => number) {
    const init: PeerLimitsInit = {
      requestsPerSecondPerPeer: limits.requestsPerSecondPerPeer,
      requestBurstPerPeer: limits.requestBurstPerPeer,
      maxConcurrentJobsPerPeer: limits.maxConcurrentPerPeer,
      maxConcurrentJobs: limits.maxConcurrent,
      ...(now ? { now } : {})
    }
    this.limits = new PeerLimits(init)
    this.scores = scores ?? new PeerScores()
  }

  /**
   * Admits one request on `stream` from `connection`'s peer: the release to call when it ends,
   * `banned` when the stream was reset (banned peer), or the refusal to send (`AdmissionError`).
   */
  admit(stream: Stream, connection: Connection): (() => void) | 'banned' | AdmissionError {
    const peer = connection.remotePeer.toString()
    if (this.scores.isBanned(peer)) {
      stream.abort(new Error('peer is banned'))
      return 'banned'
    }
    try {
      return this.limits.admit(peer)
    } catch (err) {
      if (!(err instanceof AdmissionError)) throw err
      if (this.scores.rateLimited(peer)) void this.#hangUp(connection)
      return err
    }
  }

  /** A request that did not decode: costs score; a ban closes the connection at once. */
  invalid(connection: Connection, err: unknown): void {
    // a slow or silent peer is not a hostile one: only bytes that fail to decode cost score
    const name = (err as Error)?.name
    if (name === 'TimeoutError' || name === 'AbortError') return
    if (this.scores.invalidFrame(connection.remotePeer.toString())) void this.#hangUp(connection)
  }

  /** A peer that answered our request with bytes failing their hash or schema. */
  lied(peer: string): void {
    this.scores.invalidFrame(peer)
  }

  async #hangUp(connection: Connection): Promise<void> {
    await connection.close().catch((e) => connection.abort(e as Error))
  }
}
