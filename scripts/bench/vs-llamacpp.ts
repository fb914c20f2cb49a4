// Issue 9: our engine side by side with llama.cpp (node-llama-cpp's prebuilt CPU library) on the
// very same weights (a random SmolLM2-135M-shaped checkpoint and its GGUF export), 2 threads each,
// interleaved A/B/A/B round by round so both see the same machine state.
//
//   npm run bench:vs-llamacpp -- [--quick] [--json] [--cache-dir DIR] [--threads N] [--rounds N]
//                                [--new-tokens N] [--family F] [--shape 135m|1b|all]
//                                [--long-prompt N] [--spinning off|in-run|always]
//
// --family F (qwen3, gemma, gemma3_text, phi3, falcon, bloom, glm4, …; default llama) runs the
// same scenarios on bench:runtime's SmolLM2-135M-shaped checkpoint of that family (random
// weights, the family fixture's tokenizer) and its GGUF export for llama.cpp's architecture of
// the family; a family llama.cpp cannot compute stops here with the export's refusal.
//
// Scenarios (32-token prompts, greedy, up to 64 new tokens, both stop at eos):
//   prompt   one request: time to the first token (prefill 32 tokens + first pick) → tok/s
//   decode   the same request: tokens after the first ÷ their time → tok/s
//   one8     8 concurrent requests on one adapter (llama.cpp: one context, 8 sequences, adapter on it)
//   mixed8   8 concurrent requests on 8 different adapters. llama.cpp applies adapters per context,
//            so its best honest option is one context per adapter (8 contexts, 1 sequence each),
//            all 8 requests in flight at once; each decode step is then a batch of 1 per adapter.
// Format pairs (vs-llamacpp-formats.ts): fp32/F32, int8/Q8_0, int4/Q4_0 on graphs without LoRA,
// batch-1 decode, prompt processing of 32 and --long-prompt (512) tokens, each engine's error vs
// fp32, and int8 with fitted blocks vs block 128 everywhere. --shape 1b|all adds the
// Llama-3.2-1B-shaped pairs (vs-llamacpp-1b.ts; int8/int4 only, ~10 GB of fixtures built once).
// `npm run bench:vs-llamacpp` sets UV_THREADPOOL_SIZE=1 (node-llama-cpp's decode was ~40% slower
// and noisy with the default libuv pool) and NODE_LLAMA_CPP_SKIP_DOWNLOAD=true.
import { existsSync } from 'node:fs'
import { copyFile, readFile, writeFile } from 'node:fs/promises'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { getLlama, type Llama, type LlamaContext, LlamaLogLevel, type LlamaModel } from 'node-llama-cpp'
import { silentLogger } from '../../src/common/log.ts'
import { loadPeftAdapter, type PeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { AdapterStore } from '../../src/runtime/adapters/store.ts'
import { Engine } from '../../src/runtime/engine/engine.ts'
import { exportModelToGguf } from '../../src/runtime/export/gguf-families.ts'
import { loadModelConfigFromDir } from '../../src/runtime/export/gguf-llama.ts'
import { exportLoraToGguf } from '../../src/runtime/export/gguf-lora.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { loadModel } from '../../src/runtime/model/index.ts'
import { sample } from '../../src/runtime/sampling.ts'
import { SPIN_POLICIES, type SpinPolicy, spinningSessionConfig } from '../../src/runtime/spinning.ts'
import { benchArgs } from './args.ts'
import { BENCH_FAMILIES, ensureModel, familyTargets } from './runtime-fixtures.ts'
import { run1b } from './vs-llamacpp-1b.ts'
import { type PairResult, runFormatPairs } from './vs-llamacpp-formats.ts'
import { issue17Goals } from './vs-llamacpp-goals.ts'
import {
  copyBandwidth,
  llamaMany,
  llamaSingle,
  type Many,
  oursMany,
  oursSingle,
  sides,
  weightBytesPerToken
} from './vs-llamacpp-sides.ts'

const args = benchArgs(
  'npm run bench:vs-llamacpp -- [--quick] [--json] [--cache-dir DIR] [--threads N] [--rounds N] [--new-tokens N] [--family F] [--shape 135m|1b|all] [--long-prompt N] [--spinning off|in-run|always]',
  {
    family: { type: 'string', default: 'llama' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    'cache-dir': { type: 'string' },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string' },
    // fewer new tokens: a smoke test of the whole run on a busy machine (not the issue's figure)
    'new-tokens': { type: 'string', default: '64' },
    // 135m (default, ~1 min quick), 1b (the Llama-3.2-1B shape's int8/int4 pairs only), all
    shape: { type: 'string', default: '135m' },
    // tokens of the long prompt-processing case (0 = leave it out)
    'long-prompt': { type: 'string', default: '512' },
    // our sessions' spinning policy (infer.threadSpinning); off is the node's default
    spinning: { type: 'string', default: 'off' }
  }
)
const QUICK = args.quick === true
const FAMILY = args.family!
if (!BENCH_FAMILIES.includes(FAMILY)) {
  process.stderr.write(`--family: "${FAMILY}" is not one of ${BENCH_FAMILIES.join(', ')}\n`)
  process.exit(2)
}
const SHAPE = args.shape!
if (!['135m', '1b', 'all'].includes(SHAPE)) {
  process.stderr.write(`--shape: "${SHAPE}" is not one of 135m, 1b, all\n`)
  process.exit(2)
}
const SPIN = args.spinning as SpinPolicy
if (!SPIN_POLICIES.includes(SPIN)) {
  process.stderr.write(`--spinning: "${SPIN}" is not one of ${SPIN_POLICIES.join(', ')}\n`)
  process.exit(2)
}
const SESSION_CONFIG = spinningSessionConfig(SPIN)
const CACHE =
  args['cache-dir'] ??
  join(
    tmpdir(),
    FAMILY === 'llama' ? 'openlora-bench-vs-llamacpp-v1' : `openlora-bench-vs-llamacpp-${FAMILY}-v1`
  )
const CFG = {
  family: FAMILY,
  preset: 'smollm2-135m',
  weights: 'F32',
  threads: Number(args.threads),
  promptTokens: 32,
  longPromptTokens: Number(args['long-prompt']),
  shape: SHAPE,
  shape1b:
    SHAPE === '135m' ? null : 'Llama-3.2-1B config, random weights, int8/int4 vs Q8_0/Q4_0 (no fp32: 5 GB)',
  spinning: SPIN,
  newTokens: Number(args['new-tokens']),
  concurrency: 8,
  adapters: 8,
  adapterRank: 8,
  adapterTargets: ['q_proj', 'v_proj'],
  rounds: Number(args.rounds ?? (QUICK ? 2 : 6)),
  maxSeqLen: 128,
  llamaCpp: {
    package: 'node-llama-cpp',
    kvCache: 'F16 (llama.cpp default)',
    flashAttention: 'auto (llama.cpp default)',
    uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? 'default'
  }
}
sides.newTokens = CFG.newTokens
// the 1B checkpoint, its graphs and GGUF exports (~10 GB): apart from the 135M cache
const CACHE_1B = join(args['cache-dir'] ?? tmpdir(), 'openlora-bench-vs-llamacpp-1b-v1')
const say = (m: string) => process.stderr.write(`[bench:vs-llamacpp] ${m}\n`)
const FAMILY_FIXTURES = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'families')

let seed = 9
const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32
// ids from the fixture tokenizer's real tokens (it has 4,096), past the 3 special ones
const prompt = (): number[] => Array.from({ length: CFG.promptTokens }, () => 3 + Math.floor(rand() * 4000))

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}
const r2 = (x: number) => Math.round(x * 100) / 100

interface Fixtures {
  modelDir: string
  adapterDirs: string[]
  gguf: { f32: string; f16: string; adapters: string[] }
}

async function ensureFixtures(): Promise<Fixtures> {
  const modelDir = join(CACHE, 'model')
  const adapterDirs = Array.from({ length: CFG.adapters }, (_, i) => join(CACHE, `adapter-${i}`))
  const gguf = {
    f32: join(CACHE, 'model-f32.gguf'),
    f16: join(CACHE, 'model-f16.gguf'),
    adapters: adapterDirs.map((d) => `${d}.gguf`)
  }
  if (existsSync(join(CACHE, 'fixtures.done'))) return { modelDir, adapterDirs, gguf }
  say(`building fixtures once: smollm2-135m-shaped ${FAMILY} checkpoint, 8 adapters, GGUF exports`)
  if (FAMILY === 'llama') await makeModel({ out: modelDir, preset: 'smollm2-135m', seed: 0 })
  else {
    // bench:runtime's checkpoint of the family, and the fixture's tokenizer (the export needs one;
    // ids past its vocabulary become llama.cpp's unused [PADn] tokens, which the prompts may use)
    await ensureModel(CACHE, say, FAMILY)
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      await copyFile(join(FAMILY_FIXTURES, FAMILY, f), join(modelDir, f))
  }
  const config = await loadModelConfigFromDir(modelDir)
  await exportModelToGguf(modelDir, gguf.f32, { dtype: 'F32' })
  await exportModelToGguf(modelDir, gguf.f16, { dtype: 'F16' })
  const { modules } = await familyTargets(modelDir, ['q_proj', 'v_proj'])
  for (let i = 0; i < CFG.adapters; i++) {
    await makeAdapter({
      model: modelDir,
      out: adapterDirs[i],
      rank: CFG.adapterRank,
      targets: modules,
      seed: 1000 + i
    })
    const a = await loadPeftAdapter(adapterDirs[i], config)
    await exportLoraToGguf(a, config, gguf.adapters[i])
  }
  await writeFile(join(CACHE, 'fixtures.done'), '')
  return { modelDir, adapterDirs, gguf }
}

// ---- run ----------------------------------------------------------------------------------------

/** The SmolLM2-135M-shaped scenarios (engine, adapters) and format pairs; what `results` held before --shape. */
async function run135m(llama: Llama) {
  const fx = await ensureFixtures()
  const threads = CFG.threads

  say('loading our model (ORT session, q/v rank-8 slot pool) and importing the 8 adapters')
  const ours = await loadModel(fx.modelDir, {
    cacheDir: join(CACHE, 'graphs'),
    intraOpThreads: threads,
    maxBatch: CFG.concurrency,
    maxSeqLen: CFG.maxSeqLen,
    sessionConfig: SESSION_CONFIG,
    // a fused query_key_value adapts k too: the pool holds every projection the modules feed
    pool: {
      slots: CFG.adapters + 1,
      maxRank: CFG.adapterRank,
      targets: (await familyTargets(fx.modelDir, ['q_proj', 'v_proj'])).projections
    },
    log: silentLogger
  })
  const store = new AdapterStore<PeftAdapter>(
    { dir: join(CACHE, 'store'), warmBudgetBytes: 1024 ** 3 },
    {
      model: { modelId: ours.modelId, config: ours.config, pools: ours.pools },
      loadAdapter: loadPeftAdapter,
      logger: silentLogger
    }
  )
  await store.start()
  const cids: string[] = []
  for (const d of fx.adapterDirs) cids.push((await store.import(d)).cid)
  const engine = new Engine(
    { limits: { maxBatch: CFG.concurrency, maxSeqLen: CFG.maxSeqLen, maxNewTokens: CFG.newTokens } },
    { models: [{ model: ours, adapters: store }], sample, logger: silentLogger }
  )
  engine.start()

  say('loading llama.cpp: F32 and F16 models, a 1-sequence context, an 8-sequence context with')
  say('one adapter, and 8 one-sequence contexts with one adapter each')
  const lm32: LlamaModel = await llama.loadModel({ modelPath: fx.gguf.f32 })
  const lm16: LlamaModel = await llama.loadModel({ modelPath: fx.gguf.f16 })
  const ctxOpts = { contextSize: CFG.maxSeqLen, threads }
  const single32 = await lm32.createContext({ ...ctxOpts, sequences: 1 })
  const single16 = await lm16.createContext({ ...ctxOpts, sequences: 1 })
  const one8 = await lm32.createContext({
    ...ctxOpts,
    sequences: CFG.concurrency,
    lora: { adapters: [{ filePath: fx.gguf.adapters[0] }] }
  })
  const perAdapter: LlamaContext[] = []
  for (const file of fx.gguf.adapters) {
    perAdapter.push(
      await lm32.createContext({ ...ctxOpts, sequences: 1, lora: { adapters: [{ filePath: file }] } })
    )
  }
  const eos = new Set(ours.config.eosTokenIds)

  say('warm-up (not measured): one pass of every scenario on both engines')
  say(`  ours batch 1: ${JSON.stringify(await oursSingle(engine, ours, prompt()))}`)
  say(
    `  ours 8 adapters: ${JSON.stringify(await oursMany(engine, ours, cids, Array.from({ length: CFG.concurrency }, prompt)))}`
  )
  say(`  llama.cpp batch 1: ${JSON.stringify(await llamaSingle(single32, prompt(), eos))}`)
  say(`  llama.cpp F16 batch 1: ${JSON.stringify(await llamaSingle(single16, prompt(), eos))}`)
  say(
    `  llama.cpp 8 seq: ${JSON.stringify(await llamaMany([one8], Array.from({ length: CFG.concurrency }, prompt), eos))}`
  )
  say(
    `  llama.cpp 8 contexts: ${JSON.stringify(await llamaMany(perAdapter, Array.from({ length: CFG.concurrency }, prompt), eos))}`
  )

  const S = {
    ours: { prompt: [] as number[], decode: [] as number[], one8: [] as number[], mixed8: [] as number[] },
    llama: { prompt: [] as number[], decode: [] as number[], one8: [] as number[], mixed8: [] as number[] },
    llamaF16: { prompt: [] as number[], decode: [] as number[] },
    copyGBps: [] as number[]
  }
  const tps = (m: Many) => m.tokens / (m.ms / 1000)
  for (let round = 0; round < CFG.rounds; round++) {
    say(`round ${round + 1}/${CFG.rounds}`)
    // each scenario: the same prompts for both engines, ours then llama.cpp (A/B), alternating
    // which goes first from round to round so neither always runs on a warmer cache
    const pair = async (a: () => Promise<void>, b: () => Promise<void>) => {
      if (round % 2 === 0) {
        await a()
        await b()
      } else {
        await b()
        await a()
      }
    }
    const p1 = prompt()
    await pair(
      async () => {
        const r = await oursSingle(engine, ours, p1)
        S.ours.prompt.push(r.promptTokS)
        S.ours.decode.push(r.decodeTokS)
      },
      async () => {
        const r = await llamaSingle(single32, p1, eos)
        S.llama.prompt.push(r.promptTokS)
        S.llama.decode.push(r.decodeTokS)
      }
    )
    const r16 = await llamaSingle(single16, p1, eos)
    S.llamaF16.prompt.push(r16.promptTokS)
    S.llamaF16.decode.push(r16.decodeTokS)
    const p8 = Array.from({ length: CFG.concurrency }, prompt)
    await pair(
      async () => void S.ours.one8.push(tps(await oursMany(engine, ours, [cids[0]], p8))),
      async () => void S.llama.one8.push(tps(await llamaMany([one8], p8, eos)))
    )
    const m8 = Array.from({ length: CFG.concurrency }, prompt)
    await pair(
      async () => void S.ours.mixed8.push(tps(await oursMany(engine, ours, cids, m8))),
      async () => void S.llama.mixed8.push(tps(await llamaMany(perAdapter, m8, eos)))
    )
    S.copyGBps.push(copyBandwidth() / 1e9)
  }

  await engine.stop()
  await store.stop()
  await ours.dispose()
  for (const c of [single32, single16, one8, ...perAdapter]) await c.dispose()
  await lm32.dispose()
  await lm16.dispose()
  // every weight format beside its llama.cpp counterpart (vs-llamacpp-formats.ts), one at a time
  // so only one pair of models is resident
  const { pairs: formats } = await runFormatPairs({
    modelDir: fx.modelDir,
    cache: CACHE,
    llama,
    threads,
    rounds: CFG.rounds,
    // room for the long prompt and its first token, same for both engines
    maxSeqLen: Math.max(CFG.maxSeqLen, CFG.longPromptTokens + 64),
    newTokens: CFG.newTokens,
    prompt,
    eos,
    say,
    longPrompt: CFG.longPromptTokens,
    int8BlockAB: true,
    sessionConfig: SESSION_CONFIG
  })

  const med = (xs: number[]) => r2(pct(xs, 50))
  const stat = (xs: number[]) => ({
    p50: med(xs),
    min: r2(Math.min(...xs)),
    max: r2(Math.max(...xs)),
    n: xs.length
  })
  const ratio = (a: number[], b: number[]) => r2(pct(a, 50) / pct(b, 50))
  // each engine's fastest round is its least disturbed one: on a shared machine other processes
  // only ever slow a run down, and llama.cpp's spinning barriers suffer from them far more than
  // ORT, so the ratio of bests is the fairer estimate of the two on a quiet machine
  const bestRatio = (a: number[], b: number[]) => r2(Math.max(...a) / Math.max(...b))
  // per-round ratios too: each pair ran within seconds, so their spread shows the noise
  const roundRatios = (a: number[], b: number[]) => a.map((x, i) => r2(x / b[i]))
  const cfgModel = ours.config
  const copy = pct(S.copyGBps, 50) * 1e9
  const bound = (bytesPerWeight: number) => r2(copy / weightBytesPerToken(cfgModel, bytesPerWeight))
  const results = {
    ours: {
      promptTokensPerSec: stat(S.ours.prompt),
      decodeTokensPerSec: stat(S.ours.decode),
      oneAdapter8TokensPerSec: stat(S.ours.one8),
      distinctAdapters8TokensPerSec: stat(S.ours.mixed8)
    },
    llamaCpp: {
      promptTokensPerSec: stat(S.llama.prompt),
      decodeTokensPerSec: stat(S.llama.decode),
      oneAdapter8TokensPerSec: stat(S.llama.one8),
      distinctAdapters8TokensPerSec: stat(S.llama.mixed8)
    },
    llamaCppF16: { promptTokensPerSec: stat(S.llamaF16.prompt), decodeTokensPerSec: stat(S.llamaF16.decode) },
    ratios: {
      prompt: ratio(S.ours.prompt, S.llama.prompt),
      decode: ratio(S.ours.decode, S.llama.decode),
      oneAdapter8: ratio(S.ours.one8, S.llama.one8),
      distinctAdapters8: ratio(S.ours.mixed8, S.llama.mixed8),
      decodeVsLlamaF16: ratio(S.ours.decode, S.llamaF16.decode),
      ofBest: {
        prompt: bestRatio(S.ours.prompt, S.llama.prompt),
        decode: bestRatio(S.ours.decode, S.llama.decode),
        oneAdapter8: bestRatio(S.ours.one8, S.llama.one8),
        distinctAdapters8: bestRatio(S.ours.mixed8, S.llama.mixed8),
        decodeVsLlamaF16: bestRatio(S.ours.decode, S.llamaF16.decode)
      },
      perRound: {
        prompt: roundRatios(S.ours.prompt, S.llama.prompt),
        decode: roundRatios(S.ours.decode, S.llama.decode),
        oneAdapter8: roundRatios(S.ours.one8, S.llama.one8),
        distinctAdapters8: roundRatios(S.ours.mixed8, S.llama.mixed8)
      }
    },
    // batch-1 decode reads every weight once per token: what the measured bandwidth allows
    bandwidth: {
      copyGBps: stat(S.copyGBps),
      weightBytesPerTokenF32: weightBytesPerToken(cfgModel, 4),
      boundDecodeTokensPerSec: { f32: bound(4), f16: bound(2), int8: bound(1.0625), int4: bound(0.5625) },
      oursDecodeFractionOfF32Bound: r2(pct(S.ours.decode, 50) / bound(4)),
      llamaDecodeFractionOfF32Bound: r2(pct(S.llama.decode, 50) / bound(4))
    },
    formats
  }
  return results
}

async function main(): Promise<void> {
  const started = performance.now()
  const loadAtStart = loadavg()[0]
  const llama: Llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error })
  const small = SHAPE === '1b' ? null : await run135m(llama)
  const big =
    SHAPE === '135m'
      ? null
      : await run1b({
          cache: CACHE_1B,
          llama,
          threads: CFG.threads,
          rounds: CFG.rounds,
          newTokens: CFG.newTokens,
          longPrompt: CFG.longPromptTokens,
          prompt,
          sessionConfig: SESSION_CONFIG,
          say
        })
  await llama.dispose()
  const results = {
    ...(small ?? {}),
    ...(big ? { shape1b: big } : {}),
    wallSeconds: r2((performance.now() - started) / 1000)
  }
  const goals = issue17Goals(small, big)
  const out = {
    bench: 'vs-llamacpp',
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: availableParallelism(),
      node: process.version,
      ort: (await import('onnxruntime-node/package.json', { with: { type: 'json' } })).default.version,
      llamaCpp: `node-llama-cpp ${JSON.parse(await readFile(new URL('../../node_modules/node-llama-cpp/package.json', import.meta.url), 'utf8')).version}`,
      gpu: null,
      // 1-minute load averages around the run. Above the core count, llama.cpp's spinning thread
      // barriers (hundreds per token) lose far more than ORT does: ratios then overstate ours.
      loadAvg1m: { start: r2(loadAtStart), end: r2(loadavg()[0]) },
      busy: Math.max(loadAtStart, loadavg()[0]) > 1.5 * availableParallelism()
    },
    config: {
      ...CFG,
      quick: QUICK,
      notes:
        'same checkpoint both sides (our F32 safetensors load = GGUF F32 export); warm: sessions, contexts, adapters (hot in slots / loaded on contexts) and one pass of every scenario; ' +
        "goals (issue 17) use medians of interleaved rounds; ratios.ofBest (each engine's best round) and per-round ratios are reported too; formats.* = each weight format beside its llama.cpp counterpart (vs-llamacpp-formats.ts); " +
        'llama.cpp mixed8 = one context per adapter, 8 requests in flight (its adapters are per context, not per sequence); llamaCppF16 runs the F16 export for reference (not a goal)'
    },
    results,
    goals
  }
  if (args.json) {
    process.stdout.write(JSON.stringify(out) + '\n')
    return
  }
  // human output: the 135M scenario table, each format pair of each shape, the goals
  type Stat = { p50: number; max: number }
  const row = (name: string, a: Stat, b: Stat, r: number, rb: number) =>
    `${name.padEnd(20)} ${`${a.p50} / ${a.max}`.padStart(15)} ${`${b.p50} / ${b.max}`.padStart(15)} ${`${r} / ${rb}`.padStart(12)}`
  const lines: string[] = []
  if (small) {
    const R = small
    lines.push(
      `${'tok/s median / best'.padEnd(20)} ${'ours'.padStart(15)} ${'llama.cpp'.padStart(15)} ${'ratio'.padStart(12)}`,
      row(
        'prompt (32 tokens)',
        R.ours.promptTokensPerSec,
        R.llamaCpp.promptTokensPerSec,
        R.ratios.prompt,
        R.ratios.ofBest.prompt
      ),
      row(
        'decode, batch 1',
        R.ours.decodeTokensPerSec,
        R.llamaCpp.decodeTokensPerSec,
        R.ratios.decode,
        R.ratios.ofBest.decode
      ),
      row(
        '8 seq, one adapter',
        R.ours.oneAdapter8TokensPerSec,
        R.llamaCpp.oneAdapter8TokensPerSec,
        R.ratios.oneAdapter8,
        R.ratios.ofBest.oneAdapter8
      ),
      row(
        '8 seq, 8 adapters',
        R.ours.distinctAdapters8TokensPerSec,
        R.llamaCpp.distinctAdapters8TokensPerSec,
        R.ratios.distinctAdapters8,
        R.ratios.ofBest.distinctAdapters8
      ),
      `llama.cpp F16: prompt ${R.llamaCppF16.promptTokensPerSec.p50}, decode ${R.llamaCppF16.decodeTokensPerSec.p50} tok/s`,
      `bandwidth ${R.bandwidth.copyGBps.p50} GB/s copy → decode bound f32 ${R.bandwidth.boundDecodeTokensPerSec.f32}, f16 ${R.bandwidth.boundDecodeTokensPerSec.f16}, int8 ${R.bandwidth.boundDecodeTokensPerSec.int8} tok/s`
    )
  }
  const pairLines = (shape: string, pairs: Partial<Record<string, PairResult>>) =>
    Object.entries(pairs).map(
      ([f, r]) =>
        `${shape} ${f.padEnd(5)} decode ${r!.decodeTokS.ours} vs ${r!.decodeTokS.llama} tok/s = ${r!.decodeRatio}×; prompt ${r!.promptTokS.tokens} ${r!.promptRatio}×` +
        (r!.longPromptTokS ? `, ${r!.longPromptTokS.tokens} ${r!.longPromptRatio}×` : '') +
        (r!.int8BlockAB ? `; int8 fitted ÷ block 128 decode ${r!.int8BlockAB.fittedVs128Decode}` : '') +
        (r!.errorVsFp32
          ? `; KL vs fp32 ours ${r!.errorVsFp32.ours.kl}, llama.cpp ${r!.errorVsFp32.llama.kl}`
          : '')
    )
  if (small) lines.push(...pairLines('135m', small.formats))
  if (big) {
    lines.push(...pairLines('1b  ', big.formats))
    lines.push(
      `1b bandwidth ${big.bandwidth.copyGBps} GB/s copy; decode ÷ bound: int4 ${big.bandwidth.decodeFractionOfBound.int4}, Q4_0 ${big.bandwidth.decodeFractionOfBound.Q4_0}, int8 ${big.bandwidth.decodeFractionOfBound.int8}, Q8_0 ${big.bandwidth.decodeFractionOfBound.Q8_0}`
    )
  }
  lines.push(...goals.map((x) => `${x.met ? 'MET ' : 'MISS'} ${x.name} = ${x.value} (${x.target})`))
  if (out.machine.busy)
    lines.push(
      `WARNING: load average ${out.machine.loadAvg1m.start} → ${out.machine.loadAvg1m.end} on ${availableParallelism()} cores: ratios are not trustworthy`
    )
  process.stdout.write(lines.join('\n') + '\n')
}

main().catch((err) => {
  process.stderr.write(`bench:vs-llamacpp could not run: ${(err as Error).stack ?? err}\n`)
  process.exit(1)
})
