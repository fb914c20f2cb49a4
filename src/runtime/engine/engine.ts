// The serving engine: one step loop per base model (runner.ts), requests checked against the
// node's limits before they take a place in the queue, and results streamed as TokenEvents.
import { randomInt } from 'node:crypto'
import { InvalidParametersError } from '../../common/errors.ts'
import { type Logger, silentLogger } from '../../common/log.ts'
import { messageOf, parseWith } from '../../common/schema.ts'
import type { ResponseFormatSpec } from '../constrain/format.ts'
import type { SchemaNode } from '../constrain/json-schema.ts'
import { compileFormat, JsonConstraint, Vocabulary } from '../constrain/token-mask.ts'
import { GenerationParamsSchema } from '../generate.ts'
import { createRng } from '../sampling.ts'
import { EventChannel } from './channel.ts'
import { type EngineLimits, resolveLimits } from './config.ts'
import { EngineError, LimitExceededError } from './errors.ts'
import {
  type Job,
  ModelRunner,
  type RunnerAdapters,
  type RunnerCounters,
  type RunnerModel,
  type Sampler,
  zeroCounters
} from './runner.ts'
import { TextTracker } from './text.ts'
import type { ChatMessage, GenerateRequest, GenerationParams, TokenEvent } from './types.ts'

export interface EngineTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): ArrayLike<number>
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string
  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): string
}

/** What the engine needs of a LoadedModel (src/runtime/model, INTERFACES.md). Without a
 * tokenizer the model takes promptIds only and events carry no text. */
export interface EngineModel extends RunnerModel {
  readonly tokenizer?: EngineTokenizer
  readonly config: { readonly vocabSize: number; readonly eosTokenIds: readonly number[] }
}

export interface EngineInit {
  limits?: Partial<EngineLimits>
}

export interface EngineComponents {
  models: { model: EngineModel; adapters?: RunnerAdapters }[]
  sample: Sampler
  logger?: Logger
  /** called after every engine step with its model and the rows (sequences) it ran */
  onStep?: (modelId: string, rows: number) => void
}

export interface EngineMetrics extends RunnerCounters {
  queued: number
  running: number
  maxBatch: number
  maxQueued: number
}

// Bounds on what a request may carry, so a decoded network request cannot make the engine do
// unbounded work before it is even queued.
const MAX_PROMPT_CHARS = 1 << 20
const MAX_MESSAGES = 256
const MAX_PROMPT_IDS = 1 << 20

export class Engine {
  readonly limits: EngineLimits
  private readonly runners = new Map<string, ModelRunner>()
  private readonly models = new Map<string, EngineModel>()
  private readonly log: Logger
  private nextId = 1
  /** per model, built on the first structured-output request (walks the whole vocabulary once) */
  private readonly vocabularies = new Map<string, Vocabulary>()
  /** compiled response formats by their text, so a client repeating a schema compiles it once */
  private readonly formats = new Map<string, SchemaNode>()

  constructor(init: EngineInit, components: EngineComponents) {
    this.limits = resolveLimits(init.limits)
    this.log = (components.logger ?? silentLogger).child('engine')
    for (const { model, adapters } of components.models) {
      if (this.runners.has(model.modelId))
        throw new InvalidParametersError(`model ${model.modelId} is given twice; modelIds must be unique`)
      this.models.set(model.modelId, model)
      // a model loaded with fewer rows or positions than the engine's limits bounds them: a
      // request the engine accepted must never fail inside a shared step
      const limits = {
        ...this.limits,
        maxBatch: Math.min(this.limits.maxBatch, model.maxBatch ?? Number.POSITIVE_INFINITY),
        maxSeqLen: Math.min(this.limits.maxSeqLen, model.maxSeqLen ?? Number.POSITIVE_INFINITY)
      }
      const onStep = components.onStep
      this.runners.set(
        model.modelId,
        new ModelRunner(
          model,
          adapters,
          components.sample,
          limits,
          this.log,
          onStep && ((rows) => onStep(model.modelId, rows))
        )
      )
    }
  }

  start(): void {
    for (const r of this.runners.values()) r.start()
  }

  async stop(): Promise<void> {
    await Promise.all([...this.runners.values()].map((r) => r.stop()))
  }

  modelIds(): string[] {
    return [...this.runners.keys()]
  }

  /**
   * Checks and queues a request. Throws at once (before any iteration) for a bad request
   * (INVALID_PARAMETERS, LIMIT_EXCEEDED, MODEL_NOT_FOUND) or a full queue (BUSY, with
   * retryAfterMs); adapter and runtime failures surface from the iterator. Aborting `signal`, or
   * leaving the loop early, ends the request and frees its row and slot.
   */
  generate(req: GenerateRequest): AsyncIterable<TokenEvent> {
    const submittedAt = performance.now()
    const runner = this.runners.get(req?.model)
    const model = this.models.get(req?.model)
    if (runner === undefined || model === undefined)
      throw new EngineError(
        'MODEL_NOT_FOUND',
        `model "${String(req?.model).slice(0, 100)}" is not served here; served: ${this.modelIds().join(', ')}`,
        {
          model: req?.model
        }
      )
    const params = this.checkParams(req.params, model)
    const adapter = req.adapter ?? null
    if (adapter !== null && (typeof adapter !== 'string' || adapter.length > 200))
      throw new InvalidParametersError('adapter must be a CID string or null')
    const promptIds = this.promptIds(req, model)
    const maxSeqLen = runner.limits.maxSeqLen
    if (promptIds.length + params.maxNewTokens > maxSeqLen)
      throw new LimitExceededError(
        'prompt tokens + maxNewTokens',
        promptIds.length + params.maxNewTokens,
        maxSeqLen,
        'engine.maxSeqLen: the KV cache holds this many positions per sequence'
      )
    const stopIds = new Set([...model.config.eosTokenIds, ...(params.stopTokenIds ?? [])])
    const constraint = params.responseFormat ? this.constraintFor(params.responseFormat, model) : undefined
    let job: Job | undefined
    const channel = new EventChannel<TokenEvent>(() => job !== undefined && runner.cancel(job))
    job = {
      id: this.nextId++,
      phase: 'queued',
      promptIds,
      prefilled: 0,
      nextToken: -1,
      seq: -1,
      slot: 0,
      adapter,
      params,
      stopIds,
      ...(constraint ? { constraint } : {}),
      rng: createRng(params.seed ?? randomInt(2 ** 32 - 1)),
      channel,
      text: new TextTracker(
        model.tokenizer ? (ids) => model.tokenizer!.decode(ids) : () => '',
        params.stopStrings
      ),
      outputIds: [],
      inStep: false,
      cancelRequested: false,
      submittedAt
    }
    const queued = job
    const signal = req.signal
    if (signal?.aborted) {
      runner.submit(queued)
      runner.cancel(queued)
      return channel
    }
    if (signal !== undefined) {
      const onAbort = () => runner.cancel(queued)
      signal.addEventListener('abort', onAbort, { once: true })
      // drop the listener when the request ends so long-lived signals do not collect them
      queued.onFinished = () => signal.removeEventListener('abort', onAbort)
    }
    try {
      runner.submit(queued)
    } catch (err) {
      queued.onFinished?.()
      throw err
    }
    this.log.debug('request queued', {
      job: queued.id,
      model: req.model,
      adapter,
      promptTokens: promptIds.length
    })
    return channel
  }

  metrics(): EngineMetrics {
    const sum: EngineMetrics = {
      ...zeroCounters(),
      queued: 0,
      running: 0,
      maxBatch: 0,
      maxQueued: this.limits.maxQueued
    }
    for (const r of this.runners.values()) {
      for (const k of Object.keys(r.counters) as (keyof RunnerCounters)[]) sum[k] += r.counters[k]
      sum.queued += r.queued
      sum.running += r.active
      sum.maxBatch += r.limits.maxBatch
    }
    return sum
  }

  /** Queue and batch of each model's runner (the per-model gauges of docs/METRICS.md). */
  loadByModel(): { model: string; queued: number; running: number; maxBatch: number }[] {
    return [...this.runners].map(([model, r]) => ({
      model,
      queued: r.queued,
      running: r.active,
      maxBatch: r.limits.maxBatch
    }))
  }

  private constraintFor(format: ResponseFormatSpec, model: EngineModel): JsonConstraint {
    const tok = model.tokenizer
    if (tok === undefined)
      throw new InvalidParametersError(
        `model ${model.modelId} has no tokenizer, so output cannot be constrained to JSON`
      )
    const key = format.type === 'json_schema' ? format.schema : ''
    let root = this.formats.get(key)
    if (root === undefined) {
      try {
        root = compileFormat(format)
      } catch (err) {
        throw new InvalidParametersError(`params.responseFormat: ${(err as Error).message}`, {
          field: 'responseFormat'
        })
      }
      if (this.formats.size >= 64) this.formats.delete(this.formats.keys().next().value!)
      this.formats.set(key, root)
    }
    let vocab = this.vocabularies.get(model.modelId)
    if (vocab === undefined) {
      vocab = new Vocabulary(tok, model.config.vocabSize)
      this.vocabularies.set(model.modelId, vocab)
    }
    return new JsonConstraint(root, vocab, model.config.eosTokenIds)
  }

  private promptIds(req: GenerateRequest, model: EngineModel): number[] {
    const given = [req.prompt, req.promptIds, req.messages].filter((x) => x !== undefined && x !== null)
    if (given.length !== 1)
      throw new InvalidParametersError('give exactly one of prompt, promptIds or messages', {
        given: given.length
      })
    let ids: number[]
    const tok = model.tokenizer
    if (tok === undefined && req.promptIds == null)
      throw new InvalidParametersError(`model ${model.modelId} has no tokenizer; send promptIds`)
    if (req.promptIds !== undefined && req.promptIds !== null) {
      if (!Array.isArray(req.promptIds) || req.promptIds.length > MAX_PROMPT_IDS)
        throw new InvalidParametersError(`promptIds must be an array of at most ${MAX_PROMPT_IDS} token ids`)
      ids = req.promptIds
    } else if (req.prompt !== undefined && req.prompt !== null) {
      if (typeof req.prompt !== 'string' || req.prompt.length > MAX_PROMPT_CHARS)
        throw new InvalidParametersError(`prompt must be a string of at most ${MAX_PROMPT_CHARS} characters`)
      ids = Array.from(tok!.encode(req.prompt))
    } else {
      const msgs = req.messages
      if (!Array.isArray(msgs) || msgs.length === 0 || msgs.length > MAX_MESSAGES)
        throw new InvalidParametersError(`messages must be 1 to ${MAX_MESSAGES} chat messages`)
      let chars = 0
      for (const m of msgs) {
        if (!['system', 'user', 'assistant'].includes(m?.role) || typeof m.content !== 'string')
          throw new InvalidParametersError('each message needs role system|user|assistant and string content')
        chars += m.content.length
      }
      if (chars > MAX_PROMPT_CHARS)
        throw new InvalidParametersError(`messages hold ${chars} characters; at most ${MAX_PROMPT_CHARS}`)
      ids = Array.from(
        // the template writes the special tokens itself
        tok!.encode(tok!.applyChatTemplate(msgs, { addGenerationPrompt: true }), { addSpecialTokens: false })
      )
    }
    if (ids.length === 0) throw new InvalidParametersError('the prompt is empty; give at least one token')
    const vocab = model.config.vocabSize
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0 || id >= vocab)
        throw new InvalidParametersError(`prompt token id ${id} is outside the vocabulary [0, ${vocab})`)
    return ids
  }

  private checkParams(p: GenerationParams, model: EngineModel): GenerationParams {
    parseWith(GenerationParamsSchema, p, {
      at: 'params',
      error: (i) => new InvalidParametersError(messageOf(i), { field: i.field, value: i.value })
    })
    const max = this.limits.maxNewTokens
    if (p.maxNewTokens > max)
      throw new LimitExceededError(
        'params.maxNewTokens',
        p.maxNewTokens,
        max,
        'engine.maxNewTokens bounds how long one request holds a row'
      )
    if (p.stopStrings !== undefined && p.stopStrings.length > 0 && model.tokenizer === undefined)
      throw new InvalidParametersError(
        `model ${model.modelId} has no tokenizer, so stopStrings cannot be matched`
      )
    return p
  }
}
