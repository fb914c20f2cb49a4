// Issue 17: where a decode step's time goes. Runs one prompt + N batch-1 decode steps on a random
// checkpoint with ORT profiling on (LoadModelOptions.profile) and prints kernels per decode step
// and time per op type; or, given --file, summarises a profile written by any run.
//
//   npm run bench:profile -- [--weights fp32|int8|int4] [--preset smollm2-135m] [--steps N]
//                            [--prompt N] [--no-prefill-graph] [--threads N]
//                            [--decode-kernels native|ort] [--json] [--file F]
//
// Decode steps run where the node runs them (--decode-kernels, default native where the model
// qualifies): on the native engine the profile is its per-phase wall time (decoder.cc profile(),
// written as `<prefix>-native.json`), on ORT the per-kernel profile.
// int8/int4 run the prompt on their prefill graph (a second session, its own profile file,
// `-prefill` in the name) unless --no-prefill-graph; the prompt's figures are then that file's.
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
  'npm run bench:profile -- [--weights fp32|int8|int4] [--preset P] [--steps N] [--prompt N] [--no-prefill-graph] [--threads N] [--decode-kernels native|ort] [--json] [--file F]',
  {
    'decode-kernels': { type: 'string', default: 'native' },
    prompt: { type: 'string', default: '32' },
    'prefill-graph': { type: 'boolean', default: true },
    weights: { type: 'string', default: 'fp32' },
    preset: { type: 'string', default: 'smollm2-135m' },
    steps: { type: 'string', default: '16' },
    threads: { type: 'string', default: '2' },
    json: { type: 'boolean', default: false },
    file: { type: 'string' },
    'cache-dir': { type: 'string', default: join(tmpdir(), 'openlora-bench-profile-v1') }
  }
)

if (!['native', 'ort'].includes(args['decode-kernels']!))
  throw new Error(`--decode-kernels must be native or ort, got ${args['decode-kernels']}`)

async function profileRun(): Promise<{
  file: string
  prefillRuns: number
  prefillFile?: string
  nativeFile?: string
}> {
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
    maxSeqLen: Number(args.prompt) + Number(args.steps) + 8,
    prefillGraph: args['prefill-graph'] !== false,
    decodeKernels: args['decode-kernels'] as 'native' | 'ort',
    pool: { slots: 2, maxRank: 8, targets: ['q_proj', 'v_proj'] },
    profile: prefix,
    log: silentLogger
  })
  const seq = model.allocSequence()
  let next = (
    await model.step([
      { seq, tokens: Array.from({ length: Number(args.prompt) }, (_, i) => 3 + ((i * 7) % 250)), slot: 0 }
    ])
  )[0]!
  for (let s = 0; s < Number(args.steps); s++) {
    let best = 0
    for (let i = 1; i < next.length; i++) if (next[i]! > next[best]!) best = i
    next = (await model.step([{ seq, tokens: [best], slot: 0 }]))[0]!
  }
  model.freeSequence(seq)
  await model.dispose()
  const files = (await readdir(cache)).filter((f) => join(cache, f).startsWith(prefix) && f.endsWith('.json'))
  const name = files.find((f) => join(cache, f).startsWith(`${prefix}_`))
  if (!name) throw new Error(`ORT wrote no profile with prefix ${prefix}`)
  const pre = files.find((f) => join(cache, f).startsWith(`${prefix}-prefill_`))
  const nativeFile = `${prefix}-native.json`
  if (existsSync(nativeFile)) {
    // decode steps ran natively: the main session ran only the prompt, if anything
    return pre
      ? { file: join(cache, pre), prefillRuns: 1, nativeFile }
      : { file: join(cache, name), prefillRuns: 1, nativeFile }
  }
  // with a prefill graph the main session ran only the decode steps
  return pre
    ? { file: join(cache, name), prefillRuns: 0, prefillFile: join(cache, pre) }
    : { file: join(cache, name), prefillRuns: 1 }
}

const { file, prefillRuns, prefillFile, nativeFile } = args.file
  ? { file: args.file, prefillRuns: 1, prefillFile: undefined, nativeFile: undefined }
  : await profileRun()
const runsOf = async (f: string) => summariseRuns(JSON.parse(await readFile(f, 'utf8')) as ProfileEvent[])
const runs = await runsOf(file)
/** the native engine's phases per decode step: µs each, and their share */
async function nativeDecode(f: string) {
  const p = JSON.parse(await readFile(f, 'utf8')) as Record<string, number>
  const steps = p.steps ?? 0
  const phases = Object.entries(p).filter(([k]) => k !== 'steps')
  const total = phases.reduce((a, [, v]) => a + v, 0)
  return {
    kernels: 'native',
    steps,
    // one call a step: five phases a layer (each ends at a barrier of the engine's threads) + the head
    usPerStep: Math.round(total / Math.max(1, steps)),
    ops: phases.map(([op, v]) => ({
      op,
      usPerStep: Math.round(v / Math.max(1, steps)),
      share: total > 0 ? v / total : 0
    }))
  }
}
const decode = nativeFile ? await nativeDecode(nativeFile) : meanOfRuns(runs.slice(prefillRuns))
const prefill = prefillFile ? meanOfRuns(await runsOf(prefillFile)) : meanOfRuns(runs.slice(0, prefillRuns))
const result = {
  file,
  ...(prefillFile ? { prefillFile } : {}),
  weights: args.weights,
  preset: args.preset,
  promptTokens: Number(args.prompt),
  runs: runs.length,
  prefill,
  decode
}
if (args.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
else {
  if ('kernels' in decode) {
    process.stdout.write(
      `${nativeFile}\ndecode (native engine): ${decode.steps} steps, ${decode.usPerStep} µs/step\n`
    )
    for (const o of decode.ops)
      process.stdout.write(
        `  ${o.op.padEnd(36)} ${String(o.usPerStep).padStart(7)} µs  ${(o.share * 100).toFixed(1)} %\n`
      )
  } else {
    process.stdout.write(
      `${file}\ndecode: ${decode.steps} steps, ${decode.kernelsPerStep} kernels/step, ${decode.usPerStep} µs/step\n`
    )
    for (const o of decode.ops)
      process.stdout.write(
        `  ${o.op.padEnd(36)} ${String(o.kernelsPerStep).padStart(6)} kernels ${String(o.usPerStep).padStart(7)} µs  ${(o.share * 100).toFixed(1)} %\n`
      )
  }
  process.stdout.write(`prompt (${args.prompt} tokens): ${prefill.usPerStep} µs\n`)
  for (const o of prefill.ops)
    process.stdout.write(
      `  ${o.op.padEnd(36)} ${String(o.kernelsPerStep).padStart(6)} kernels ${String(o.usPerStep).padStart(7)} µs  ${(o.share * 100).toFixed(1)} %\n`
    )
}
