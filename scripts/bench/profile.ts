// Issue 17: where a decode step's time goes. Runs one prompt + N batch-1 decode steps on a random
// checkpoint with ORT profiling on (LoadModelOptions.profile) and prints kernels per decode step
// and time per op type; or, given --file, summarises a profile written by any run.
//
//   npm run bench:profile -- [--weights fp32|int8|int4] [--preset smollm2-135m] [--steps N]
//                            [--threads N] [--json] [--file PROFILE.json]
import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { silentLogger } from '../../src/common/log.ts'
import { makeModel, type Preset } from '../../src/runtime/fixtures/make-model.ts'
import { loadModel } from '../../src/runtime/model/index.ts'
import { parseWeightFormat } from '../../src/runtime/weight-format.ts'
import { benchArgs } from './args.ts'
import { meanOfRuns, type ProfileEvent, summariseRuns } from './profile-summary.ts'

const args = benchArgs(
  'npm run bench:profile -- [--weights fp32|int8|int4] [--preset P] [--steps N] [--threads N] [--json] [--file F]',
  {
    weights: { type: 'string', default: 'fp32' },
    preset: { type: 'string', default: 'smollm2-135m' },
    steps: { type: 'string', default: '16' },
    threads: { type: 'string', default: '2' },
    json: { type: 'boolean', default: false },
    file: { type: 'string' },
    'cache-dir': { type: 'string', default: join(tmpdir(), 'openlora-bench-profile-v1') }
  }
)

async function profileRun(): Promise<{ file: string; prefillRuns: number }> {
  const cache = args['cache-dir']!
  const dir = join(cache, `model-${args.preset}`)
  if (!existsSync(join(dir, 'config.json')))
    await makeModel({ out: dir, preset: args.preset as Preset, seed: 0 })
  const prefix = join(cache, `profile-${args.weights}-${process.pid}`)
  const model = await loadModel(dir, {
    cacheDir: join(cache, 'graphs'),
    weightFormat: parseWeightFormat(args.weights),
    intraOpThreads: Number(args.threads),
    maxBatch: 1,
    maxSeqLen: 128,
    pool: { slots: 2, maxRank: 8, targets: ['q_proj', 'v_proj'] },
    profile: prefix,
    log: silentLogger
  })
  const seq = model.allocSequence()
  let next = (
    await model.step([{ seq, tokens: Array.from({ length: 32 }, (_, i) => 3 + i * 7), slot: 0 }])
  )[0]!
  for (let s = 0; s < Number(args.steps); s++) {
    let best = 0
    for (let i = 1; i < next.length; i++) if (next[i]! > next[best]!) best = i
    next = (await model.step([{ seq, tokens: [best], slot: 0 }]))[0]!
  }
  model.freeSequence(seq)
  await model.dispose()
  const name = (await readdir(cache)).find((f) => join(cache, f).startsWith(prefix) && f.endsWith('.json'))
  if (!name) throw new Error(`ORT wrote no profile with prefix ${prefix}`)
  return { file: join(cache, name), prefillRuns: 1 }
}

const { file, prefillRuns } = args.file ? { file: args.file, prefillRuns: 1 } : await profileRun()
const events = JSON.parse(await readFile(file, 'utf8')) as ProfileEvent[]
const runs = summariseRuns(events)
const decode = meanOfRuns(runs.slice(prefillRuns))
const result = {
  file,
  weights: args.weights,
  preset: args.preset,
  runs: runs.length,
  prefill: meanOfRuns(runs.slice(0, prefillRuns)),
  decode
}
if (args.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
else {
  process.stdout.write(
    `${file}\ndecode: ${decode.steps} steps, ${decode.kernelsPerStep} kernels/step, ${decode.usPerStep} µs/step\n`
  )
  for (const o of decode.ops)
    process.stdout.write(
      `  ${o.op.padEnd(36)} ${String(o.kernelsPerStep).padStart(6)} kernels ${String(o.usPerStep).padStart(7)} µs  ${(o.share * 100).toFixed(1)} %\n`
    )
}
