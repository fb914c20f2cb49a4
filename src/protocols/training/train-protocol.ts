// /openlora/train/1.0.0: a peer asks a node to train a LoRA adapter on a datanet the node holds.
//
// Wire (length-prefixed JSON frames, each size-limited and zod-checked): the client sends one
// request frame (base model id, datanet id@version, hyperparameters); the node answers
// `{t:"progress",step,steps,loss}` frames while it trains, then `{t:"done",cid,record}` with the
// adapter CID and the node's signed training record, or `{t:"error",code,message}`. A node that
// does not offer training answers TRAINING_NOT_OFFERED; a peer that does not speak the protocol
// at all is told apart by the client with the same code. The client checks the result: the
// record's signature is the serving peer's, it describes the CID it came with, and it names the
// datanet that was asked for. Payment for remote jobs (price per 1k trained tokens, vouchers) is
// not part of 1.0.0 yet; a node offers training to whom it chooses.
import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { OpenLoraError } from '../../common/errors.ts'
import { type Logger, silentLogger } from '../../common/log.ts'
import { parseWith, z } from '../../common/schema.ts'
import { PROJECTIONS } from '../../runtime/model/families/types.ts'
import type { SignedTrainingRecord } from '../../runtime/training/record.ts'
import { SCHEDULES } from '../../runtime/training/schedule.ts'
import { framed } from '../shared/framed.ts'
import type { ProtocolHost } from '../shared/protocol-host.ts'
import {
  MAX_REMOTE_STEPS,
  MAX_TRAIN_FRAME_BYTES,
  MAX_TRAIN_REQUEST_BYTES,
  TRAIN_PROTOCOL,
  TRAIN_TIMEOUT_MS
} from './constants.ts'
import { verifyTrainingRecord } from './record-verify.ts'

export class TrainingJobError extends OpenLoraError<'TRAINING_NOT_OFFERED' | 'TRAINING_FAILED'> {}

const hex32 = z.string().regex(/^0x[0-9a-f]{64}$/, 'a 0x-prefixed 32-byte lowercase hex id')

const DatanetRef = z.strictObject({ id: hex32, version: z.number().int().min(1).optional() })
/** datanets one job may train on together: each is a row source and a provenance line */
export const MAX_JOB_DATANETS = 8

export const TrainJobRequestSchema = z.strictObject({
  model: z.string().min(1).max(128),
  datanet: DatanetRef,
  /** further datanets trained on with `datanet` (their rows follow its rows; the record names all) */
  moreDatanets: z
    .array(DatanetRef)
    .max(MAX_JOB_DATANETS - 1)
    .optional(),
  steps: z.number().int().min(1).max(MAX_REMOTE_STEPS),
  lr: z.number().gt(0).max(1),
  optimizer: z.enum(['sgd', 'adamw']),
  weightDecay: z.number().min(0).max(1).optional(),
  rank: z.number().int().min(1).max(64).optional(),
  alpha: z.number().gt(0).max(1024).optional(),
  targets: z.array(z.enum(PROJECTIONS)).min(1).max(PROJECTIONS.length).optional(),
  batch: z.number().int().min(1).max(64).optional(),
  seqLen: z.number().int().min(2).max(4096).optional(),
  warmup: z.number().int().min(0).max(MAX_REMOTE_STEPS).optional(),
  schedule: z.enum(SCHEDULES).optional(),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
})
export type TrainJobRequest = z.infer<typeof TrainJobRequestSchema>

const Frame = z.discriminatedUnion('t', [
  z.strictObject({
    t: z.literal('progress'),
    step: z.number().int().min(0),
    steps: z.number().int().min(1),
    loss: z.number()
  }),
  z.strictObject({
    t: z.literal('done'),
    cid: z.string().min(1).max(200),
    record: z.string().max(MAX_TRAIN_FRAME_BYTES)
  }),
  z.strictObject({ t: z.literal('error'), code: z.string().max(64), message: z.string().max(2000) })
])
type Frame = z.infer<typeof Frame>

/** What serves the jobs: trains and returns the adapter's CID and signed record. */
export interface TrainingProvider {
  train(
    req: TrainJobRequest,
    onStep: (step: number, loss: number) => void,
    signal: AbortSignal
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
  logger?: Logger
}

const enc = (f: Frame) => new TextEncoder().encode(JSON.stringify(f))

export class TrainService {
  readonly #c: TrainServiceComponents
  readonly #log: Logger
  #busy = false
  #started = false

  constructor(c: TrainServiceComponents) {
    this.#c = c
    this.#log = c.logger ?? silentLogger
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
    const signal = AbortSignal.timeout(TRAIN_TIMEOUT_MS)
    const send = (f: Frame) => lp.write(enc(f), { signal })
    try {
      const raw = (await lp.read({ signal })).subarray()
      let json: unknown
      try {
        json = JSON.parse(new TextDecoder().decode(raw))
      } catch {
        await send({ t: 'error', code: 'TRAINING_INPUT_INVALID', message: 'the request frame is not JSON' })
        return
      }
      const parsed = TrainJobRequestSchema.safeParse(json)
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
      // one job at a time: training takes every core this node gives its runtime
      if (this.#busy) {
        await send({ t: 'error', code: 'BUSY', message: 'this node is training another job; try later' })
        return
      }
      this.#busy = true
      try {
        const req = parsed.data
        const r = await provider.train(
          req,
          (step, loss) => {
            // a client that went away fails the write; the job finishes and its result is kept
            send({ t: 'progress', step, steps: req.steps, loss }).catch(() => {})
          },
          signal
        )
        await send({ t: 'done', cid: r.cid, record: JSON.stringify(r.record) })
      } finally {
        this.#busy = false
      }
    } catch (err) {
      const e = err as { code?: string; message?: string }
      this.#log.warn('training job failed', { peer: connection.remotePeer.toString(), error: e.message })
      await send({
        t: 'error',
        code: typeof e.code === 'string' ? e.code : 'TRAINING_FAILED',
        message: String(e.message ?? err).slice(0, 2000)
      }).catch(() => {})
    } finally {
      await stream.close().catch(() => {})
    }
  }
}

export interface TrainJobResult {
  cid: string
  record: SignedTrainingRecord
}

/** Sends a job to `peer`, reports progress, and checks the result before returning it. */
export async function requestTraining(
  host: ProtocolHost,
  peer: PeerId,
  req: TrainJobRequest,
  opts: { onProgress?: (p: { step: number; steps: number; loss: number }) => void; signal?: AbortSignal } = {}
): Promise<TrainJobResult> {
  const request = parseWith(TrainJobRequestSchema, req, {
    at: 'training request',
    error: (i) => new TrainingJobError('TRAINING_FAILED', `training request ${i.field}: ${i.problem}`)
  })
  const signal = opts.signal ?? AbortSignal.timeout(TRAIN_TIMEOUT_MS)
  let stream: Stream
  try {
    stream = await host.dialProtocol(peer, TRAIN_PROTOCOL, { signal, runOnLimitedConnection: true })
  } catch (err) {
    const e = err as Error
    if (e.name === 'UnsupportedProtocolError' || /protocol selection failed|not supported/i.test(e.message))
      throw new TrainingJobError(
        'TRAINING_NOT_OFFERED',
        `peer ${peer} does not offer training (${TRAIN_PROTOCOL})`
      )
    throw err
  }
  const lp = framed(stream, MAX_TRAIN_FRAME_BYTES)
  try {
    await lp.write(new TextEncoder().encode(JSON.stringify(request)), { signal })
    for (;;) {
      const raw = (await lp.read({ signal })).subarray()
      let json: unknown
      try {
        json = JSON.parse(new TextDecoder().decode(raw))
      } catch {
        throw new TrainingJobError('TRAINING_FAILED', `peer ${peer} sent a frame that is not JSON`)
      }
      const f = parseWith(Frame, json, {
        at: 'training frame',
        error: (i) =>
          new TrainingJobError(
            'TRAINING_FAILED',
            `peer ${peer} sent a malformed frame: ${i.field}: ${i.problem}`
          )
      })
      if (f.t === 'progress') {
        opts.onProgress?.({ step: f.step, steps: f.steps, loss: f.loss })
        continue
      }
      if (f.t === 'error')
        throw new TrainingJobError(
          f.code === 'TRAINING_NOT_OFFERED' ? 'TRAINING_NOT_OFFERED' : 'TRAINING_FAILED',
          `peer ${peer} refused or failed the job: ${f.code}: ${f.message}`,
          { remoteCode: f.code }
        )
      const record = JSON.parse(f.record) as SignedTrainingRecord
      if (record.signer !== peer.toString() || !(await verifyTrainingRecord(record)))
        throw new TrainingJobError('TRAINING_FAILED', `the training record is not signed by ${peer}`)
      if (record.body.adapterCid !== f.cid)
        throw new TrainingJobError(
          'TRAINING_FAILED',
          `the record describes ${record.body.adapterCid}, not ${f.cid}`
        )
      const asked = [request.datanet, ...(request.moreDatanets ?? [])]
      const named = record.body.datanets
      if (
        named.length !== asked.length ||
        asked.some(
          (a, i) => named[i]!.id !== a.id || (a.version !== undefined && named[i]!.version !== a.version)
        )
      )
        throw new TrainingJobError(
          'TRAINING_FAILED',
          'the record does not name the datanet version asked for'
        )
      return { cid: f.cid, record }
    }
  } finally {
    await stream.close().catch(() => {})
  }
}
