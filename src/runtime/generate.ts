// Single-request generation straight on a LoadedModel's step(): prefill (in chunks), then one
// decode step per token, sampling per GenerationParams, stopping on eos / stop ids / stop strings /
// max tokens / abort. The serving engine batches many of these; this is the one-request path the
// `openlora generate` command and the correctness tests use.
import { InvalidParametersError } from '../common/errors.ts'
import { z } from '../common/schema.ts'
import { MAX_SCHEMA_CHARS } from './constrain/format.ts'
import { checkSamplingParams, createRng, SamplingParamsSchema, sample } from './sampling.ts'

// Bounds on what a request may carry, so a decoded network request cannot make the engine do
// unbounded work before it is even queued (a stop string is matched against every new token).
export const MAX_STOP_TOKEN_IDS = 64
export const MAX_STOP_STRINGS = 16
export const MAX_STOP_STRING_CHARS = 64

/** What a request may ask of generation; the wire's params (protocols/infer/codec.ts) are this
 * schema with maxNewTokens capped at the frame limit, so the two never disagree. */
export const GenerationParamsSchema = SamplingParamsSchema.extend({
  maxNewTokens: z
    .int()
    .min(1)
    .max(1 << 20),
  seed: z.int().min(0).max(0xffffffff).optional(),
  stopTokenIds: z.array(z.int().min(0).max(0xffffffff)).max(MAX_STOP_TOKEN_IDS).optional(),
  stopStrings: z.array(z.string().min(1).max(MAX_STOP_STRING_CHARS)).max(MAX_STOP_STRINGS).optional(),
  /** structured output: the engine masks tokens so the text parses (src/runtime/constrain) */
  responseFormat: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('json_object') }),
      // the schema as JSON text: the bytes a client wrote are the bytes the server compiles
      z.strictObject({ type: z.literal('json_schema'), schema: z.string().min(2).max(MAX_SCHEMA_CHARS) })
    ])
    .optional()
})
export type GenerationParams = z.output<typeof GenerationParamsSchema>

export type FinishReason = 'stop' | 'length' | 'abort'

export type TokenEvent =
  | { type: 'token'; id: number; text: string; index: number; atMs: number }
  | {
      type: 'done'
      finishReason: FinishReason
      promptIds: number[]
      outputIds: number[]
      text: string
      usage: { promptTokens: number; outputTokens: number }
      timings: { queuedMs: number; firstTokenMs: number; totalMs: number }
    }

/** What generation needs from a model (a LoadedModel fits). */
export interface StepModel {
  readonly config: { vocabSize: number; eosTokenIds: number[] }
  /** positions per sequence; generation stops with 'length' when the sequence is full */
  readonly maxSeqLen?: number
  allocSequence(): number
  freeSequence(seq: number): void
  step(rows: { seq: number; tokens: number[]; slot: number }[]): Promise<Float32Array[]>
}

export interface GenerateInput {
  promptIds: number[]
  params: GenerationParams
  /** adapter slot already written into the model's pools (0 = base model) */
  slot?: number
  signal?: AbortSignal
  /** detokenizer for event text and stop strings; without it text is '' and stop strings are rejected */
  decode?: (ids: number[]) => string
  /** prompt tokens per prefill step (bounds one step's time and memory); default 512 */
  prefillChunk?: number
  /** called once with the logits at the last prompt position */
  onPromptLogits?: (logits: Float32Array) => void
}

const DEFAULT_PREFILL_CHUNK = 512

export async function* generate(model: StepModel, input: GenerateInput): AsyncGenerator<TokenEvent> {
  const started = performance.now()
  const { promptIds, params } = input
  if (!Array.isArray(promptIds) || promptIds.length === 0) {
    throw new InvalidParametersError('the prompt has no tokens; give at least one token id or some text')
  }
  if (!Number.isInteger(params.maxNewTokens) || params.maxNewTokens < 1) {
    throw new InvalidParametersError(`maxNewTokens must be a positive integer, got ${params.maxNewTokens}`, {
      field: 'maxNewTokens'
    })
  }
  checkSamplingParams(params)
  const maxSeqLen = model.maxSeqLen ?? Number.POSITIVE_INFINITY
  if (promptIds.length > maxSeqLen) {
    throw new InvalidParametersError(
      `the prompt has ${promptIds.length} tokens; this model holds ${maxSeqLen} positions per sequence, prompt and output together`,
      { field: 'promptIds', maxSeqLen }
    )
  }
  const stopStrings = (params.stopStrings ?? []).filter((s) => s.length > 0)
  if (stopStrings.length > 0 && !input.decode) {
    throw new InvalidParametersError('stop strings need a tokenizer to detect them in the output text')
  }
  const stopIds = new Set([...model.config.eosTokenIds, ...(params.stopTokenIds ?? [])])
  const rng = createRng(params.seed ?? Math.floor(Math.random() * 2 ** 32))
  const slot = input.slot ?? 0
  const chunk = input.prefillChunk ?? DEFAULT_PREFILL_CHUNK
  const text = new StreamingText(input.decode, stopStrings)
  const outputIds: number[] = []
  let firstTokenMs = 0
  let finishReason: FinishReason = 'length'

  const seq = model.allocSequence()
  try {
    let logits: Float32Array | undefined
    for (let i = 0; i < promptIds.length; i += chunk) {
      if (input.signal?.aborted) break
      ;[logits] = await model.step([{ seq, tokens: promptIds.slice(i, i + chunk), slot }])
    }
    if (logits && !input.signal?.aborted) input.onPromptLogits?.(logits)
    while (logits) {
      if (input.signal?.aborted) {
        finishReason = 'abort'
        break
      }
      const id = sample(logits, params, rng)
      if (stopIds.has(id)) {
        finishReason = 'stop'
        break
      }
      outputIds.push(id)
      const { delta, stopped } = text.update(outputIds)
      const atMs = performance.now() - started
      if (outputIds.length === 1) firstTokenMs = atMs
      yield { type: 'token', id, text: delta, index: outputIds.length - 1, atMs }
      if (stopped) {
        finishReason = 'stop'
        break
      }
      // feeding the token back takes one more position
      if (outputIds.length >= params.maxNewTokens || promptIds.length + outputIds.length > maxSeqLen) break
      ;[logits] = await model.step([{ seq, tokens: [id], slot }])
    }
    if (input.signal?.aborted) finishReason = 'abort'
  } finally {
    model.freeSequence(seq)
  }
  yield {
    type: 'done',
    finishReason,
    promptIds: [...promptIds],
    outputIds,
    text: text.final(outputIds),
    usage: { promptTokens: promptIds.length, outputTokens: outputIds.length },
    timings: { queuedMs: 0, firstTokenMs, totalMs: performance.now() - started }
  }
}

/**
 * Streams the growth of decode(all ids), so characters split over tokens come out whole. Holds
 * back a trailing U+FFFD (incomplete UTF-8) and, with stop strings, the last (longest − 1)
 * characters, so no token event ever shows part of a stop string; on a stop the text is cut
 * just before it.
 */
class StreamingText {
  private readonly decode?: (ids: number[]) => string
  private readonly stops: string[]
  private readonly holdBack: number
  private emitted = 0
  private cut: string | null = null

  constructor(decode: ((ids: number[]) => string) | undefined, stops: string[]) {
    this.decode = decode
    this.stops = stops
    this.holdBack = stops.reduce((m, s) => Math.max(m, s.length - 1), 0)
  }

  update(ids: number[]): { delta: string; stopped: boolean } {
    if (!this.decode) return { delta: '', stopped: false }
    const full = this.decode(ids)
    let stopAt = -1
    for (const s of this.stops) {
      const at = full.indexOf(s, Math.max(0, this.emitted - s.length))
      if (at >= 0 && (stopAt < 0 || at < stopAt)) stopAt = at
    }
    if (stopAt >= 0) {
      this.cut = full.slice(0, stopAt)
      const delta = this.cut.slice(this.emitted)
      this.emitted = this.cut.length
      return { delta, stopped: true }
    }
    let safe = full.length - this.holdBack
    if (full.endsWith('\uFFFD')) safe = Math.min(safe, full.length - 1)
    if (safe <= this.emitted) return { delta: '', stopped: false }
    const delta = full.slice(this.emitted, safe)
    this.emitted = safe
    return { delta, stopped: false }
  }

  final(ids: number[]): string {
    if (this.cut !== null) return this.cut
    return this.decode ? this.decode(ids) : ''
  }
}
