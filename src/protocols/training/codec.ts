// Wire schemas of /openlora/train/1.0.0 (length-prefixed JSON frames, each size-limited and
// zod-checked on both sides) and the training payment statement a paid job ends with.
//
// The request is the job (TrainJobRequestSchema: what the gateway's training routes take too) plus
// the optional payment fields added for paid jobs: `jobId`, `budget.maxTokens` (the most trained
// tokens the client pays for), `voucher` and the accepted `terms`. A node that predates them
// refuses a request carrying them (strict schema), so a client sends them only to a node whose
// advert names a price or that asked for payment.
import { OpenLoraError } from '../../common/errors.ts'
import { anyAddress, decimalString, hexBytes, z } from '../../common/schema.ts'
import { encodeCanonical } from '../../crypto/cbor.ts'
import { LORA_TARGET_NAMES } from '../../runtime/model/families/types.ts'
import { SCHEDULES } from '../../runtime/training/schedule.ts'
import { WEIGHT_FORMATS, type WeightFormat } from '../../runtime/weight-format.ts'
import { AcceptedTermsSchema, PaymentTermsSchema } from '../infer/terms.ts'
import { MAX_REMOTE_STEPS, MAX_TRAIN_FRAME_BYTES } from './constants.ts'

export class TrainingJobError extends OpenLoraError<
  'TRAINING_NOT_OFFERED' | 'TRAINING_FAILED' | 'PAYMENT_REQUIRED' | 'PAYMENT_REFUSED'
> {}

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
  /** projections or a family's own module names (Phi-3's qkv_proj, BLOOM's query_key_value, …) */
  targets: z.array(z.enum(LORA_TARGET_NAMES)).min(1).max(LORA_TARGET_NAMES.length).optional(),
  batch: z.number().int().min(1).max(64).optional(),
  seqLen: z.number().int().min(2).max(4096).optional(),
  warmup: z.number().int().min(0).max(MAX_REMOTE_STEPS).optional(),
  schedule: z.enum(SCHEDULES).optional(),
  /** the frozen base as serving's infer.weightFormat builds it (default fp32; docs/TRAINING.md) */
  baseFormat: z.enum(WEIGHT_FORMATS as unknown as [WeightFormat, ...WeightFormat[]]).optional(),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 31 - 1)
})
export type TrainJobRequest = z.infer<typeof TrainJobRequestSchema>

/** A budget in trained tokens: the node trains the steps that fit and charges what it trained. */
export const TrainBudgetSchema = z.strictObject({
  /** the most trained tokens (scored positions, summed over steps) the client pays for */
  maxTokens: z.int().min(1).max(1e12)
})
export type TrainBudget = z.output<typeof TrainBudgetSchema>

/** A voucher in its wire form (docs/INTERFACES.md); the chain layer checks its fields. */
const MAX_VOUCHER_JSON = 1024
const WireVoucherSchema = z
  .record(z.string(), z.unknown())
  .refine((v) => JSON.stringify(v).length <= MAX_VOUCHER_JSON, {
    error: `a voucher must be at most ${MAX_VOUCHER_JSON} bytes of JSON`
  })

export const TrainWireRequestSchema = z.strictObject({
  ...TrainJobRequestSchema.shape,
  /** 16 random bytes; single use per payment channel (C2) */
  jobId: hexBytes(16).optional(),
  budget: TrainBudgetSchema.optional(),
  voucher: WireVoucherSchema.optional(),
  terms: AcceptedTermsSchema.optional()
})
export type TrainWireRequest = z.infer<typeof TrainWireRequestSchema>

/**
 * What a paid job cost, signed by the trainer's peer key over canonical CBOR of
 * `{ domain: 'openlora/training-payment/1', body }`: the evidence a client keeps (THREATS.md T2).
 * `amountDue = ceil(trainedTokens × pricePer1kTokens / 1000)`, the inference rounding.
 */
export const PaymentStatementBodySchema = z.strictObject({
  v: z.literal(1),
  jobId: hexBytes(16),
  peerId: z.string().min(1).max(128),
  operator: anyAddress,
  adapterCid: z.string().min(1).max(200),
  trainedTokens: z.int().min(0).max(1e12),
  pricePer1kTokens: decimalString,
  amountDue: decimalString,
  /** the EIP-712 hash of the voucher it was paid with */
  voucher: hexBytes(32)
})
export type PaymentStatementBody = z.output<typeof PaymentStatementBodySchema>
export const PaymentStatementSchema = z.strictObject({
  body: PaymentStatementBodySchema,
  /** Ed25519 by body.peerId, base64 */
  signature: z.string().max(200)
})
export type PaymentStatement = z.output<typeof PaymentStatementSchema>

export const PAYMENT_STATEMENT_DOMAIN = 'openlora/training-payment/1'
export const statementSigningBytes = (body: PaymentStatementBody): Uint8Array =>
  encodeCanonical({ domain: PAYMENT_STATEMENT_DOMAIN, body })

export const TrainFrameSchema = z.discriminatedUnion('t', [
  z.strictObject({
    t: z.literal('progress'),
    step: z.number().int().min(0),
    steps: z.number().int().min(1),
    loss: z.number(),
    /** trained tokens so far (paid jobs: recorded as owed before this frame was sent) */
    tokens: z.int().min(0).optional()
  }),
  z.strictObject({
    t: z.literal('done'),
    cid: z.string().min(1).max(200),
    record: z.string().max(MAX_TRAIN_FRAME_BYTES),
    payment: PaymentStatementSchema.optional()
  }),
  z.strictObject({
    t: z.literal('error'),
    code: z.string().max(64),
    message: z.string().max(2000),
    /** with PAYMENT_REQUIRED: the node's terms, signed by its operator for this job id (H4) */
    payment: PaymentTermsSchema.optional()
  })
])
export type TrainFrame = z.infer<typeof TrainFrameSchema>

export const encodeTrainFrame = (f: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(f))
