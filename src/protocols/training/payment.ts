// The trainer's side of a paid training job, with the inference path's protections
// (docs/THREATS.md): before any work the client's voucher is checked and the job's worst case
// (its budget of trained tokens at the node's training price) reserved against the channel and
// the client's escrow at this node, its job id used up (C2, H1); each step's tokens are recorded
// as owed before its progress frame goes out, so a client that hangs up still owes what was
// trained (H2, T1); the job is settled at exactly ceil(trainedTokens × price / 1000) before the
// result goes out. The channel is (client, node, adapterId 0): the trained adapter's id is not
// known when the voucher is signed (docs/TRAINING.md "Who gets a training payment").
import { zeroHash } from 'viem'
import { signTerms, termsJobId, voucherFromJson, voucherHash } from '../../chain/eip712.ts'
import { codeOf } from '../../common/errors.ts'
import type { Hex } from '../../crypto/hash.ts'
import type { SignedTrainingRecord } from '../../runtime/training/record.ts'
import type { PaymentGate } from '../infer/gates.ts'
import { amountDueFor, type OperatorSigner } from '../infer/receipt.ts'
import { PAYMENT_REASONS, type PaymentTerms } from '../infer/terms.ts'
import {
  type PaymentStatement,
  type PaymentStatementBody,
  statementSigningBytes,
  TrainingJobError,
  type TrainWireRequest
} from './codec.ts'

/** The adapterId of a training payment's channel: none (the base-model channel). */
export const TRAINING_ADAPTER_ID: Hex = zeroHash

export interface TrainPaymentContext {
  gate: PaymentGate
  operator: OperatorSigner
  peerId: string
  signPeer(data: Uint8Array): Uint8Array | Promise<Uint8Array>
  /** wei per 1k trained tokens */
  price: bigint
}

/** A refusal that carries the node's signed terms, so the client can sign for them and resend. */
export class TrainPaymentError extends TrainingJobError {
  readonly terms: PaymentTerms
  constructor(message: string, terms: PaymentTerms) {
    super('PAYMENT_REQUIRED', message, { payment: terms })
    this.terms = terms
  }
}

export interface PaidTraining {
  /** the largest trained-token count the reservation covers */
  maxTokens: number
  /** records `tokens` trained tokens as owed: call before telling the client about them */
  delivered(tokens: number): Promise<void>
  /** the job finished: settle it at its trained tokens and sign the statement the client gets */
  finish(r: { cid: string; record: SignedTrainingRecord }): Promise<PaymentStatement>
  /** any other end: what was trained (recorded by delivered) is owed */
  end(): Promise<void>
}

/** Opens the payment of a job, or returns undefined for a free one; throws TrainPaymentError. */
export async function openTrainingPayment(
  ctx: TrainPaymentContext,
  req: TrainWireRequest
): Promise<PaidTraining | undefined> {
  const price = ctx.price
  if (price === 0n) return undefined
  if (req.jobId === undefined || req.budget === undefined)
    throw new TrainingJobError(
      'TRAINING_FAILED',
      `this node charges ${price} wei per 1k trained tokens: a job needs a jobId and budget.maxTokens (openlora train --max-tokens N --pay)`,
      { remoteCode: 'TRAINING_INPUT_INVALID' }
    )
  const jobId = req.jobId
  const maxTokens = req.budget.maxTokens
  const maxAmountDue = BigInt(amountDueFor(0, maxTokens, price.toString()))
  const domain = ctx.gate.domain
  const refuse = async (reason: PaymentTerms['reason'], message: string) => {
    const terms = {
      operator: ctx.operator.address,
      pricePer1kTokens: price.toString(),
      maxAmountDue: maxAmountDue.toString(),
      chainId: domain.chainId,
      settlement: domain.settlement,
      jobId
    }
    const signature = await signTerms(ctx.operator, domain, {
      ...terms,
      jobId: termsJobId(jobId),
      pricePer1kTokens: price,
      maxAmountDue
    })
    return new TrainPaymentError(message, { reason, ...terms, signature })
  }
  if (req.voucher === undefined)
    throw await refuse(
      'VOUCHER_MISSING',
      `this node charges ${price} wei per 1k trained tokens; send a voucher to operator ${ctx.operator.address}`
    )
  const t = req.terms
  if (
    t &&
    (t.operator.toLowerCase() !== ctx.operator.address.toLowerCase() || BigInt(t.pricePer1kTokens) !== price)
  )
    throw await refuse(
      'TERMS_MISMATCH',
      `the request accepts ${t.pricePer1kTokens} wei per 1k trained tokens for operator ${t.operator}; this node charges ${price} for operator ${ctx.operator.address}`
    )
  let voucher: ReturnType<typeof voucherFromJson>
  let job: Awaited<ReturnType<PaymentGate['openJob']>>
  try {
    voucher = voucherFromJson(req.voucher)
    job = await ctx.gate.openJob(voucher, {
      jobId,
      adapterId: TRAINING_ADAPTER_ID,
      maxAmountDue,
      promptTokens: 0,
      pricePer1kTokens: price
    })
  } catch (err) {
    const reason = codeOf(err)
    if (reason === undefined || !PAYMENT_REASONS.includes(reason as never)) throw err
    throw await refuse(reason as PaymentTerms['reason'], (err as Error).message)
  }
  const hash = voucherHash(domain, voucher)
  return {
    maxTokens,
    delivered: (n) => job.delivered(n),
    async finish({ cid, record }) {
      const trained = record.body.data.trainedTokens
      const body: PaymentStatementBody = {
        v: 1,
        jobId,
        peerId: ctx.peerId,
        operator: ctx.operator.address,
        adapterCid: cid,
        trainedTokens: trained,
        pricePer1kTokens: price.toString(),
        amountDue: amountDueFor(0, trained, price.toString()),
        voucher: hash
      }
      const signature = Buffer.from(await ctx.signPeer(statementSigningBytes(body))).toString('base64')
      const statement = { body, signature }
      // stored before the client sees the result (docs/CHAIN.md)
      await job.finish({ amountDue: BigInt(body.amountDue), receipt: { training: statement } })
      return statement
    },
    end: () => job.end()
  }
}
