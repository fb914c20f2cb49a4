// One training run on ONNX Runtime: pads the token batch, builds the training graph once for its
// shape, then each step feeds the current LoRA tensors, reads the loss and their gradients, and
// lets the optimizer update them in place.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { openCheckpoint } from '../formats/safetensors.ts'
import type { ModelConfig } from '../model/config.ts'
import type { WeightFormat } from '../weight-format.ts'
import { TrainingInputError } from './errors.ts'
import { buildTrainingGraph, type TrainingGraph, type TrainingGraphOptions } from './graph.ts'
import type { LoraState } from './lora.ts'
import { adamw, type Optimizer, sgd } from './optim.ts'

export { TrainingInputError }

export interface Batch {
  B: number
  T: number
  ids: BigInt64Array
  targets: BigInt64Array
  /** 1 / (predicted tokens) where position t predicts t+1 inside its sequence, else 0 */
  weights: Float32Array
  /** predicted tokens in the batch */
  count: number
}

/** Token ids, and optionally which tokens are trained (default: every token after the first). */
export type Sequence = number[] | { ids: number[]; trained: boolean[] }

/**
 * Right-pads the sequences; padding is never attended by real positions (causal) nor scored.
 * Position t is scored when token t+1 is trained, with weight 1 / (scored positions), so the
 * loss is the mean over every predicted token of the batch.
 */
export function makeBatch(seqs: Sequence[], vocabSize: number, shape?: { B: number; T: number }): Batch {
  if (!Array.isArray(seqs) || seqs.length === 0)
    throw new TrainingInputError('tokens: expected a non-empty JSON array of token-id arrays')
  if (shape && seqs.length > shape.B)
    throw new TrainingInputError(`${seqs.length} sequences; this run's batch holds at most ${shape.B}`)
  const list = seqs.map((s, b) => {
    const ids = Array.isArray(s) ? s : s?.ids
    if (!Array.isArray(ids)) throw new TrainingInputError(`tokens[${b}]: expected an array of token ids`)
    ids.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize)
        throw new TrainingInputError(
          `tokens[${b}][${t}] = ${JSON.stringify(id)}: token ids are integers in [0, ${vocabSize})`
        )
    })
    return { ids, trained: Array.isArray(s) ? ids.map((_, t) => t > 0) : s.trained }
  })
  // a fixed shape (--batch/--seq-len) pads short batches with empty rows that score nothing
  const B = shape?.B ?? list.length
  const T = shape?.T ?? Math.max(...list.map((s) => s.ids.length))
  list.forEach((s, b) => {
    if (s.ids.length > T)
      throw new TrainingInputError(`tokens[${b}]: ${s.ids.length} tokens; this run's rows hold at most ${T}`)
  })
  const ids = new BigInt64Array(B * T)
  const targets = new BigInt64Array(B * T)
  const weights = new Float32Array(B * T)
  let count = 0
  list.forEach((s, b) => {
    s.ids.forEach((id, t) => {
      ids[b * T + t] = BigInt(id)
      if (t + 1 < s.ids.length && s.trained[t + 1]) {
        targets[b * T + t] = BigInt(s.ids[t + 1]!)
        weights[b * T + t] = 1
        count++
      }
    })
  })
  if (count === 0)
    throw new TrainingInputError(
      'tokens: no sequence has a trained token after its first, so nothing is predicted'
    )
  for (let i = 0; i < weights.length; i++) weights[i] = weights[i]! / count
  return { B, T, ids, targets, weights, count }
}

export interface StepResult {
  loss: number
  gradA: Float32Array[]
  gradB: Float32Array[]
}

export class Trainer {
  private readonly session: ort.InferenceSession
  private readonly graph: TrainingGraph
  private readonly batch: Batch
  readonly state: LoraState
  private readonly scratch: string

  private constructor(
    session: ort.InferenceSession,
    graph: TrainingGraph,
    batch: Batch,
    state: LoraState,
    scratch: string
  ) {
    this.session = session
    this.graph = graph
    this.batch = batch
    this.state = state
    this.scratch = scratch
  }

  static async create(
    modelDir: string,
    cfg: ModelConfig,
    state: LoraState,
    seqs: Sequence[],
    opts: {
      threads?: number
      shape?: { B: number; T: number }
      baseFormat?: WeightFormat
      graph?: TrainingGraphOptions
    } = {}
  ): Promise<Trainer> {
    const batch = makeBatch(seqs, cfg.vocabSize, opts.shape)
    const scratch = await mkdtemp(join(tmpdir(), 'openlora-train-'))
    const ckpt = await openCheckpoint(modelDir)
    try {
      const graph = buildTrainingGraph(cfg, ckpt, state.modules, batch.B, batch.T, scratch, {
        ...opts.graph,
        baseFormat: opts.baseFormat
      })
      const session = await ort.InferenceSession.create(graph.modelPath, {
        intraOpNumThreads: opts.threads ?? 0,
        graphOptimizationLevel: 'all',
        // one copy of each frozen weight: prepacking would give the forward Gemm and the backward
        // MatMul a packed copy each (the graph reads every base weight twice; docs/TRAINING.md)
        extra: { session: { disable_prepacking: '1' } },
        // the memory pattern, planned on the first run, is allocated on the second as one block
        // beside the arena's first-run chunks: about 2× the activations held
        enableMemPattern: false
      })
      return new Trainer(session, graph, batch, state, scratch)
    } catch (err) {
      await rm(scratch, { recursive: true, force: true })
      throw err
    } finally {
      ckpt.close()
    }
  }

  get tokensPerStep(): number {
    return this.batch.count
  }

  /** This trainer's graph shape, for batches made with makeBatch(…, shape). */
  get shape(): { B: number; T: number } {
    return { B: this.batch.B, T: this.batch.T }
  }

  /** Loss and LoRA gradients at the current tensors (no update), on `batch` (default: the first). */
  async evaluate(A = this.state.A, B = this.state.B, batch = this.batch): Promise<StepResult> {
    const { B: nb, T } = batch
    if (nb !== this.batch.B || T !== this.batch.T)
      throw new TrainingInputError(`batch shape ${nb}×${T}; this graph takes ${this.batch.B}×${this.batch.T}`)
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', batch.ids, [nb, T]),
      targets: new ort.Tensor('int64', batch.targets, [nb * T]),
      weights: new ort.Tensor('float32', batch.weights, [nb * T])
    }
    this.state.modules.forEach((m, i) => {
      feeds[this.graph.inputs[i]!.A] = new ort.Tensor('float32', A[i]!, [m.r, m.inFeatures])
      feeds[this.graph.inputs[i]!.B] = new ort.Tensor('float32', B[i]!, [m.outFeatures, m.r])
    })
    const out = await this.session.run(feeds)
    const f = (n: string) => Float32Array.from(out[n]!.data as Float32Array)
    return {
      loss: (out.loss!.data as Float32Array)[0]!,
      gradA: this.graph.outputs.map((o) => f(o.A)),
      gradB: this.graph.outputs.map((o) => f(o.B))
    }
  }

  /** One step: the loss before the update, and the gradients the update used. */
  async step(opt: Optimizer, batch = this.batch): Promise<StepResult> {
    const r = await this.evaluate(this.state.A, this.state.B, batch)
    opt.step([...this.state.A, ...this.state.B], [...r.gradA, ...r.gradB])
    return r
  }

  async close(): Promise<void> {
    await this.session.release()
    await rm(this.scratch, { recursive: true, force: true })
  }
}

export type OptimizerName = 'sgd' | 'adamw'

export function makeOptimizer(name: OptimizerName, lr: number, weightDecay?: number): Optimizer {
  return name === 'sgd' ? sgd(lr) : adamw({ lr, weightDecay })
}
