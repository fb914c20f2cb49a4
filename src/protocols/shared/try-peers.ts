// Asking peers in turn until one answers well: how every fetch over the network (adapters,
// datanet versions) treats a peer that fails — note why, move on to the next one — and how it
// reports that all of them failed (each peer with its reason).
import type { ErrorCode } from '../../common/error-codes.ts'
import { codeOf } from '../../common/errors.ts'

/** One failed peer: its id, the error's message and, when it has one, the error's code. */
export interface PeerAttempt {
  peer: string
  error: string
  code?: ErrorCode
}

export interface TryPeersOptions {
  /** the caller's cancellation: an abort is rethrown at once, never counted as a peer's failure */
  signal?: AbortSignal
  /** an error no other peer could help with (this node's own state): rethrown at once */
  fatal?: (err: unknown) => boolean
  /** each peer's failure as it happens (a log line) */
  onFailure?: (peer: string, err: unknown) => void
}

/** Runs `attempt` for each peer in order and returns the first success; throws `exhausted(...)` if none. */
export async function tryPeers<T>(
  peers: readonly string[],
  attempt: (peer: string) => Promise<T>,
  exhausted: (attempts: PeerAttempt[]) => Error,
  opts: TryPeersOptions = {}
): Promise<T> {
  const attempts: PeerAttempt[] = []
  for (const peer of peers) {
    try {
      return await attempt(peer)
    } catch (err) {
      if (opts.signal?.aborted || opts.fatal?.(err)) throw err
      const code = codeOf(err)
      const error = err instanceof Error ? err.message : String(err)
      attempts.push({ peer, error, ...(code === undefined ? {} : { code }) })
      opts.onFailure?.(peer, err)
    }
  }
  throw exhausted(attempts)
}

/** `<peer suffix>: <reason>; …` for an error message naming every peer that was asked. */
export function describeAttempts(attempts: readonly PeerAttempt[]): string {
  return attempts.map((a) => `${a.peer.slice(-8)}: ${a.error}`).join('; ')
}
