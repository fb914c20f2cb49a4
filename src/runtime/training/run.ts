// A whole `openlora train` run as a library call: start the LoRA state, step N times, optionally
// dump the step-0 gradients, save the PEFT adapter. The CLI only parses and prints.
import { writeFile } from 'node:fs/promises'
import { adapterCid, weightsHash } from '../formats/identity.ts'
import { encodeSafetensors } from '../formats/safetensors.ts'
import { modelIdOf } from '../model/config.ts'
import type { Projection } from '../model/families/types.ts'
import { readModelConfig } from '../model/index.ts'
import { freshLora, type LoraState, loraFromAdapter, loraTensors, saveLora } from './lora.ts'
import {
  type RecordSigner,
  signTrainingRecord,
  type TrainingRecordBody,
  writeTrainingRecord
} from './record.ts'
import { makeOptimizer, type OptimizerName, type Sequence, Trainer } from './trainer.ts'

export interface TrainRun {
  modelDir: string
  outDir: string
  /** token ids (`--tokens`), or rows with trained-token masks (`--data`) */
  tokens: Sequence[]
  /** start from this PEFT adapter; else a fresh one from `lora` */
  initAdapter?: string
  lora?: { rank: number; alpha: number; targets: Projection[] | 'all-linear'; rslora: boolean }
  steps: number
  lr: number
  optimizer: OptimizerName
  weightDecay?: number
  seed: number
  dumpGrads?: string
  threads?: number
  /** sign and store a training record with the adapter (record.ts) */
  record?: { signer: RecordSigner; data: { kind: 'tokens' | 'jsonl'; sha256: string } }
  onStep?: (e: { step: number; loss: number; tokens: number; ms: number }) => void
}

export interface TrainResult {
  steps: number
  /** the loss at each step, before its update */
  losses: number[]
  adapter: string
  cid: string
  tokensPerStep: number
}

export async function runTraining(o: TrainRun): Promise<TrainResult> {
  const cfg = await readModelConfig(o.modelDir)
  const lora = o.lora ?? { rank: 8, alpha: 16, targets: ['q_proj', 'v_proj'], rslora: false }
  const state: LoraState = o.initAdapter
    ? await loraFromAdapter(cfg, o.initAdapter)
    : freshLora(cfg, { ...lora, seed: o.seed, baseModel: modelIdOf(cfg, o.modelDir) })
  const trainer = await Trainer.create(o.modelDir, cfg, state, o.tokens, { threads: o.threads })
  const losses: number[] = []
  try {
    const opt = makeOptimizer(o.optimizer, o.lr, o.weightDecay)
    for (let s = 0; s < o.steps; s++) {
      const t0 = performance.now()
      const r = await trainer.step(opt)
      if (s === 0 && o.dumpGrads)
        await writeFile(
          o.dumpGrads,
          encodeSafetensors(loraTensors(state.modules, r.gradA, r.gradB), { format: 'pt' })
        )
      losses.push(r.loss)
      o.onStep?.({ step: s, loss: r.loss, tokens: trainer.tokensPerStep, ms: performance.now() - t0 })
    }
  } finally {
    await trainer.close()
  }
  const cid = await saveLora(state, o.outDir)
  if (o.record) {
    const first = state.modules[0]!
    const cfgJson = state.config
    const body: TrainingRecordBody = {
      baseModel: { id: modelIdOf(cfg, o.modelDir), weightsHash: await weightsHash(o.modelDir) },
      datanets: [],
      data: { ...o.record.data, sequences: o.tokens.length, trainedTokens: trainer.tokensPerStep },
      lora: {
        r: first.r,
        alpha: Number(cfgJson.lora_alpha),
        rslora: cfgJson.use_rslora === true,
        targets: [...new Set(state.modules.map((m) => m.proj))],
        init: o.initAdapter ? `adapter ${await adapterCid(o.initAdapter)}` : `peft-default seed ${o.seed}`
      },
      hyper: {
        optimizer: o.optimizer,
        lr: o.lr,
        steps: o.steps,
        weightDecay: o.optimizer === 'adamw' ? (o.weightDecay ?? 0.01) : null,
        seed: o.seed
      },
      losses,
      adapterCid: cid,
      finishedAt: Date.now()
    }
    await writeTrainingRecord(o.outDir, await signTrainingRecord(body, o.record.signer))
  }
  return { steps: o.steps, losses, adapter: o.outDir, cid, tokensPerStep: trainer.tokensPerStep }
}
