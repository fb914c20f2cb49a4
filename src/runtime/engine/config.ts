// Engine limits: one zod schema states each limit's range and default (with why it is what it
// is); resolveLimits checks a caller's values at start with an error naming the key and the range.
// The node's `infer` config section reuses these fields, so the two never disagree.
import { InvalidParametersError } from '../../common/errors.ts'
import { messageOf, parseWith, z } from '../../common/schema.ts'

export const engineLimitFields = {
  /** KV-cache rows, i.e. sequences decoding together. Must equal the model's maxBatch: the
   * cache is allocated for this many rows up front. Default 8 (a 2-core CPU saturates near 8;
   * the issue-4 benchmark's concurrency). */
  maxBatch: z.int().min(1).max(1024).default(8),
  /** prompt + generated tokens of one sequence; the KV cache is sized for it. Default 2048. */
  maxSeqLen: z
    .int()
    .min(2)
    .max(1 << 20)
    .default(2048),
  /** requests waiting for a row; beyond it generate() throws BUSY so the router can go
   * elsewhere instead of letting clients time out in a line. Default 64 (8 batches deep). */
  maxQueued: z
    .int()
    .min(0)
    .max(1 << 20)
    .default(64),
  /** per request; bounds how long one request holds a row. Default 1024. */
  maxNewTokens: z
    .int()
    .min(1)
    .max(1 << 20)
    .default(1024),
  /** prompt tokens one sequence feeds per step: a long prompt is cut into chunks so running
   * sequences keep decoding while it fills (Sarathi-style chunked prefill). Default 64. */
  prefillChunk: z
    .int()
    .min(1)
    .max(1 << 16)
    .default(64),
  /** tokens in one step over all rows; bounds a step's latency. Default 256. */
  maxStepTokens: z
    .int()
    .min(1)
    .max(1 << 20)
    .default(256)
}

export const EngineLimitsSchema = z
  .strictObject(engineLimitFields)
  .refine((l) => l.maxStepTokens >= l.maxBatch, {
    error: 'maxStepTokens must be at least maxBatch: every decoding row needs one token per step',
    path: ['maxStepTokens']
  })

export type EngineLimits = z.output<typeof EngineLimitsSchema>

export const DEFAULT_LIMITS: EngineLimits = EngineLimitsSchema.parse({})

export function resolveLimits(init: Partial<EngineLimits> = {}): EngineLimits {
  return parseWith(EngineLimitsSchema, init, {
    at: 'engine',
    error: (issue) => new InvalidParametersError(messageOf(issue), { ...issue, key: issue.field })
  })
}
