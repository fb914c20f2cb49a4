// A base model loaded into one ONNX Runtime session, with a KV cache built for continuous
// batching and LoRA slot pools. See graph/decoder.ts for the graph's inputs and outputs.
//
// KV cache: per layer one key and one value buffer of [maxBatch, kvHeads, maxSeqLen, Dp] floats
// (SharedArrayBuffers); a sequence owns one row. Each pass hands ORT a contiguous range of rows as
// zero-copy input views and gets back only the new positions' keys and values, which the runner
// writes into the rows (graph/decoder.ts says why not GroupQueryAttention's in-place mode). How a
// step's rows become passes (first prompts batched, all 1-token rows batched, later prefill
// chunks alone) is step-plan.ts.
import { InvalidParametersError, OpenLoraError } from '../../common/errors.ts'
import type { Logger } from '../../common/log.ts'
import type { Hex } from '../../crypto/hash.ts'
import {
  type ExecutionProviderName,
  resolveExecutionProvider,
  sessionProviders
} from '../execution-provider.ts'
import { loraA, loraB, ROPE_COS, ROPE_COS_LOCAL, ROPE_SIN, ROPE_SIN_LOCAL } from '../graph/decoder.ts'
import type { NativeSetup } from '../native/decoder.ts'
import type { ModelConfig } from './config.ts'
import { nextKvCapacity } from './kv-layout.ts'
import type { ModelLayout } from './layout.ts'
import { SlotPoolSet, type SlotPools } from './pools.ts'
import { rotaryTables } from './rope.ts'
import { type Runner, type RunnerSetup, SessionRunner, sharedFloats } from './runner.ts'
import { planPasses } from './step-plan.ts'
import { WorkerRunner } from './worker-runner.ts'

export class SequenceError extends OpenLoraError<'SEQUENCE_INVALID'> {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('SEQUENCE_INVALID', message, details)
  }
}

export class NoFreeSequenceError extends OpenLoraError<'NO_FREE_SEQUENCE'> {
  constructor(maxBatch: number) {
    super('NO_FREE_SEQUENCE', `all ${maxBatch} KV-cache rows are in use; free a sequence or raise maxBatch`, {
      maxBatch
    })
  }
}

export interface StepRow {
  seq: number
  /** new tokens appended to the sequence: a prompt / prefill chunk, or one decode token */
  tokens: number[]
  /** adapter slot (0 = no adapter) */
  slot: number
}

export interface ModelSessionOptions {
  executionProvider: ExecutionProviderName
  intraOpThreads?: number
  maxBatch: number
  maxSeqLen: number
  pool: { slots: number; maxRank: number; targets: readonly string[] }
  /** run the session in a worker thread so the event loop stays free during a step (default true) */
  worker?: boolean
  /** ORT session config entries, e.g. { 'session.intra_op.allow_spinning': '0' } */
  sessionConfig?: Record<string, string>
  /** ORT profile file prefix (LoadModelOptions.profile) */
  profile?: string
  /** the prompt-pass graph (runner.ts RunnerSetup.prefillModelPath) */
  prefillModelPath?: string
  /** decode passes on the native engine (runner.ts RunnerSetup.native); else every pass on ORT */
  native?: NativeSetup
  log: Logger
}

export class ModelSession {
  readonly config: ModelConfig
  readonly layout: ModelLayout
  readonly weightsHash: Hex
  readonly executionProvider: ExecutionProviderName
  readonly maxBatch: number
  readonly maxSeqLen: number
  readonly pools: SlotPools
  /** what runs decode passes (one new token a row): the native engine or ONNX Runtime */
  readonly decodeKernels: 'native' | 'ort'
  /** what runs prompt passes (several new tokens a row): the native engine or ONNX Runtime */
  readonly promptKernels: 'native' | 'ort'
  private readonly runner: Runner
  private readonly poolSet: SlotPoolSet
  /** per KV row: the slot and slot version its LoRA buffers hold (-1 = never bound) */
  private readonly boundSlot: Int32Array
  private readonly boundVersion: Uint32Array
  private readonly lens: Int32Array
  private readonly used: boolean[]
  private readonly hasLora: boolean
  /** the KV cache's current layout (kv-layout.ts); the runner moves the buffers when it changes */
  private kvCapacity: number
  private queue: Promise<unknown> = Promise.resolve()
  private disposed = false

  private constructor(
    runner: Runner,
    pools: SlotPoolSet,
    layout: ModelLayout,
    weightsHash: Hex,
    ep: ExecutionProviderName,
    opts: ModelSessionOptions
  ) {
    this.runner = runner
    this.kvCapacity = nextKvCapacity(0, 0, opts.maxSeqLen)
    this.layout = layout
    this.config = layout.config
    this.weightsHash = weightsHash
    this.executionProvider = ep
    this.maxBatch = opts.maxBatch
    this.maxSeqLen = opts.maxSeqLen
    this.lens = new Int32Array(opts.maxBatch)
    this.used = new Array(opts.maxBatch).fill(false)
    this.pools = pools
    this.poolSet = pools
    this.boundSlot = new Int32Array(opts.maxBatch).fill(-1)
    this.boundVersion = new Uint32Array(opts.maxBatch)
    this.hasLora = pools.targets.length > 0
    this.decodeKernels = opts.native && ep === 'cpu' ? 'native' : 'ort'
    this.promptKernels =
      this.decodeKernels === 'native' && (opts.native?.promptRows ?? 0) > 0 ? 'native' : 'ort'
  }

  static async create(
    modelPath: string,
    layout: ModelLayout,
    weightsHash: Hex,
    opts: ModelSessionOptions
  ): Promise<ModelSession> {
    const cfg = layout.config
    checkLimits(cfg, opts)
    const pools = new SlotPoolSet(layout, opts.pool, opts.maxBatch, { a: loraA, b: loraB })
    const capacity = opts.maxSeqLen
    const Dp = layout.paddedHeadDim
    const rowFloats = cfg.numKvHeads * capacity * Dp
    const keys: Float32Array[] = []
    const values: Float32Array[] = []
    for (let l = 0; l < cfg.numLayers; l++) {
      keys.push(sharedFloats(opts.maxBatch * rowFloats))
      values.push(sharedFloats(opts.maxBatch * rowFloats))
    }
    const ropeInputs = (local: boolean, cosName: string, sinName: string) => {
      const rope = rotaryTables(cfg, capacity, Dp, local)
      const cos = sharedFloats(rope.cos.length)
      const sin = sharedFloats(rope.sin.length)
      cos.set(rope.cos)
      sin.set(rope.sin)
      return [
        { name: cosName, data: cos, dims: [capacity, Dp / 2] },
        { name: sinName, data: sin, dims: [capacity, Dp / 2] }
      ]
    }
    const ropes = [
      ...ropeInputs(false, ROPE_COS, ROPE_SIN),
      // Gemma 3's sliding layers rotate with their own base
      ...(cfg.ropeLocalTheta !== null ? ropeInputs(true, ROPE_COS_LOCAL, ROPE_SIN_LOCAL) : [])
    ]
    let ep = resolveExecutionProvider(opts.executionProvider, opts.log)
    const setup = (e: ExecutionProviderName): RunnerSetup => ({
      modelPath,
      ...(opts.prefillModelPath ? { prefillModelPath: opts.prefillModelPath } : {}),
      sessionOptions: {
        executionProviders: sessionProviders(e),
        graphOptimizationLevel: 'all',
        // ORT's pool threads spin-wait between ops by default. On a busy machine (the node's own
        // event loop, other processes) spinning steals the cores the run needs: measured on the
        // 2-core dev machine under load, smollm2-135m decode was 1.5-3x faster with it off
        // (batch 1: 44-98 vs 146-193 ms/step; batch 8: 104-152 vs 220-433 ms/step). On the same
        // machine quiet, spinning was ~10 % faster (engine batches of 8, int8: 201-247 vs
        // 235-257 tok/s), so a dedicated node can turn it on (infer.threadSpinning).
        extra: { 'session.intra_op.allow_spinning': '0', ...opts.sessionConfig },
        ...(opts.intraOpThreads ? { intraOpNumThreads: opts.intraOpThreads } : {}),
        ...(opts.profile ? { enableProfiling: true, profileFilePrefix: opts.profile } : {})
      },
      numLayers: cfg.numLayers,
      kvHeads: cfg.numKvHeads,
      capacity,
      headDim: Dp,
      keys,
      values,
      inputs: ropes,
      rowInputs: pools.rowInputs,
      // the engine computes on the CPU: a CUDA session keeps every pass on ORT
      ...(opts.native && e === 'cpu' ? { native: opts.native } : {})
    })
    const open = (e: ExecutionProviderName) =>
      opts.worker === false ? SessionRunner.open(setup(e)) : WorkerRunner.open(setup(e))
    let runner: Runner
    try {
      runner = await open(ep)
    } catch (err) {
      if (ep !== 'cuda') throw err
      opts.log.warn('CUDA session failed to start; running on CPU', { error: err as Error })
      ep = 'cpu'
      runner = await open(ep)
    }
    return new ModelSession(runner, pools, layout, weightsHash, ep, opts)
  }

  /** Claims a free KV-cache row for a new sequence (length 0). */
  allocSequence(): number {
    const seq = this.used.indexOf(false)
    if (seq < 0) throw new NoFreeSequenceError(this.maxBatch)
    this.used[seq] = true
    this.lens[seq] = 0
    return seq
  }

  freeSequence(seq: number): void {
    if (!Number.isInteger(seq) || seq < 0 || seq >= this.maxBatch || !this.used[seq]) {
      throw new SequenceError(`sequence ${seq} is not allocated`, { seq })
    }
    this.used[seq] = false
    this.lens[seq] = 0
  }

  /** Tokens a sequence holds in the KV cache. */
  sequenceLength(seq: number): number {
    return this.lens[seq] ?? 0
  }

  /**
   * One forward pass over a heterogeneous batch; returns each row's logits at its last new
   * token. Calls are serialised (the KV buffers belong to one run at a time).
   */
  step(rows: StepRow[]): Promise<Float32Array[]> {
    // validated when its turn comes: lengths grow with the steps queued before it
    const run = this.queue.then(() => {
      this.validate(rows)
      return this.runStep(rows)
    })
    this.queue = run.catch(() => {})
    return run
  }

  private validate(rows: StepRow[]): void {
    if (this.disposed) throw new SequenceError('the model was disposed')
    if (!Array.isArray(rows) || rows.length === 0) throw new SequenceError('step needs at least one row')
    const seen = new Set<number>()
    const V = this.config.vocabSize
    for (const r of rows) {
      if (!Number.isInteger(r.seq) || r.seq < 0 || r.seq >= this.maxBatch || !this.used[r.seq]) {
        throw new SequenceError(`row sequence ${r.seq} is not allocated`, { seq: r.seq })
      }
      if (seen.has(r.seq))
        throw new SequenceError(`sequence ${r.seq} appears twice in one step`, { seq: r.seq })
      seen.add(r.seq)
      if (!Array.isArray(r.tokens) || r.tokens.length === 0) {
        throw new SequenceError(`row for sequence ${r.seq} has no tokens`, { seq: r.seq })
      }
      for (const t of r.tokens) {
        if (!Number.isInteger(t) || t < 0 || t >= V) {
          throw new InvalidParametersError(`token id ${t} is outside the vocabulary (0..${V - 1})`, {
            token: t
          })
        }
      }
      if (this.lens[r.seq]! + r.tokens.length > this.maxSeqLen) {
        throw new SequenceError(
          `sequence ${r.seq} would hold ${this.lens[r.seq]! + r.tokens.length} tokens; maxSeqLen is ${this.maxSeqLen}`,
          { seq: r.seq, maxSeqLen: this.maxSeqLen }
        )
      }
      if (
        !Number.isInteger(r.slot) ||
        r.slot < 0 ||
        r.slot >= this.pools.slots ||
        (!this.hasLora && r.slot !== 0)
      ) {
        throw new InvalidParametersError(
          `adapter slot ${r.slot} is out of range; allowed 0..${this.hasLora ? this.pools.slots - 1 : 0}`,
          { slot: r.slot }
        )
      }
    }
  }

  private async runStep(rows: StepRow[]): Promise<Float32Array[]> {
    const out: Float32Array[] = new Array(rows.length)
    const V = this.config.vocabSize
    const after = Int32Array.from(this.lens)
    if (this.hasLora) {
      for (const r of rows) {
        const version = this.poolSet.version(r.slot)
        if (this.boundSlot[r.seq] !== r.slot || this.boundVersion[r.seq] !== version) {
          this.poolSet.bindRow(r.seq, r.slot)
          this.boundSlot[r.seq] = r.slot
          this.boundVersion[r.seq] = version
        }
      }
    }
    const passes = planPasses(rows, after)
    let need = 0
    for (let seq = 0; seq < this.maxBatch; seq++) if (this.used[seq]) need = Math.max(need, after[seq]!)
    const cap = nextKvCapacity(need, this.kvCapacity, this.maxSeqLen)
    // the first pass moves the cache to the new layout on the runner's thread (the worker's: a
    // large cache would otherwise stall the event loop for the whole copy)
    let relayoutFrom: number | undefined = cap !== this.kvCapacity ? this.kvCapacity : undefined
    this.kvCapacity = cap
    for (const pass of passes) {
      const logits = await this.runner.run({
        ...pass,
        capacity: cap,
        ...(relayoutFrom === undefined ? {} : { relayoutFrom })
      })
      relayoutFrom = undefined
      for (const [i, b] of pass.outputs) {
        out[i] = logits.subarray(b * V, (b + 1) * V)
        this.lens[rows[i]!.seq]! += rows[i]!.tokens.length
      }
    }
    return out
  }

  async dispose(): Promise<void> {
    if (this.disposed) return
    this.disposed = true
    await this.queue
    await this.runner.release()
  }
}

function checkLimits(cfg: ModelConfig, opts: ModelSessionOptions): void {
  if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1 || opts.maxBatch > 1024) {
    throw new InvalidParametersError(`maxBatch must be an integer in 1..1024, got ${opts.maxBatch}`, {
      field: 'maxBatch'
    })
  }
  // sliding-window layers attend within their window (GroupQueryAttention's local_window_size),
  // so sequences may run to max_position_embeddings whatever the window
  const limit = cfg.maxPositionEmbeddings
  if (!Number.isInteger(opts.maxSeqLen) || opts.maxSeqLen < 1 || opts.maxSeqLen > limit) {
    throw new InvalidParametersError(
      `maxSeqLen must be an integer in 1..${limit} (the model's max_position_embeddings), got ${opts.maxSeqLen}`,
      { field: 'maxSeqLen', max: limit }
    )
  }
}
