// Checkpoints of a training run (`--checkpoint-every N` writes OUT/checkpoint-S after step S) and
// `--resume DIR`. A checkpoint is the PEFT adapter at that step (so it also loads and serves as
// is) plus trainer-state.json (steps done, losses so far, the run's options) and optimizer.bin
// (AdamW's float64 moments, little-endian, in the order trainer-state.json names them). Together
// with the data order being a pure function of (seed, step) (plan.ts), that is all a resumed run
// needs to reach the same bytes as an uninterrupted one.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseWith, z } from '../../common/schema.ts'
import type { ModelConfig } from '../model/config.ts'
import { type LoraState, loraFromAdapter, peftName, saveLora } from './lora.ts'
import type { OptimizerState } from './optim.ts'
import { TrainingInputError } from './trainer.ts'

export const STATE_FILE = 'trainer-state.json'
const OPT_FILE = 'optimizer.bin'
const FORMAT = 'openlora-train-checkpoint/1'

/** The options a resumed run must share with the run it continues (else its curve differs). */
export interface RunFingerprint {
  baseModel: string
  /** the base weights' format (a checkpoint from before base formats was fp32) */
  baseFormat: string
  data: string
  optimizer: string
  lr: number
  weightDecay: number | null
  steps: number
  batch: number | null
  seqLen: number | null
  packing: boolean
  warmup: number
  schedule: string
  evalFraction: number
  seed: number
}

const State = z.strictObject({
  format: z.literal(FORMAT),
  step: z.number().int().min(1),
  losses: z.array(z.number()),
  evalLosses: z.array(z.strictObject({ step: z.number().int(), loss: z.number() })),
  trainedTokens: z.number().int().min(0),
  run: z.record(z.string(), z.unknown()),
  optimizer: z.strictObject({
    t: z.number().int().min(0),
    names: z.array(z.string()),
    lengths: z.array(z.number().int().min(0))
  })
})

export interface Progress {
  step: number
  losses: number[]
  evalLosses: { step: number; loss: number }[]
  trainedTokens: number
}

const tensorNames = (s: LoraState) => [
  ...s.modules.map((m) => peftName(m, 'A')),
  ...s.modules.map((m) => peftName(m, 'B'))
]

export async function writeCheckpoint(
  dir: string,
  state: LoraState,
  opt: OptimizerState,
  progress: Progress,
  run: RunFingerprint
): Promise<void> {
  await saveLora(state, dir)
  const names = opt.m.length > 0 ? tensorNames(state) : []
  const body: z.infer<typeof State> = {
    format: FORMAT,
    ...progress,
    run: { ...run },
    optimizer: { t: opt.t, names, lengths: opt.m.map((a) => a.length) }
  }
  const bytes = [...opt.m, ...opt.v].map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
  await writeFile(join(dir, OPT_FILE), Buffer.concat(bytes))
  await writeFile(join(dir, STATE_FILE), `${JSON.stringify(body, null, 2)}\n`)
}

export interface Resumed {
  state: LoraState
  opt: OptimizerState
  progress: Progress
}

/** Loads a checkpoint for a run with `run`'s options; a differing option is refused by name. */
export async function readCheckpoint(dir: string, cfg: ModelConfig, run: RunFingerprint): Promise<Resumed> {
  const text = await readFile(join(dir, STATE_FILE), 'utf8').catch((err: Error) => {
    throw new TrainingInputError(
      `--resume ${dir}: no ${STATE_FILE} (${err.message}); give a checkpoint-N directory`
    )
  })
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new TrainingInputError(`--resume ${dir}: ${STATE_FILE} is not JSON (${(err as Error).message})`)
  }
  const s = parseWith(State, json, {
    source: join(dir, STATE_FILE),
    error: (i) => new TrainingInputError(`--resume ${dir}: ${STATE_FILE}: ${i.field}: ${i.problem}`)
  })
  for (const [k, v] of Object.entries(run)) {
    const was = k === 'baseFormat' ? (s.run[k] ?? 'fp32') : s.run[k]
    if (JSON.stringify(was) !== JSON.stringify(v))
      throw new TrainingInputError(
        `--resume ${dir}: the checkpoint was trained with ${k} = ${JSON.stringify(was)}, this run has ${JSON.stringify(v)}; resume with the same options`,
        { option: k }
      )
  }
  if (s.step >= run.steps)
    throw new TrainingInputError(
      `--resume ${dir}: the checkpoint is at step ${s.step} of ${run.steps}; nothing is left`
    )
  const state = await loraFromAdapter(cfg, dir)
  const raw = await readFile(join(dir, OPT_FILE))
  const total = s.optimizer.lengths.reduce((a, b) => a + b, 0)
  if (raw.byteLength !== 16 * total)
    throw new TrainingInputError(
      `--resume ${dir}: ${OPT_FILE} holds ${raw.byteLength} bytes; expected ${16 * total}`
    )
  const all = new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength))
  const n = s.optimizer.names.length
  const at = new Map<string, { m: Float64Array; v: Float64Array }>()
  let off = 0
  s.optimizer.lengths.forEach((len, i) => {
    at.set(s.optimizer.names[i]!, {
      m: all.slice(off, off + len),
      v: all.slice(total + off, total + off + len)
    })
    off += len
  })
  const m: Float64Array[] = []
  const v: Float64Array[] = []
  if (n > 0)
    for (const name of tensorNames(state)) {
      const e = at.get(name)
      if (!e) throw new TrainingInputError(`--resume ${dir}: ${OPT_FILE} has no moments for ${name}`)
      m.push(e.m)
      v.push(e.v)
    }
  const { step, losses, evalLosses, trainedTokens } = s
  return { state, opt: { t: s.optimizer.t, m, v }, progress: { step, losses, evalLosses, trainedTokens } }
}
