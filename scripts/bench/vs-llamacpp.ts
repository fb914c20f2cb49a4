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
// fp32, and int8 with fitted blocks vs block 128 everywhere. Prompts run as served: on the native
// engine where it has its AVX-512 VNNI kernels (int8 and int4 from an int8 copy of the weights, on
// AMX where the CPU has it: docs/NATIVE-DECODE.md "Prompts"), else on ORT (int8/int4 on its
// prefill graph, `prefillGraph`); `formats.<f>.promptKernels` says which,
// `formats.<f>.nativeVsPrefillGraph` gives the prefill graph's prompts in the same rounds, and
// `formats.<f>.promptPathAB` the same prompts with every pass on the decode graph (MatMulNBits;
// fp32: ORT's MatMul graph). --shape 1b|all adds the
// Llama-3.2-1B-shaped pairs (vs-llamacpp-1b.ts; int8/int4 only, ~10 GB of fixtures built once).
// `npm run bench:vs-llamacpp` sets UV_THREADPOOL_SIZE=1 (node-llama-cpp's decode was ~40% slower
// and noisy with the default libuv pool) and NODE_LLAMA_CPP_SKIP_DOWNLOAD=true.
import { readFile } from 'node:fs/promises'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { getLlama, type Llama, LlamaLogLevel } from 'node-llama-cpp'
import { compileNative } from '../../src/runtime/native/compile.ts'
import { loadNativeAddon } from '../../src/runtime/native/decoder.ts'
import { SPIN_POLICIES, type SpinPolicy, spinningSessionConfig } from '../../src/runtime/spinning.ts'
import { benchArgs } from './args.ts'
import { BENCH_FAMILIES } from './runtime-fixtures.ts'
import { run1b } from './vs-llamacpp-1b.ts'
import { r2, run135m } from './vs-llamacpp-135m.ts'
import { issue17Goals } from './vs-llamacpp-goals.ts'
import { humanReport } from './vs-llamacpp-print.ts'
import { sides } from './vs-llamacpp-sides.ts'

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

let seed = 9
const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32
// ids from the fixture tokenizer's real tokens (it has 4,096), past the 3 special ones
const prompt = (): number[] => Array.from({ length: CFG.promptTokens }, () => 3 + Math.floor(rand() * 4000))

/** the native addon's read-bandwidth probe (compiled as the node compiles it) */
async function readBandwidthProbe(): Promise<(bytes: number, threads: number) => number> {
  const addon = loadNativeAddon(await compileNative())
  return (bytes, threads) => addon.readBandwidth(bytes, threads)
}

async function main(): Promise<void> {
  const started = performance.now()
  const loadAtStart = loadavg()[0]
  const llama: Llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error })
  const small =
    SHAPE === '1b'
      ? null
      : await run135m(llama, { cfg: CFG, cache: CACHE, prompt, sessionConfig: SESSION_CONFIG, say })
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
          say,
          readBandwidth: await readBandwidthProbe()
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
  process.stdout.write(humanReport(out, small, big, goals))
}

main().catch((err) => {
  process.stderr.write(`bench:vs-llamacpp could not run: ${(err as Error).stack ?? err}\n`)
  process.exit(1)
})
