// Full-weight training of a (small) base model on ONNX Runtime: the same training graph as LoRA
// training, built with `trainBase`, so every checkpoint tensor is a graph input and the tape
// returns its gradient. Used to pre-train the demo model (scripts/make-demo-model.ts); a node's
// `openlora train` keeps base weights frozen and trains LoRA tensors only.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { type FloatDtype, openCheckpoint, writeSafetensors } from '../formats/safetensors.ts'
import type { ModelConfig } from '../model/config.ts'
import { type BaseTensor, buildTrainingGraph } from './graph.ts'
import type { Optimizer } from './optim.ts'
import type { Batch } from './trainer.ts'

export class BaseTrainer {
  private readonly session: ort.InferenceSession
  private readonly tensors: BaseTensor[]
  /** the current weights, in `tensors` order (HF layout, fp32) */
  readonly weights: Float32Array[]
  private readonly shape: { B: number; T: number }
  private readonly scratch: string

  private constructor(
    session: ort.InferenceSession,
    tensors: BaseTensor[],
    weights: Float32Array[],
    shape: { B: number; T: number },
    scratch: string
  ) {
    this.session = session
    this.tensors = tensors
    this.weights = weights
    this.shape = shape
    this.scratch = scratch
  }

  /** Loads the checkpoint's weights and builds the graph for B×T batches. */
  static async create(
    modelDir: string,
    cfg: ModelConfig,
    shape: { B: number; T: number },
    opts: { threads?: number } = {}
  ): Promise<BaseTrainer> {
    const scratch = await mkdtemp(join(tmpdir(), 'openlora-pretrain-'))
    const ckpt = await openCheckpoint(modelDir)
    try {
      const graph = buildTrainingGraph(cfg, ckpt, [], shape.B, shape.T, scratch, { trainBase: true })
      const weights = graph.base.map((b) => Float32Array.from(ckpt.read(b.name)))
      const session = await ort.InferenceSession.create(graph.modelPath, {
        intraOpNumThreads: opts.threads ?? 0,
        graphOptimizationLevel: 'all'
      })
      return new BaseTrainer(session, graph.base, weights, shape, scratch)
    } catch (err) {
      await rm(scratch, { recursive: true, force: true })
      throw err
    } finally {
      ckpt.close()
    }
  }

  /** checkpoint names, in `weights` order */
  get names(): string[] {
    return this.tensors.map((t) => t.name)
  }

  /** Loss and every weight's gradient at the current weights (no update). */
  async evaluate(batch: Batch): Promise<{ loss: number; grads: Float32Array[] }> {
    if (batch.B !== this.shape.B || batch.T !== this.shape.T)
      throw new Error(`batch shape ${batch.B}×${batch.T}; this graph takes ${this.shape.B}×${this.shape.T}`)
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', batch.ids, [batch.B, batch.T]),
      targets: new ort.Tensor('int64', batch.targets, [batch.B * batch.T]),
      weights: new ort.Tensor('float32', batch.weights, [batch.B * batch.T])
    }
    this.tensors.forEach((t, i) => {
      feeds[t.input] = new ort.Tensor('float32', this.weights[i]!, t.shape)
    })
    const out = await this.session.run(feeds)
    return {
      loss: (out.loss!.data as Float32Array)[0]!,
      grads: this.tensors.map((t) => out[t.output]!.data as Float32Array)
    }
  }

  /**
   * One step: the loss before the update. Matrices and vectors (norm weights) may take different
   * optimizers, so weight decay can spare the norms as GPT-style pre-training does.
   */
  async step(
    batch: Batch,
    opt: { matrices: Optimizer; vectors: Optimizer; clipNorm?: number }
  ): Promise<{ loss: number; gradNorm: number }> {
    const { loss, grads } = await this.evaluate(batch)
    // global gradient-norm clipping (torch.nn.utils.clip_grad_norm_), which keeps early
    // pre-training steps from blowing up the small model
    let sq = 0
    for (const g of grads) for (let j = 0; j < g.length; j++) sq += g[j]! * g[j]!
    const gradNorm = Math.sqrt(sq)
    if (opt.clipNorm !== undefined && gradNorm > opt.clipNorm) {
      const k = opt.clipNorm / (gradNorm + 1e-6)
      for (const g of grads) for (let j = 0; j < g.length; j++) g[j] = g[j]! * k
    }
    const pick = (matrix: boolean) =>
      this.tensors.flatMap((t, i) => (t.shape.length > 1 === matrix ? [i] : []))
    for (const [matrix, o] of [
      [true, opt.matrices],
      [false, opt.vectors]
    ] as const) {
      const idx = pick(matrix)
      o.step(
        idx.map((i) => this.weights[i]!),
        idx.map((i) => grads[i]!)
      )
    }
    return { loss, gradNorm }
  }

  /** Writes the current weights as `model.safetensors` (sorted names, so the bytes are reproducible). */
  async save(file: string, dtype: FloatDtype = 'F32'): Promise<void> {
    const tensors = new Map(
      this.tensors.map((t, i) => [t.name, { shape: t.shape, data: this.weights[i]!, dtype }])
    )
    await writeSafetensors(file, tensors, { format: 'pt' })
  }

  async close(): Promise<void> {
    await this.session.release()
    await rm(this.scratch, { recursive: true, force: true })
  }
}
