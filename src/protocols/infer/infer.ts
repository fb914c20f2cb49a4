// The /openlora/infer/1.0.0 handler: reads one signed request, admits it (per-peer limits),
// plans where it runs (routing), then either serves it with the local engine (fetching the
// adapter by CID first when needed) or forwards it to the next peer and relays its frames. A
// failure before the first token moves on to the next candidate; the client only sees an error
// when every candidate failed. Closing or resetting the client stream cancels the job.
import type { Connection, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { LengthPrefixedStream } from '@libp2p/utils'
import { type Logger, silentLogger } from '../../common/log.ts'
import {
  LatencyTracker,
  type PeerDirectory,
  planRoute,
  type RouteTarget,
  UnreachablePeers,
  whyNoRoute
} from '../routing/router.ts'
import { framed } from '../shared/framed.ts'
import { PeerLimits } from '../shared/limits.ts'
import { PeerScores } from '../shared/peer-score.ts'
import {
  decodeRequestFrame,
  errorFrame,
  type RequestFrame,
  type ResponseFrame,
  type ResultFrame,
  requestSigningBytes
} from './codec.ts'
import type { InferComponents, InferHost, InferInit } from './components.ts'
import * as C from './constants.ts'
import { InferError, toInferError, toWire } from './errors.ts'
import { CandidateFailures, RETRYABLE } from './failover.ts'
import { forwardJob } from './forward.ts'
import type { Job } from './job.ts'
import { type LocalContext, serveLocal } from './local.ts'
import { ZERO_ADDRESS } from './receipt.ts'
import { writeFrame } from './stream.ts'

export type { InferComponents, InferHost, InferInit }

const emptyPeers: PeerDirectory = { query: () => [] }

/** A result this node sent: to `client` (a peer id; this node's own id for gateway jobs). */
export interface FinishedJob {
  result: ResultFrame
  client: string
  at: number
}

export class InferService {
  readonly #c: InferComponents
  readonly #init: Required<InferInit>
  readonly #limits: PeerLimits
  readonly #scores: PeerScores
  readonly #log: Logger
  readonly latency = new LatencyTracker()
  /** peers a forward just failed to dial: planned last until they answer again */
  readonly unreachable = new UnreachablePeers(C.UNREACHABLE_FOR_MS)
  readonly #inflight = new Set<AbortController>()
  readonly #jobListeners = new Set<(e: FinishedJob) => void>()
  #started = false

  constructor(components: InferComponents, init: InferInit = {}) {
    this.#c = components
    this.#init = {
      pricePer1kTokens: '0',
      maxConcurrentJobsPerPeer: C.DEFAULT_MAX_CONCURRENT_JOBS_PER_PEER,
      requestsPerSecondPerPeer: C.DEFAULT_REQUESTS_PER_SECOND_PER_PEER,
      requestBurstPerPeer: C.DEFAULT_REQUEST_BURST_PER_PEER,
      maxConcurrentJobs: C.DEFAULT_MAX_CONCURRENT_JOBS,
      maxPromptTokens: C.DEFAULT_MAX_PROMPT_TOKENS,
      maxHops: C.MAX_HOPS,
      progressIntervalMs: C.PROGRESS_INTERVAL_MS,
      receiptDomain: { chainId: 0, verifyingContract: ZERO_ADDRESS },
      ...init
    }
    this.#limits = new PeerLimits(this.#init)
    this.#scores = components.scores ?? new PeerScores()
    this.#log = components.logger ?? silentLogger
  }

  /**
   * Calls `listener` with every result this node sends (jobs it served and jobs it forwarded),
   * after the frame went out; the dashboard's Jobs page lists them. Returns the unsubscribe.
   */
  onJob(listener: (e: FinishedJob) => void): () => void {
    this.#jobListeners.add(listener)
    return () => this.#jobListeners.delete(listener)
  }

  get activeJobs(): number {
    return this.#limits.active
  }

  async start(): Promise<void> {
    if (this.#started) return
    await this.#c.host.handle(C.INFER_PROTOCOL, (s, c) => this.handle(s, c), {
      maxInboundStreams: C.MAX_INBOUND_STREAMS,
      maxOutboundStreams: C.MAX_OUTBOUND_STREAMS,
      // jobs to a node behind NAT arrive over a relayed connection
      runOnLimitedConnection: true
    })
    this.#started = true
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#c.host.unhandle(C.INFER_PROTOCOL)
    for (const ac of this.#inflight) ac.abort(new InferError('INTERNAL', 'node is shutting down'))
  }

  /** One inbound stream = one job. Never throws: every failure ends this stream only. */
  async handle(stream: Stream, connection: Connection): Promise<void> {
    const remote = connection.remotePeer.toString()
    if (this.#scores.isBanned(remote)) {
      stream.abort(new Error('peer is banned for sending invalid frames'))
      return
    }
    const lp = framed(stream, C.MAX_REQUEST_FRAME_BYTES)
    let frame: RequestFrame
    try {
      const data = await lp.read({ signal: AbortSignal.timeout(C.REQUEST_READ_TIMEOUT_MS) })
      frame = decodeRequestFrame(data.subarray())
    } catch (err) {
      this.#log.debug('bad request frame', { peer: remote, err })
      // a slow or silent peer is not a hostile one: only bytes that fail to decode cost score
      const name = (err as Error).name
      const banned = name !== 'TimeoutError' && name !== 'AbortError' && this.#scores.invalidFrame(remote)
      await this.#fail(stream, lp, errorFrame(null, 'BAD_REQUEST', (err as Error).message))
      if (banned) {
        this.#log.warn('peer banned for invalid frames', { peer: remote })
        await connection.close().catch((e) => connection.abort(e as Error))
      }
      return
    }
    const ac = new AbortController()
    const watch = new AbortController()
    try {
      await this.#execute(frame, remote, ac, {
        perPeer: true,
        write: (f, raw, signal) => (raw ? lp.write(raw, { signal }) : writeFrame(lp, f, signal)),
        // Anything the client sends after its request, or the end of its side, cancels the job.
        onAdmitted: () =>
          void lp.read({ signal: watch.signal }).then(
            () => ac.abort(new InferError('BAD_REQUEST', 'client sent a second frame; job cancelled')),
            () => {
              if (!watch.signal.aborted)
                ac.abort(new InferError('DEADLINE_EXCEEDED', 'client closed the stream'))
            }
          )
      })
      watch.abort()
      await stream.close().catch((err) => stream.abort(err))
    } catch (err) {
      watch.abort()
      await this.#fail(stream, lp, this.#errorFrame(frame, remote, ac, err))
    }
  }

  /**
   * Runs a job this node submits itself (the HTTP gateway): the same checks, routing, local
   * serving, receipts and failover as a job read from a stream, with each response frame handed
   * to `send` in order. The per-client limits do not apply (the gateway keeps its own per key);
   * the node-wide job cap does. Aborting `signal` cancels the job at once. Never throws: every
   * failure ends with an `error` frame.
   */
  async submit(
    frame: RequestFrame,
    opts: { send(frame: ResponseFrame): void | Promise<void>; signal: AbortSignal }
  ): Promise<void> {
    const self = this.#c.peerId
    const ac = new AbortController()
    const onAbort = () => ac.abort(new InferError('DEADLINE_EXCEEDED', 'cancelled by the client'))
    if (opts.signal.aborted) onAbort()
    opts.signal.addEventListener('abort', onAbort, { once: true })
    try {
      await this.#execute(frame, self, ac, { perPeer: false, write: async (f) => opts.send(f) })
    } catch (err) {
      await opts.send(this.#errorFrame(frame, self, ac, err))
    } finally {
      opts.signal.removeEventListener('abort', onAbort)
    }
  }

  #errorFrame(frame: RequestFrame, remote: string, ac: AbortController, err: unknown): ResponseFrame {
    const jobId = frame.body.jobId
    const e =
      ac.signal.aborted && !(err instanceof InferError) ? toInferError(ac.signal.reason) : toInferError(err)
    if (e.code === 'INTERNAL') this.#log.warn('job failed', { jobId, peer: remote, err })
    else this.#log.debug('job refused', { jobId, peer: remote, code: e.code, msg: e.message })
    const w = toWire(e)
    return errorFrame(jobId, w.code, w.message, e.retryAfterMs, e.payment)
  }

  /** One admitted job from check to its last frame; throws what the client should be told. */
  async #execute(
    frame: RequestFrame,
    remote: string,
    ac: AbortController,
    io: {
      perPeer: boolean
      write(f: ResponseFrame, raw: Uint8Array | undefined, signal: AbortSignal): Promise<void>
      onAdmitted?(): void
    }
  ): Promise<void> {
    const jobId = frame.body.jobId
    this.#inflight.add(ac)
    let release: (() => void) | undefined
    let progress: NodeJS.Timeout | undefined
    try {
      await this.#checkRequest(frame, remote)
      release = io.perPeer ? this.#limits.admit(frame.body.client) : this.#limits.admitNodeWide()
      io.onAdmitted?.()
      const untilDeadline = frame.body.deadline - Date.now()
      const deadline = AbortSignal.timeout(Math.max(1, untilDeadline))
      const signal = AbortSignal.any([ac.signal, deadline])
      let lastSent = Date.now()
      let tokens = 0
      const job: Job = {
        frame,
        remote,
        signal,
        streamed: false,
        send: async (f, raw) => {
          if (f.t === 'token') {
            job.streamed = true
            tokens++
          }
          lastSent = Date.now()
          await io.write(f, raw, signal)
          if (f.t === 'result') this.#jobDone(f, remote)
        }
      }
      progress = setInterval(
        () => {
          if (Date.now() - lastSent < this.#init.progressIntervalMs) return
          void job.send({ t: 'progress', jobId, tokens, queuePosition: null }).catch(() => {})
        },
        Math.max(50, this.#init.progressIntervalMs / 2)
      )
      await this.#run(job)
    } finally {
      clearInterval(progress)
      release?.()
      this.#inflight.delete(ac)
    }
  }

  #jobDone(result: ResultFrame, client: string): void {
    for (const l of this.#jobListeners)
      try {
        l({ result, client, at: Date.now() })
      } catch (err) {
        this.#log.debug('job listener failed', { err })
      }
  }

  #localContext(): LocalContext {
    return { c: this.#c, init: this.#init, log: this.#log }
  }

  async #fail(stream: Stream, lp: LengthPrefixedStream<Stream>, frame: ResponseFrame): Promise<void> {
    try {
      await writeFrame(lp, frame, AbortSignal.timeout(5_000))
      await stream.close({ signal: AbortSignal.timeout(5_000) })
    } catch (err) {
      stream.abort(err as Error)
    }
  }

  async #checkRequest(frame: RequestFrame, remote: string): Promise<void> {
    const { body, route } = frame
    const self = this.#c.peerId
    if (route.includes(self)) throw new InferError('BAD_REQUEST', 'job already passed through this node')
    const sender = route.length === 0 ? body.client : route[route.length - 1]
    if (sender !== remote)
      throw new InferError(
        'BAD_REQUEST',
        route.length === 0
          ? `body.client ${body.client} is not the peer that sent the request (${remote})`
          : `route must end with the forwarding peer ${remote}`
      )
    let ok = false
    try {
      const pub = peerIdFromString(body.client).publicKey
      ok = pub != null && (await pub.verify(requestSigningBytes(body), frame.signature))
    } catch {
      ok = false
    }
    if (!ok) throw new InferError('BAD_REQUEST', 'signature is not a valid Ed25519 signature of body.client')
    const now = Date.now()
    if (body.deadline <= now) throw new InferError('DEADLINE_EXCEEDED', 'the request deadline has passed')
    if (body.deadline - now > C.MAX_DEADLINE_AHEAD_MS)
      throw new InferError('BAD_REQUEST', `deadline must be at most ${C.MAX_DEADLINE_AHEAD_MS} ms ahead`)
    if (body.promptIds && body.promptIds.length > this.#init.maxPromptTokens)
      throw new InferError(
        'BAD_REQUEST',
        `prompt has ${body.promptIds.length} tokens; this node takes at most ${this.#init.maxPromptTokens}`,
        { limit: 'maxPromptTokens' }
      )
  }

  async #plan(job: Job): Promise<RouteTarget[]> {
    const { body, route } = job.frame
    const b = this.#c.backend
    const hasModel = b?.models().some((m) => m.modelId === body.model) ?? false
    const load = b?.load() ?? { queueDepth: 0, freeSlots: 0 }
    const tier = hasModel && body.adapter !== null ? await b!.adapterTier(body.model, body.adapter) : null
    const input = {
      self: this.#c.peerId,
      client: body.client,
      model: body.model,
      adapter: body.adapter,
      route,
      maxHops: this.#init.maxHops,
      local: {
        hasModel,
        tier,
        queueDepth: load.queueDepth,
        freeSlots: load.freeSlots,
        pricePer1kTokens: this.#init.pricePer1kTokens
      },
      peers: this.#c.peers ?? emptyPeers,
      latencyMs: (p: string) => this.latency.get(p),
      unreachable: (p: string) => this.unreachable.has(p),
      payTo: typeof body.voucher?.node === 'string' ? body.voucher.node : undefined,
      selfOperator: this.#c.operator.address
    }
    const plan = planRoute(input)
    if (plan.length === 0 && hasModel && body.adapter !== null && this.#c.adapterFetcher) {
      // no advert names a holder: the DHT's provider records may (then fetch and serve here)
      const from = await this.#c
        .adapterProviders?.(
          body.adapter,
          AbortSignal.any([job.signal, AbortSignal.timeout(C.PROVIDER_LOOKUP_TIMEOUT_MS)])
        )
        .catch(() => [])
      const sources = (from ?? []).filter((p) => p !== this.#c.peerId && p !== body.client)
      if (sources.length > 0 && load.freeSlots > 0) return [{ kind: 'local', fetchFrom: sources }]
    }
    if (plan.length === 0) {
      const code = whyNoRoute(input)
      throw new InferError(
        code,
        code === 'MODEL_NOT_FOUND'
          ? `no reachable peer serves model ${body.model}`
          : code === 'BUSY'
            ? 'this node is full and no peer can take the job'
            : `no reachable peer holds adapter ${body.adapter} for model ${body.model}`,
        code === 'BUSY' ? { retryAfterMs: 1000 } : {}
      )
    }
    return plan
  }

  async #run(job: Job): Promise<void> {
    const plan = await this.#plan(job)
    const failures = new CandidateFailures(this.unreachable)
    for (const target of plan) {
      const peer = target.kind === 'remote' ? target.peerId : undefined
      try {
        if (target.kind === 'local') await serveLocal(job, target.fetchFrom, this.#localContext())
        else
          await forwardJob(job, target.peerId, {
            host: this.#c.host,
            self: this.#c.peerId,
            latency: this.latency,
            log: this.#log
          })
        if (peer !== undefined) {
          this.unreachable.reached(peer)
          this.#c.metrics?.routingForwards.inc({ outcome: 'success' })
        }
        return
      } catch (err) {
        const e = toInferError(err)
        if (peer !== undefined)
          this.#c.metrics?.routingForwards.inc({
            outcome: job.signal.aborted ? 'cancelled' : e.code.toLowerCase()
          })
        if (job.signal.aborted) throw err
        failures.add(e, peer)
        if (job.streamed || !RETRYABLE.has(e.code)) {
          if (job.streamed && e.code === 'INTERNAL')
            throw new InferError('INTERNAL', `serving peer failed mid-job: ${e.message}`, { retryable: true })
          throw e
        }
        // a failover: this candidate is given up on and the next one gets the job
        if (target !== plan[plan.length - 1]) this.#c.metrics?.routingFailovers.inc()
        this.#log.debug('candidate failed, trying the next', {
          jobId: job.frame.body.jobId,
          where: peer ?? 'local',
          code: e.code
        })
      }
    }
    throw failures.final()
  }
}
