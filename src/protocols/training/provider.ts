// The node side of /openlora/train: trains a job on datanet versions this node holds with the
// runtime's trainer, writes the adapter under `outRoot/<job>` and returns its CID and the record
// signed with the node's key. Models are offered by id (a job cannot name a path on this node).
import { mkdtemp } from 'node:fs/promises'
import { join } from 'node:path'
import type { DatanetStore } from '../../attribution/datanet-store.ts'
import { sha256Hex } from '../../crypto/hash.ts'
import { Tokenizer } from '../../runtime/tokenizer.ts'
import { encodeRows } from '../../runtime/training/data.ts'
import { type DataPlan, planData } from '../../runtime/training/plan.ts'
import { type DatanetSource, type RecordSigner, readTrainingRecord } from '../../runtime/training/record.ts'
import { runTraining } from '../../runtime/training/run.ts'
import { TrainingInputError } from '../../runtime/training/trainer.ts'
import { datanetRows } from './datanet-data.ts'
import type { TrainingProvider } from './train-protocol.ts'

export interface LocalTrainingOptions {
  store: DatanetStore
  /** model id → checkpoint directory, the base models this node trains on */
  models: Record<string, string>
  outRoot: string
  signer: RecordSigner
  threads?: number
}

export function localTrainingProvider(o: LocalTrainingOptions): TrainingProvider {
  return {
    async train(req, onStep, signal, opts = {}) {
      const modelDir = o.models[req.model]
      if (!modelDir)
        throw new TrainingInputError(
          `this node trains ${Object.keys(o.models).join(', ') || 'no models'}; not "${req.model}"`
        )
      const asked = [req.datanet, ...(req.moreDatanets ?? [])]
      if (new Set(asked.map((d) => d.id)).size !== asked.length)
        throw new TrainingInputError('a datanet is named twice; name each datanet once')
      const rows: { text: string }[] = []
      const sources: DatanetSource[] = []
      for (const d of asked) {
        const part = await datanetRows(o.store, d.id, d.version)
        if (part.rows.length === 0)
          throw new TrainingInputError(`datanet ${part.source.id}@${part.source.version} has no text`)
        rows.push(...part.rows)
        sources.push(part.source)
      }
      const tok = await Tokenizer.fromDir(modelDir)
      const tokens = encodeRows(tok, rows)
      // the budget caps the trained tokens: train the steps that fit it (the plan is a pure
      // function of the data, options and seed, so their tokens are known before any work)
      const steps =
        opts.maxTokens === undefined
          ? req.steps
          : stepsWithin(
              planData(tokens, { batch: req.batch, seqLen: req.seqLen, seed: req.seed }),
              req.steps,
              opts.maxTokens
            )
      if (steps === 0)
        throw new TrainingInputError(
          `a budget of ${opts.maxTokens} trained tokens does not cover the first step; raise budget.maxTokens`
        )
      const out = await mkdtemp(join(o.outRoot, 'job-'))
      const r = await runTraining({
        modelDir,
        outDir: out,
        tokens,
        lora: {
          rank: req.rank ?? 8,
          alpha: req.alpha ?? 2 * (req.rank ?? 8),
          targets: req.targets ?? ['q_proj', 'v_proj'],
          rslora: false
        },
        steps,
        lr: req.lr,
        optimizer: req.optimizer,
        weightDecay: req.weightDecay,
        seed: req.seed,
        batch: req.batch,
        seqLen: req.seqLen,
        warmup: req.warmup,
        schedule: req.schedule,
        baseFormat: req.baseFormat,
        threads: o.threads,
        record: {
          signer: o.signer,
          data: { kind: 'datanet', sha256: sha256Hex(rows.map((x) => JSON.stringify(x)).join('\n')) },
          datanets: sources
        },
        onStep: ({ step, loss, tokens: n }) => {
          signal.throwIfAborted()
          onStep(step, loss, n)
        }
      })
      return { cid: r.cid, record: await readTrainingRecord(out), dir: out }
    }
  }
}

/** Tokens a step trains: the positions its loss scores (what `makeBatch` counts). */
export function stepTokens(rows: { trained: boolean[] }[]): number {
  let n = 0
  for (const r of rows) for (let t = 1; t < r.trained.length; t++) if (r.trained[t]) n++
  return n
}

/** How many of the first `steps` steps fit in `maxTokens` trained tokens. */
export function stepsWithin(plan: DataPlan, steps: number, maxTokens: number): number {
  let used = 0
  for (let s = 0; s < steps; s++) {
    used += stepTokens(plan.batchOf(s))
    if (used > maxTokens) return s
  }
  return steps
}
