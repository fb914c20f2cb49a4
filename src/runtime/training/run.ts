// A whole `openlora train` run as a library call: plan the data (eval split, --seq-len, --batch
// order), start the LoRA state (fresh, --init-adapter, or a --resume checkpoint), step N times
// with the lr schedule, checkpoint every N steps, dump the step-0 gradients if asked, report the
// held-out loss, save the PEFT adapter and its signed training record. The CLI only parses and
// prints.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { adapterCid, weightsHash } from '../formats/identity.ts'
import { encodeSafetensors } from '../formats/safetensors.ts'
import { modelIdOf } from '../model/config.ts'
import { readModelConfig } from '../model/index.ts'
import type { WeightFormat } from '../weight-format.ts'
import { type Progress, type RunFingerprint, readCheckpoint, writeCheckpoint } from './checkpoint.ts'
import { freshLora, type LoraState, loraFromAdapter, loraTensors, saveLora } from './lora.ts'
import { type DataPlan, planData } from './plan.ts'
import {
  type DatanetSource,
  type RecordSigner,
  signTrainingRecord,
  type TrainingRecordBody,
  writeTrainingRecord
} from './record.ts'
import { lrFactor, type ScheduleName } from './schedule.ts'
import { makeBatch, makeOptimizer, type OptimizerName, type Sequence, Trainer } from './trainer.ts'

export interface TrainRun {
  modelDir: string
  outDir: string
  /** token ids (`--tokens`), or rows with trained-token masks (`--data`, `--datanet`) */
  tokens: Sequence[]
  /** start from this PEFT adapter; else a fresh one from `lora` */
  initAdapter?: string
  lora?: { rank: number; alpha: number; targets: readonly string[] | 'all-linear'; rslora: boolean }
  steps: number
  lr: number
  optimizer: OptimizerName
  weightDecay?: number
  seed: number
  batch?: number
  seqLen?: number
  packing?: boolean
  warmup?: number
  schedule?: ScheduleName
  evalFraction?: number
  /** write OUT/checkpoint-S every this many steps */
  checkpointEvery?: number
  /** continue from this checkpoint directory */
  resume?: string
  dumpGrads?: string
  threads?: number
  /** the frozen base as serving's `infer.weightFormat` builds it (default fp32; quantized-base.ts) */
  baseFormat?: WeightFormat
  /** sign and store a training record with the adapter (record.ts) */
  record?: {
    signer: RecordSigner
    data: { kind: 'tokens' | 'jsonl' | 'datanet'; sha256: string }
    datanets?: DatanetSource[]
  }
  onStep?: (e: { step: number; loss: number; lr: number; tokens: number; ms: number }) => void
  onEval?: (e: { step: number; loss: number }) => void
}

export interface TrainResult {
  steps: number
  /** the loss at each step, before its update */
  losses: number[]
  /** held-out loss after the last step (null without --eval-fraction) */
  evalLoss: number | null
  evalLosses: { step: number; loss: number }[]
  adapter: string
  cid: string
  tokensPerStep: number
  trainedTokens: number
}

/** Mean token loss over the held-out rows, in batches of the graph's shape. */
async function heldOutLoss(trainer: Trainer, plan: DataPlan, vocab: number): Promise<number> {
  let sum = 0
  let count = 0
  for (let i = 0; i < plan.eval.length; i += plan.B) {
    const b = makeBatch(plan.eval.slice(i, i + plan.B), vocab, { B: plan.B, T: plan.T })
    const r = await trainer.evaluate(undefined, undefined, b)
    sum += r.loss * b.count
    count += b.count
  }
  return sum / count
}

export async function runTraining(o: TrainRun): Promise<TrainResult> {
  const cfg = await readModelConfig(o.modelDir)
  const lora = o.lora ?? { rank: 8, alpha: 16, targets: ['q_proj', 'v_proj'], rslora: false }
  const plan = planData(o.tokens, {
    batch: o.batch,
    seqLen: o.seqLen,
    packing: o.packing,
    evalFraction: o.evalFraction,
    seed: o.seed
  })
  const schedule = o.schedule ?? 'constant'
  const warmup = o.warmup ?? 0
  const baseModel = modelIdOf(cfg, o.modelDir)
  const baseFormat = o.baseFormat ?? 'fp32'
  const run: RunFingerprint = {
    baseModel,
    baseFormat,
    data: o.record?.data.sha256 ?? '',
    optimizer: o.optimizer,
    lr: o.lr,
    weightDecay: o.optimizer === 'adamw' ? (o.weightDecay ?? 0.01) : null,
    steps: o.steps,
    batch: o.batch ?? null,
    seqLen: o.seqLen ?? null,
    packing: o.packing === true,
    warmup,
    schedule,
    evalFraction: o.evalFraction ?? 0,
    seed: o.seed
  }
  const resumed = o.resume ? await readCheckpoint(o.resume, cfg, run) : undefined
  const state: LoraState = resumed
    ? resumed.state
    : o.initAdapter
      ? await loraFromAdapter(cfg, o.initAdapter)
      : freshLora(cfg, { ...lora, seed: o.seed, baseModel })
  const shape = { B: plan.B, T: plan.T }
  const trainer = await Trainer.create(o.modelDir, cfg, state, plan.batchOf(0), {
    threads: o.threads,
    shape,
    baseFormat
  })
  const p: Progress = resumed?.progress ?? { step: 0, losses: [], evalLosses: [], trainedTokens: 0 }
  const opt = makeOptimizer(o.optimizer, o.lr, o.weightDecay)
  if (resumed) opt.loadState(resumed.opt)
  const evalNow = async (step: number) => {
    if (plan.eval.length === 0) return
    const e = { step, loss: await heldOutLoss(trainer, plan, cfg.vocabSize) }
    p.evalLosses.push(e)
    o.onEval?.(e)
  }
  try {
    for (let s = p.step; s < o.steps; s++) {
      const t0 = performance.now()
      opt.lr = o.lr * lrFactor(schedule, s, warmup, o.steps)
      const batch = makeBatch(plan.batchOf(s), cfg.vocabSize, shape)
      const r = await trainer.step(opt, batch)
      if (s === 0 && o.dumpGrads)
        await writeFile(
          o.dumpGrads,
          encodeSafetensors(loraTensors(state.modules, r.gradA, r.gradB), { format: 'pt' })
        )
      p.losses.push(r.loss)
      p.trainedTokens += batch.count
      p.step = s + 1
      o.onStep?.({ step: s, loss: r.loss, lr: opt.lr, tokens: batch.count, ms: performance.now() - t0 })
      if (o.checkpointEvery && p.step % o.checkpointEvery === 0 && p.step < o.steps) {
        await evalNow(p.step)
        await writeCheckpoint(join(o.outDir, `checkpoint-${p.step}`), state, opt.saveState(), p, run)
      }
    }
    await evalNow(o.steps)
  } finally {
    await trainer.close()
  }
  const cid = await saveLora(state, o.outDir)
  if (o.record) {
    const first = state.modules[0]!
    const cfgJson = state.config
    const body: TrainingRecordBody = {
      baseModel: { id: baseModel, weightsHash: await weightsHash(o.modelDir), format: baseFormat },
      datanets: o.record.datanets ?? [],
      data: {
        ...o.record.data,
        sequences: plan.train.length,
        evalSequences: plan.eval.length,
        trainedTokens: p.trainedTokens
      },
      lora: {
        r: first.r,
        alpha: Number(cfgJson.lora_alpha),
        rslora: cfgJson.use_rslora === true,
        targets: [...new Set(state.modules.map((m) => m.target))],
        init: o.initAdapter ? `adapter ${await adapterCid(o.initAdapter)}` : `peft-default seed ${o.seed}`
      },
      hyper: {
        optimizer: o.optimizer,
        lr: o.lr,
        steps: o.steps,
        weightDecay: run.weightDecay,
        seed: o.seed,
        batch: run.batch,
        seqLen: run.seqLen,
        packing: run.packing,
        warmup,
        schedule,
        evalFraction: run.evalFraction
      },
      losses: p.losses,
      evalLosses: p.evalLosses,
      adapterCid: cid,
      finishedAt: Date.now()
    }
    await writeTrainingRecord(o.outDir, await signTrainingRecord(body, o.record.signer))
  }
  return {
    steps: o.steps,
    losses: p.losses,
    evalLoss: p.evalLosses.at(-1)?.loss ?? null,
    evalLosses: p.evalLosses,
    adapter: o.outDir,
    cid,
    tokensPerStep: trainer.tokensPerStep,
    trainedTokens: p.trainedTokens
  }
}
