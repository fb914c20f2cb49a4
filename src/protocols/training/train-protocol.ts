// /openlora/train/1.0.0: a peer asks a node to train a LoRA adapter on a datanet the node holds.
//
// Wire (codec.ts; length-prefixed JSON frames, each size-limited and zod-checked): the client
// sends one request frame (base model id, datanet id@version, hyperparameters, and for a paid job
// its job id, budget in trained tokens, voucher and accepted terms); the node answers
// `{t:"progress",step,steps,loss,tokens}` frames while it trains, then
// `{t:"done",cid,record,payment?}` with the adapter CID, the node's signed training record and,
// for a paid job, the signed payment statement, or `{t:"error",code,message,payment?}`
// (PAYMENT_REQUIRED carries the node's signed terms). A node that does not offer training answers
// TRAINING_NOT_OFFERED; a peer that does not speak the protocol at all is told apart by the
// client with the same code. Payment (payment.ts) is the inference path's: vouchers against the
// client's escrow at this node, the budget reserved before any work, trained tokens owed before
// they are reported, the job settled at ceil(trainedTokens × price / 1000).
import type { Connection, Stream } from '@libp2p/interface'
import { type Logger, silentLogger } from '../../common/log.ts'
import type { SignedTrainingRecord } from '../../runtime/training/record.ts'
import { framed } from '../shared/framed.ts'
import type { ProtocolHost } from '../shared/protocol-host.ts'
import { encodeTrainFrame, type TrainFrame, type TrainJobRequest, TrainWireRequestSchema } from './codec.ts'
import { MAX_TRAIN_REQUEST_BYTES, TRAIN_PROTOCOL, TRAIN_TIMEOUT_MS } from './constants.ts'
import {
  openTrainingPayment,
  type PaidTraining,
  type TrainPaymentContext,
  TrainPaymentError
} from './payment.ts'
import { TrainingSlot } from './slot.ts'

export {
  TrainingJobError,
  type TrainJobRequest,
  TrainJobRequestSchema,
  type TrainWireRequest
} from './codec.ts'
export { requestTraining, type TrainJobResult } from './request.ts'

/** What serves the jobs: trains and returns the adapter's CID and signed record. */
export interface TrainingProvider {
  train(
    req: TrainJobRequest,
    /** after each step: its loss and the tokens it trained */
    onStep: (step: number, loss: number, tokens: number) => void,
    signal: AbortSignal,
    /**
     * maxTokens: train only the steps whose tokens fit (the client's budget); requester: the peer
     * that sent the job, asked first for a datanet the node lacks (it named it, so likely holds it)
     */
    opts?: { maxTokens?: number; requester?: string }
  ): Promise<{
    cid: string
    record: SignedTrainingRecord
    /** the adapter directory, when local */
    dir?: string
  }>
}

export interface TrainServiceComponents {
  host: ProtocolHost
  /** absent: the node answers every request with TRAINING_NOT_OFFERED */
  provider?: TrainingProvider
  /** looked up per job (the chain may start after this service); absent or price 0: free jobs */
  payment?: () => TrainPaymentContext | undefined
  /** the node's one training slot, shared with the gateway's jobs (default: this service's own) */
  slot?: TrainingSlot
  logger?: Logger
}

export class TrainService {
  readonly #c: TrainServiceComponents
  readonly #log: Logger
  readonly #slot: TrainingSlot
  #started = false

  constructor(c: TrainServiceComponents) {
    this.#c = c
    this.#log = c.logger ?? silentLogger
    this.#slot = c.slot ?? new TrainingSlot()
  }

  async start(): Promise<void> {
    if (this.#started) return
    await this.#c.host.handle(TRAIN_PROTOCOL, (s, c) => this.#serve(s, c), {
      maxInboundStreams: 4,
      runOnLimitedConnection: true
    })
    this.#started = true
  }

  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    await this.#c.host.unhandle(TRAIN_PROTOCOL)
  }

  async #serve(stream: Stream, connection: Connection): Promise<void> {
    const lp = framed(stream, MAX_TRAIN_REQUEST_BYTES)
    // the client going away (a progress write fails) stops the job: nobody would take its result
    const gone = new AbortController()
    const signal = AbortSignal.any([AbortSignal.timeout(TRAIN_TIMEOUT_MS), gone.signal])
    const send = (f: TrainFrame) => lp.write(encodeTrainFrame(f), { signal })
    let paid: PaidTraining | undefined
    let settled = false
    try {
      const raw = (await lp.read({ signal })).subarray()
      let json: unknown
      try {
        json = JSON.parse(new TextDecoder().decode(raw))
      } catch {
        await send({ t: 'error', code: 'TRAINING_INPUT_INVALID', message: 'the request frame is not JSON' })
        return
      }
      const parsed = TrainWireRequestSchema.safeParse(json)
      if (!parsed.success) {
        const i = parsed.error.issues[0]!
        await send({
          t: 'error',
          code: 'TRAINING_INPUT_INVALID',
          message: `request ${i.path.join('.') || '(root)'}: ${i.message}`.slice(0, 2000)
        })
        return
      }
      const provider = this.#c.provider
      if (!provider) {
        await send({ t: 'error', code: 'TRAINING_NOT_OFFERED', message: 'this node does not offer training' })
        return
      }
      // one job at a time, the gateway's included (slot.ts): refused at once, before any payment,
      // so the client can go to another trainer. The hint rides in the message: the error frame's
      // schema is strict, and a field older clients do not know would fail their parse.
      const lease = this.#slot.tryAcquire(parsed.data.steps, `a job from ${connection.remotePeer}`)
      if (!lease) {
        const s = Math.ceil(this.#slot.retryAfterMs() / 1000)
        await send({
          t: 'error',
          code: 'BUSY',
          message: `this node is training another job (${this.#slot.describe()}); try again in about ${s} s`
        })
        return
      }
      // a reset from the client ends the job at its next step (writes alone notice it late)
      stream.addEventListener('close', () => gone.abort(new Error('the client closed the stream')), {
        once: true
      })
      try {
        const { jobId, budget, voucher: _v, terms: _t, ...req } = parsed.data
        const modern = jobId !== undefined || budget !== undefined
        const pay = this.#c.payment?.()
        paid = pay ? await openTrainingPayment(pay, parsed.data) : undefined
        let trained = 0
        let reported = Promise.resolve()
        const r = await provider.train(
          req,
          (step, loss, tokens) => {
            lease.progress(step + 1)
            trained += tokens
            const n = trained
            // owed before the client hears of it (H2): the record, then the frame, in step order
            reported = reported
              .then(async () => {
                await paid?.delivered(n)
                // `tokens` only to clients that sent the payment fields: an older client's frame
                // schema is strict (test/e2e/train-protocol.test.ts keeps a 1.0.0 client working)
                await send({ t: 'progress', step, steps: req.steps, loss, ...(modern ? { tokens: n } : {}) })
              })
              .catch((err) => gone.abort(err))
          },
          signal,
          {
            requester: connection.remotePeer.toString(),
            ...(budget ? { maxTokens: paid?.maxTokens ?? budget.maxTokens } : {})
          }
        )
        await reported
        signal.throwIfAborted()
        const payment = paid ? await paid.finish(r) : undefined
        settled = true
        await send({
          t: 'done',
          cid: r.cid,
          record: JSON.stringify(r.record),
          ...(payment ? { payment } : {})
        })
        this.#log.info('training job served', {
          peer: connection.remotePeer.toString(),
          cid: r.cid,
          trainedTokens: trained,
          ...(payment ? { amountDue: payment.body.amountDue } : {})
        })
      } finally {
        lease.release()
      }
    } catch (err) {
      const e = err as { code?: string; message?: string; data?: { remoteCode?: string } }
      this.#log.warn('training job failed', { peer: connection.remotePeer.toString(), error: e.message })
      await send({
        t: 'error',
        code: e.data?.remoteCode ?? (typeof e.code === 'string' ? e.code : 'TRAINING_FAILED'),
        message: String(e.message ?? err).slice(0, 2000),
        ...(err instanceof TrainPaymentError ? { payment: err.terms } : {})
      }).catch(() => {})
    } finally {
      // an abort, an error, a hang-up: the tokens already trained are owed all the same (T1)
      if (paid && !settled)
        await paid.end().catch((err) => this.#log.warn('settling a cut-off job failed', { err }))
      await stream.close().catch(() => {})
    }
  }
}
