// Issue 4's runtime benchmark: one base model serving many adapters in shared batches.
//
//   npm run bench:runtime -- [--quick] [--json] [--cache-dir DIR] [--threads N] [--weights fp32|int8] [--spin]
//                            [--family F]
//
// --family F (qwen3, gemma, gemma2, gemma3_text, phi3, falcon, falcon_new, falcon_rw, bloom, glm, glm4;
// default llama) runs the same scenarios on a SmolLM2-135M-shaped checkpoint of that family
// (random weights, runtime-fixtures.ts), its adapters on the family's own module names (a fused
// query_key_value / qkv_proj adapter also adapts k); the naive baseline runs for llama only.
//
// Scenarios (concurrency 8, 32-token prompts, 64 new tokens), run in rounds of ABCDE EDCBA so
// the machine's drifting speed hits them alike (goals use ratios paired within a round): base
// (no adapter), one adapter for every request, 100 and 1,000 distinct adapters (random per
// request), a mixed set (ranks 8/16/32 on all seven projections, its own pool), and the naive
// baseline (merge + new session per adapter).
// Also: cold-load and warm→hot times, RAM per warm adapter, batch-1 decode against the
// memory-bandwidth bound. Fixtures are cached (runtime-fixtures.ts); the first run builds them.
import { readFile } from 'node:fs/promises'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Logger, silentLogger } from '../../src/common/log.ts'
import { loadPeftAdapter, type PeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { AdapterStore } from '../../src/runtime/adapters/store.ts'
import { Engine } from '../../src/runtime/engine/engine.ts'
import type { TokenEvent } from '../../src/runtime/engine/types.ts'
import { loadCheckpointWeights } from '../../src/runtime/formats/safetensors.ts'
import { generate } from '../../src/runtime/generate.ts'
import { type LoadedModel, loadModel } from '../../src/runtime/model/index.ts'
import { compileNative } from '../../src/runtime/native/compile.ts'
import { loadNativeAddon } from '../../src/runtime/native/decoder.ts'
import { sample } from '../../src/runtime/sampling.ts'
import { parseWeightFormat } from '../../src/runtime/weight-format.ts'
import { benchArgs } from './args.ts'
import {
  ALL_TARGETS,
  adapterDir,
  BENCH_FAMILIES,
  ensureAdapters,
  ensureModel,
  familyTargets,
  MIXED_SET,
  QV_SET
} from './runtime-fixtures.ts'
import { copyBandwidth, servesBf16Halves, weightBytesPerToken } from './runtime-measure.ts'
import { mergedSession } from './runtime-naive.ts'
import { engineStats, judge, summaryText, type Tally, tally } from './runtime-report.ts'

const args = benchArgs(
  'npm run bench:runtime -- [--quick] [--json] [--cache-dir DIR] [--threads N] [--weights fp32|int8] [--spin] [--family F]',
  {
    family: { type: 'string', default: 'llama' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'cache-dir': { type: 'string', default: join(tmpdir(), 'openlora-bench-runtime-v1') },
    threads: { type: 'string' },
    weights: { type: 'string', default: 'fp32' },
    // ORT threads spin between ops (infer.threadSpinning), for every session of the run
    spin: { type: 'boolean', default: false }
  }
)
// the base weights of every scenario, the naive baseline's merged sessions included
const WEIGHTS = (() => {
  try {
    return parseWeightFormat(args.weights)
  } catch (err) {
    process.stderr.write(`--weights: ${(err as Error).message}\n`)
    process.exit(2)
  }
})()
const QUICK = args.quick === true
const FAMILY = args.family!
if (!BENCH_FAMILIES.includes(FAMILY)) {
  process.stderr.write(`--family: "${FAMILY}" is not one of ${BENCH_FAMILIES.join(', ')}\n`)
  process.exit(2)
}
// each family keeps its own fixtures (llama keeps the directory it always had)
const CACHE = FAMILY === 'llama' ? args['cache-dir']! : `${args['cache-dir']!}-${FAMILY}`
const THREADS = Number(args.threads ?? availableParallelism())
const CFG = {
  preset: 'smollm2-135m',
  concurrency: 8,
  promptTokens: 32,
  // --quick keeps every scenario and goal but takes fewer samples so it ends within a minute on
  // the 2-core machine: shorter generations, 200 distinct adapters for the "1,000 distinct"
  // scenario (still ~3x the 65 hot slots, so requests keep evicting and loading warm adapters),
  // one naive rebuild; its fixtures are a subset of the full run's (same cache directory)
  newTokens: QUICK ? 24 : 64,
  rounds: QUICK ? 1 : 3,
  // the naive baseline merges Llama-named weights (runtime-naive.ts): llama only
  naivePerRound: FAMILY !== 'llama' ? 0 : QUICK ? 1 : 2,
  qvAdapters: QUICK ? 200 : 1000,
  mixedAdapters: QUICK ? 6 : 24,
  switchSamples: QUICK ? 100 : 400,
  qvPool: { slots: 65, maxRank: 8, targets: ['q_proj', 'v_proj'] },
  mixedPool: { slots: 9, maxRank: 32, targets: ALL_TARGETS },
  warmBudgetBytes: 3 * 1024 ** 3,
  intraOpThreads: THREADS,
  maxSeqLen: 128,
  weightFormat: WEIGHTS,
  sessionConfig: { 'session.intra_op.allow_spinning': args.spin ? '1' : '0' }
}
const say = (m: string) => process.stderr.write(`[bench:runtime] ${m}\n`)
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {})

// seeded, so every run asks for the same prompts and adapters
let seed = 12345
const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32
const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!
const prompt = (vocab: number) =>
  Array.from({ length: CFG.promptTokens }, () => 3 + Math.floor(rand() * (vocab - 3)))

type Done = Extract<TokenEvent, { type: 'done' }>
async function drain(it: AsyncIterable<TokenEvent>): Promise<Done> {
  for await (const ev of it) if (ev.type === 'done') return ev
  throw new Error('no done event')
}

/** One batch of `concurrency` simultaneous requests; adds to the scenario's tally. */
async function batch(
  engine: Engine,
  model: LoadedModel,
  adapters: () => string | null,
  into: Tally,
  newTokens = CFG.newTokens
): Promise<{ tokens: number; ms: number }> {
  const t0 = performance.now()
  const dones = await Promise.all(
    Array.from({ length: CFG.concurrency }, () =>
      drain(
        engine.generate({
          model: model.modelId,
          adapter: adapters(),
          promptIds: prompt(model.config.vocabSize),
          params: { maxNewTokens: newTokens }
        })
      )
    )
  )
  const ms = performance.now() - t0
  into.ms += ms
  for (const d of dones) {
    into.tokens += d.usage.outputTokens
    into.ttft.push(d.timings.firstTokenMs)
    into.queued.push(d.timings.queuedMs)
    into.requests += 1
  }
  return { tokens: dones.reduce((n, d) => n + d.usage.outputTokens, 0), ms }
}

async function main(): Promise<void> {
  const log: Logger = silentLogger
  const started = performance.now()
  const modelDir = await ensureModel(CACHE, say, FAMILY)
  const qvT = await familyTargets(modelDir, ['q_proj', 'v_proj'])
  const allT = await familyTargets(modelDir, [
    'q_proj',
    'k_proj',
    'v_proj',
    'o_proj',
    'gate_proj',
    'up_proj',
    'down_proj'
  ])
  const qvSet = (n: number) => QV_SET(n, qvT.modules)
  const mixedSet = (n: number) => MIXED_SET(n, allT.modules)
  CFG.qvPool.targets = qvT.projections
  CFG.mixedPool.targets = allT.projections
  const opts = {
    cacheDir: join(CACHE, 'graphs'),
    intraOpThreads: THREADS,
    maxBatch: CFG.concurrency,
    maxSeqLen: CFG.maxSeqLen,
    weightFormat: WEIGHTS,
    sessionConfig: CFG.sessionConfig,
    log
  }
  say('loading the model twice: a q/v rank-8 pool and a mixed all-projection rank-32 pool')
  const qvModel = await loadModel(modelDir, { ...opts, pool: CFG.qvPool })
  const mixModel = await loadModel(modelDir, { ...opts, pool: CFG.mixedPool })
  const storeFor = (m: LoadedModel, name: string) =>
    new AdapterStore<PeftAdapter>(
      { dir: join(CACHE, `store-${name}`), warmBudgetBytes: CFG.warmBudgetBytes },
      {
        model: { modelId: m.modelId, config: m.config, pools: m.pools },
        loadAdapter: loadPeftAdapter,
        logger: log
      }
    )
  const qvStore = storeFor(qvModel, 'qv')
  const mixStore = storeFor(mixModel, 'mixed')
  await qvStore.start()
  await mixStore.start()
  const qvCids = await ensureAdapters(CACHE, modelDir, qvSet(CFG.qvAdapters), qvStore, say)
  const mixCids = await ensureAdapters(CACHE, modelDir, mixedSet(CFG.mixedAdapters), mixStore, say)

  // cold → servable, for all 1,000 (which also makes them all warm); RAM measured around it
  say(`cold-loading ${qvCids.length} q/v adapters`)
  gc()
  const mem0 = process.memoryUsage()
  const coldMs: number[] = []
  for (const cid of qvCids) {
    const r = await qvStore.ensure(cid)
    if (r.from === 'cold') coldMs.push(r.ms)
  }
  gc()
  const mem1 = process.memoryUsage()
  const qvStats = qvStore.stats()
  const fp32Bytes = (await qvStore.entry(qvCids[0]!))!.fp32Bytes
  const ramPerWarm = (mem1.arrayBuffers - mem0.arrayBuffers) / qvCids.length
  const rssPerWarm = (mem1.rss - mem0.rss) / qvCids.length

  say('warm → hot switches')
  const switchMs: number[] = []
  for (let i = 0; i < CFG.switchSamples; i++) {
    const cid = pick(qvCids)
    if (qvStore.tierOf(cid) !== 'warm') continue
    switchMs.push((await qvStore.ensure(cid)).ms)
  }

  const limits = { maxBatch: CFG.concurrency, maxSeqLen: CFG.maxSeqLen, maxNewTokens: CFG.newTokens }
  const qvEngine = new Engine(
    { limits },
    { models: [{ model: qvModel, adapters: qvStore }], sample, logger: log }
  )
  const mixEngine = new Engine(
    { limits },
    { models: [{ model: mixModel, adapters: mixStore }], sample, logger: log }
  )
  qvEngine.start()
  mixEngine.start()
  say('warm-up batches (not measured)')
  await batch(qvEngine, qvModel, () => pick(qvCids), tally(), 8)
  await batch(mixEngine, mixModel, () => pick(mixCids), tally(), 8)

  const base = await loadCheckpointWeights(modelDir)
  const S = { base: tally(), one: tally(), d100: tally(), d1000: tally(), mixed: tally() }
  const naive = {
    tokens: 0,
    ms: 0,
    switchMs: [] as number[],
    buildMs: [] as number[],
    sessionMs: [] as number[],
    requests: 0,
    perRound: [] as number[]
  }
  const batch1 = { decodeTokS: [] as number[], copyBps: [] as number[] }
  const d100 = qvCids.slice(0, 100)
  for (let round = 0; round < CFG.rounds; round++) {
    say(`round ${round + 1}/${CFG.rounds}`)
    // an unmeasured short batch on each engine first, so the round's first scenario does not
    // pay for what ran before it (the naive builds; round 1 follows the warm-ups directly)
    if (round > 0) {
      await batch(qvEngine, qvModel, () => pick(qvCids), tally(), 8)
      await batch(mixEngine, mixModel, () => pick(mixCids), tally(), 8)
    }
    // forward then backward (ABCDE EDCBA): a linear drift of the machine's speed during the
    // round then weighs every scenario alike
    const runs: [keyof typeof S, () => Promise<{ tokens: number; ms: number }>][] = [
      ['base', () => batch(qvEngine, qvModel, () => null, S.base)],
      ['one', () => batch(qvEngine, qvModel, () => qvCids[0]!, S.one)],
      ['d100', () => batch(qvEngine, qvModel, () => pick(d100), S.d100)],
      ['d1000', () => batch(qvEngine, qvModel, () => pick(qvCids), S.d1000)],
      ['mixed', () => batch(mixEngine, mixModel, () => pick(mixCids), S.mixed)]
    ]
    const inRound = new Map<string, { tokens: number; ms: number }>()
    for (const [name, run] of [...runs, ...[...runs].reverse()]) {
      const r = await run()
      const acc = inRound.get(name) ?? { tokens: 0, ms: 0 }
      inRound.set(name, { tokens: acc.tokens + r.tokens, ms: acc.ms + r.ms })
    }
    for (const [name, acc] of inRound) S[name as keyof typeof S].perRound.push(acc.tokens / (acc.ms / 1000))
    // batch 1, no adapter, next to a copy-bandwidth measurement
    batch1.copyBps.push(await copyBandwidth(THREADS))
    const one = await drain(
      qvEngine.generate({
        model: qvModel.modelId,
        promptIds: prompt(qvModel.config.vocabSize),
        params: { maxNewTokens: CFG.newTokens }
      })
    )
    batch1.decodeTokS.push(
      (one.usage.outputTokens - 1) / ((one.timings.totalMs - one.timings.firstTokenMs) / 1000)
    )
    const naiveRound = { tokens: naive.tokens, ms: naive.ms }
    for (let k = 0; k < CFG.naivePerRound; k++) {
      const i = Math.floor(rand() * qvCids.length)
      const adapter = await loadPeftAdapter(adapterDir(CACHE, qvSet(CFG.qvAdapters), i), qvModel.config)
      const t0 = performance.now()
      const { session, buildMs, sessionMs } = await mergedSession(
        base,
        qvModel.config,
        adapter,
        join(CACHE, 'naive'),
        {
          intraOpThreads: THREADS,
          maxSeqLen: CFG.maxSeqLen,
          weightFormat: WEIGHTS,
          sessionConfig: CFG.sessionConfig
        }
      )
      naive.switchMs.push(performance.now() - t0)
      naive.buildMs.push(buildMs)
      naive.sessionMs.push(sessionMs)
      for await (const ev of generate(session, {
        promptIds: prompt(qvModel.config.vocabSize),
        params: { maxNewTokens: CFG.newTokens }
      })) {
        if (ev.type === 'done') naive.tokens += ev.usage.outputTokens
      }
      naive.ms += performance.now() - t0
      naive.requests += 1
      await session.dispose()
      gc()
    }
    naive.perRound.push((naive.tokens - naiveRound.tokens) / ((naive.ms - naiveRound.ms) / 1000))
    // the naive builds wrote ~0.5 GB each: let write-back settle before the next round
    if (round < CFG.rounds - 1) await new Promise((r) => setTimeout(r, 3000))
  }
  const engines = { qv: engineStats(qvEngine), mixed: engineStats(mixEngine) }
  await qvEngine.stop()
  await mixEngine.stop()
  await qvStore.stop()
  await mixStore.stop()

  const { scen, results, goals } = judge({
    family: FAMILY,
    scenarios: S,
    naive,
    batch1,
    coldMs,
    switchMs,
    fp32Bytes,
    ramPerWarm,
    rssPerWarm,
    warm: qvStats,
    weightBytesPerToken: weightBytesPerToken(
      qvModel.config,
      WEIGHTS,
      servesBf16Halves(
        JSON.parse(await readFile(join(modelDir, 'config.json'), 'utf8')).torch_dtype,
        qvModel.decodeKernels,
        loadNativeAddon(await compileNative()).info().simd
      )
    ),
    engines,
    wallMs: performance.now() - started,
    qvAdapters: CFG.qvAdapters,
    warmBudgetBytes: CFG.warmBudgetBytes
  })
  const out = {
    bench: 'runtime',
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: availableParallelism(),
      node: process.version,
      ort: (await import('onnxruntime-node/package.json', { with: { type: 'json' } })).default.version,
      gpu: null
    },
    config: {
      ...CFG,
      quick: QUICK,
      executionProvider: qvModel.executionProvider,
      notes:
        'sessions, graphs and adapter files cached and warm (page cache); cold = adapter not in RAM; rounds run scenarios forward then backward, goals are medians of ratios paired within a round; naive = merge + build + new session per request (adapter changes every request), batch 1'
    },
    results,
    goals
  }
  if (args.json) {
    process.stdout.write(JSON.stringify(out) + '\n')
  } else {
    process.stdout.write(summaryText(scen, results, goals))
  }
}

main().catch((err) => {
  process.stderr.write(`bench:runtime could not run: ${(err as Error).stack ?? err}\n`)
  process.exit(1)
})
