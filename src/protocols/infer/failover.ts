// What a job's failed candidates add up to, for the error the client is told when none served
// it. A candidate that answered (BUSY with its hint, ADAPTER_NOT_FOUND, …) says more than one no
// dial reached, so it wins; when no candidate was reached at all, the job reached no node, and
// PEER_UNREACHABLE names them all (nothing ran, nothing was charged, a retry may find another).
import type { UnreachablePeers } from '../routing/router.ts'
import * as C from './constants.ts'
import { InferError, type InferFailureCode } from './errors.ts'

/** Codes that move a job on to the next candidate (only before its first token). */
export const RETRYABLE: ReadonlySet<InferFailureCode> = new Set([
  'BUSY',
  'INTERNAL',
  'ADAPTER_NOT_FOUND',
  'MODEL_NOT_FOUND',
  'RATE_LIMITED',
  'PEER_UNREACHABLE'
])

export class CandidateFailures {
  #last: InferError | undefined
  readonly #unreached: string[] = []
  readonly #peers: UnreachablePeers

  /** `peers`: where a peer no dial reached is marked, so the next jobs plan it last */
  constructor(peers: UnreachablePeers) {
    this.#peers = peers
  }

  /** Records a failed candidate (`peerId` undefined: this node itself). */
  add(e: InferError, peerId: string | undefined): void {
    if (peerId !== undefined) {
      // only this node's own failed dial marks the peer; a relayed PEER_UNREACHABLE names a
      // peer further on, and the candidate itself answered
      if (e.code === 'PEER_UNREACHABLE' && e.data.peer === peerId) {
        this.#unreached.push(peerId)
        this.#peers.failed(peerId)
      } else this.#peers.reached(peerId)
    }
    if (e.code !== 'PEER_UNREACHABLE' || this.#last === undefined || this.#last.code === 'PEER_UNREACHABLE')
      this.#last = e
  }

  /** The error for the client once every candidate failed. */
  final(): InferError {
    const last = this.#last
    if (last?.code === 'PEER_UNREACHABLE' && this.#unreached.length > 1) {
      const peers = this.#unreached
      return new InferError(
        'PEER_UNREACHABLE',
        `could not dial any of the ${peers.length} serving peers (${peers.join(', ')}): ` +
          'the job reached none of them, so none charged it; a retry may pick another peer',
        { peers, retryAfterMs: C.UNREACHABLE_RETRY_MS }
      )
    }
    return last ?? new InferError('INTERNAL', 'no candidate could serve the job')
  }
}
