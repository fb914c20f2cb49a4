// Forwarding a job to the next peer and relaying its frames to the client unchanged (each one
// decoded and checked first). Errors before the first token reach the caller for failover.
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from '../../common/log.ts'
import type { LatencyTracker } from '../routing/router.ts'
import { framed } from '../shared/framed.ts'
import type { InferHost } from './components.ts'
import * as C from './constants.ts'
import { InferError, inferErrorFromFrame } from './errors.ts'
import type { Job } from './job.ts'
import { readResponses, writeFrame } from './stream.ts'

export interface ForwardContext {
  host: InferHost
  self: string
  latency: LatencyTracker
  log: Logger
}

/** Sends the job on to `peerId` and relays its frames; fails (for failover) before any token. */
export async function forwardJob(job: Job, peerId: string, ctx: ForwardContext): Promise<void> {
  const { body } = job.frame
  const t0 = performance.now()
  let out: Stream
  try {
    out = await ctx.host.dialProtocol(peerIdFromString(peerId), C.INFER_PROTOCOL, {
      signal: AbortSignal.any([job.signal, AbortSignal.timeout(C.FORWARD_FIRST_FRAME_TIMEOUT_MS)]),
      // the protocol id rides with the request: one round trip less per forwarded job
      negotiateFully: false,
      // a peer behind NAT is reached through a relay (limits sized for jobs by network.relay)
      runOnLimitedConnection: true
    })
  } catch (err) {
    if (job.signal.aborted) throw err
    // No stream opened, so not a byte of the request left: the peer never saw the job and
    // cannot have reserved or charged anything for it. Only this case is PEER_UNREACHABLE; a
    // stream that breaks after the request went out stays INTERNAL (the peer may have it).
    throw new InferError(
      'PEER_UNREACHABLE',
      `could not dial serving peer ${peerId} (${(err as Error)?.message ?? String(err)}): ` +
        'the job was not sent there, so it was not charged; a retry may pick another peer',
      { peer: peerId, peers: [peerId], retryAfterMs: C.UNREACHABLE_RETRY_MS },
      { cause: err }
    )
  }
  const onAbort = () => out.abort(new Error('job cancelled upstream'))
  job.signal.addEventListener('abort', onAbort, { once: true })
  // A peer that takes the stream but never answers is given up on, so the next one can serve.
  let heard = false
  const silence = setTimeout(() => {
    if (!heard) out.abort(new Error(`${peerId} sent nothing for ${C.FORWARD_FIRST_FRAME_TIMEOUT_MS} ms`))
  }, C.FORWARD_FIRST_FRAME_TIMEOUT_MS)
  try {
    const lp = framed(out, C.MAX_RESPONSE_FRAME_BYTES)
    await writeFrame(lp, { ...job.frame, route: [...job.frame.route, ctx.self] }, job.signal)
    let accepted = false
    let tokens = 0
    for await (const { frame: f, data } of readResponses(lp, job.signal)) {
      heard = true
      // Token frames come in order and stop at maxNewTokens; a peer that streams on is cut off
      // here rather than relayed to the client until the deadline.
      if (f.t === 'token') {
        if (f.index !== tokens)
          throw new InferError('INTERNAL', `${peerId} sent token ${f.index} where ${tokens} was due`)
        if (++tokens > body.params.maxNewTokens)
          throw new InferError(
            'INTERNAL',
            `${peerId} sent more than the ${body.params.maxNewTokens} tokens asked for (maxNewTokens)`
          )
      }
      if (!accepted && f.t === 'accepted') {
        accepted = true
        ctx.latency.record(peerId, performance.now() - t0)
      }
      if (f.t === 'error' && !job.streamed) {
        // a precise code (PEER_UNREACHABLE further on) stays the code; payment terms travel
        // back to the client unchanged
        const e = inferErrorFromFrame(f)
        throw new InferError(e.code, `${peerId}: ${e.message}`, e.data)
      }
      if ('jobId' in f && f.jobId !== null && f.jobId !== body.jobId)
        throw new InferError('INTERNAL', `${peerId} answered for another job`)
      await job.send(f, data)
      if (f.t === 'result' || f.t === 'error') {
        await out.close().catch(() => {})
        ctx.log.info('job relayed', {
          jobId: body.jobId,
          client: body.client,
          to: peerId,
          outcome: f.t === 'result' ? 'result' : f.code,
          ms: Math.round(performance.now() - t0)
        })
        return
      }
    }
    throw new InferError('INTERNAL', `${peerId} closed the stream before a result`)
  } catch (err) {
    out.abort(err as Error)
    throw err instanceof InferError
      ? err
      : new InferError('INTERNAL', `forward to ${peerId} failed: ${(err as Error).message}`)
  } finally {
    clearTimeout(silence)
    job.signal.removeEventListener('abort', onAbort)
  }
}
