// The client side of /openlora/train/1.0.0: sends a job to a peer, reports progress, and checks
// the result before returning it (the record is the serving peer's, describes the CID, names the
// datanet version asked for). With a payer (`TrainingPayer`, src/client/train-payer.ts) a
// PAYMENT_REQUIRED answer is paid and the job resent with a new job id, and a paid result must
// carry the peer's payment statement: for this job and voucher, the record's trained tokens at
// the accepted price, within the budget (THREATS.md T2).

import { randomBytes } from 'node:crypto'
import type { PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { parseWith } from '../../common/schema.ts'
import type { SignedTrainingRecord } from '../../runtime/training/record.ts'
import type { AcceptedTerms, PaymentTerms } from '../infer/terms.ts'
import { framed } from '../shared/framed.ts'
import type { ProtocolHost } from '../shared/protocol-host.ts'
import {
  encodeTrainFrame,
  type PaymentStatement,
  statementSigningBytes,
  type TrainBudget,
  TrainFrameSchema,
  TrainingJobError,
  type TrainJobRequest,
  TrainJobRequestSchema,
  type TrainWireRequest
} from './codec.ts'
import { MAX_TRAIN_FRAME_BYTES, TRAIN_PROTOCOL, TRAIN_TIMEOUT_MS } from './constants.ts'
import { verifyTrainingRecord } from './record-verify.ts'

export interface TrainJobResult {
  cid: string
  record: SignedTrainingRecord
  /** a paid job's statement (checked) */
  payment?: PaymentStatement
}

/** What pays for training jobs (src/client/train-payer.ts implements it over the JobPayer). */
export interface TrainingPayer {
  /** checks the node's signed terms and signs a voucher for the job's budget */
  voucherForTerms(
    peer: string,
    job: { model: string; maxTokens: number },
    terms: PaymentTerms,
    jobId: string
  ): Promise<{ voucher: Record<string, unknown>; terms: AcceptedTerms }>
  /** the EIP-712 hash a statement paid with this voucher must name */
  hashOf(voucher: Record<string, unknown>): string
  /** why the statement breaks the accepted terms (and the operator is not paid again), or undefined */
  statementMismatch(
    voucher: Record<string, unknown>,
    s: Pick<PaymentStatement['body'], 'operator' | 'pricePer1kTokens' | 'amountDue' | 'trainedTokens'>
  ): string | undefined
  /** the job ended: `amountDue` from a checked statement, else `started` counts its worst case */
  ended(voucher: Record<string, unknown>, outcome: { amountDue?: bigint; started: boolean }): Promise<void>
}

export interface RequestTrainingOptions {
  onProgress?: (p: { step: number; steps: number; loss: number; tokens?: number }) => void
  signal?: AbortSignal
  /** the most trained tokens to pay for; needed by nodes that charge */
  budget?: TrainBudget
  payer?: TrainingPayer
}

const newJobId = () => `0x${randomBytes(16).toString('hex')}` as const

/** Sends a job to `peer`, reports progress, and checks the result before returning it. */
export async function requestTraining(
  host: ProtocolHost,
  peer: PeerId,
  req: TrainJobRequest,
  opts: RequestTrainingOptions = {}
): Promise<TrainJobResult> {
  const request = parseWith(TrainJobRequestSchema, req, {
    at: 'training request',
    error: (i) => new TrainingJobError('TRAINING_FAILED', `training request ${i.field}: ${i.problem}`)
  })
  const payer = opts.payer
  let pay: { voucher: Record<string, unknown>; terms: AcceptedTerms } | undefined
  for (let attempt = 0; ; attempt++) {
    const jobId = newJobId()
    const wire: TrainWireRequest = {
      ...request,
      ...(opts.budget ? { budget: opts.budget, jobId } : {}),
      ...(pay ? { voucher: pay.voucher, terms: pay.terms } : {})
    }
    let started = false
    try {
      const r = await sendOnce(host, peer, wire, {
        ...opts,
        onProgress: (p) => {
          started = true
          opts.onProgress?.(p)
        }
      })
      if (pay && payer) {
        const why = checkStatement(r, wire, pay.voucher, payer, peer)
        if (why) {
          // the node may claim up to the reservation: count it spent (its evidence is the statement)
          await payer.ended(pay.voucher, { started: true })
          throw new TrainingJobError(
            'PAYMENT_REFUSED',
            `the trainer's payment statement is refused: ${why}`,
            {
              statement: r.payment ?? null
            }
          )
        }
        await payer.ended(pay.voucher, { amountDue: BigInt(r.payment!.body.amountDue), started })
      }
      return r
    } catch (err) {
      if (pay && payer && !(err instanceof TrainingJobError && err.code === 'PAYMENT_REFUSED'))
        await payer.ended(pay.voucher, { started })
      const terms = (err as TrainingJobError).data?.payment as PaymentTerms | undefined
      if (!payer || !terms || !opts.budget || attempt >= 2 || !RESIGNABLE.has(terms.reason)) throw err
      pay = await payer.voucherForTerms(
        peer.toString(),
        { model: request.model, maxTokens: opts.budget.maxTokens },
        terms,
        jobId
      )
    }
  }
}

/** Refusals a new voucher can fix (as the infer client's). */
const RESIGNABLE = new Set([
  'VOUCHER_MISSING',
  'UNDERPAID',
  'NOT_INCREASING',
  'WRONG_CHANNEL',
  'TERMS_MISMATCH'
])

function checkStatement(
  r: TrainJobResult,
  wire: TrainWireRequest,
  voucher: Record<string, unknown>,
  payer: TrainingPayer,
  peer: PeerId
): string | undefined {
  const s = r.payment
  if (!s) return 'a paid job ended without a payment statement'
  const b = s.body
  if (b.peerId !== peer.toString()) return `the statement is by ${b.peerId}, not ${peer}`
  if (b.jobId !== wire.jobId) return `the statement is for job ${b.jobId}, not ${wire.jobId}`
  if (b.adapterCid !== r.cid) return `the statement is for ${b.adapterCid}, not ${r.cid}`
  if (b.voucher !== payer.hashOf(voucher)) return 'the statement names another voucher'
  if (b.trainedTokens !== r.record.body.data.trainedTokens)
    return `the statement charges ${b.trainedTokens} trained tokens, the record trained ${r.record.body.data.trainedTokens}`
  if (wire.budget && b.trainedTokens > wire.budget.maxTokens)
    return `the statement charges ${b.trainedTokens} trained tokens, above the budget of ${wire.budget.maxTokens}`
  return payer.statementMismatch(voucher, b)
}

async function sendOnce(
  host: ProtocolHost,
  peer: PeerId,
  request: TrainWireRequest,
  opts: RequestTrainingOptions
): Promise<TrainJobResult> {
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
  const onAbort = () => stream.abort(new Error('cancelled by the client'))
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    await lp.write(encodeTrainFrame(request), { signal })
    for (;;) {
      const raw = (await lp.read({ signal })).subarray()
      let json: unknown
      try {
        json = JSON.parse(new TextDecoder().decode(raw))
      } catch {
        throw new TrainingJobError('TRAINING_FAILED', `peer ${peer} sent a frame that is not JSON`)
      }
      const f = parseWith(TrainFrameSchema, json, {
        at: 'training frame',
        error: (i) =>
          new TrainingJobError(
            'TRAINING_FAILED',
            `peer ${peer} sent a malformed frame: ${i.field}: ${i.problem}`
          )
      })
      if (f.t === 'progress') {
        opts.onProgress?.({ step: f.step, steps: f.steps, loss: f.loss, tokens: f.tokens })
        continue
      }
      if (f.t === 'error')
        throw new TrainingJobError(
          f.code === 'TRAINING_NOT_OFFERED' || f.code === 'PAYMENT_REQUIRED' ? f.code : 'TRAINING_FAILED',
          `peer ${peer} refused or failed the job: ${f.code}: ${f.message}`,
          { remoteCode: f.code, ...(f.payment ? { payment: f.payment } : {}) }
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
      if (f.payment && !(await verifyStatement(f.payment)))
        throw new TrainingJobError('TRAINING_FAILED', `the payment statement is not signed by ${peer}`)
      return { cid: f.cid, record, ...(f.payment ? { payment: f.payment } : {}) }
    }
  } finally {
    signal.removeEventListener('abort', onAbort)
    await stream.close().catch(() => {})
  }
}

/** True when the statement's signature is its peer's over its body. */
export async function verifyStatement(s: PaymentStatement): Promise<boolean> {
  try {
    const pub = peerIdFromString(s.body.peerId).publicKey
    if (!pub) return false
    return await pub.verify(statementSigningBytes(s.body), new Uint8Array(Buffer.from(s.signature, 'base64')))
  } catch {
    return false
  }
}
