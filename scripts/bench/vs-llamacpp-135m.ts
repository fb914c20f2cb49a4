// bench:vs-llamacpp's SmolLM2-135M-shaped run (vs-llamacpp.ts): the engine scenarios (prompt,
// batch-1 decode, 8 sequences on one adapter, 8 sequences on 8 adapters) against llama.cpp's F32
// export in interleaved rounds, then every weight format pair (vs-llamacpp-formats.ts).
import { existsSync } from 'node:fs'
import { copyFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Llama, LlamaContext, LlamaModel } from 'node-llama-cpp'
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
import { ensureModel, familyTargets } from './runtime-fixtures.ts'
import { runFormatPairs } from './vs-llamacpp-formats.ts'
import {
  copyBandwidth,
  llamaMany,
  llamaSingle,
  type Many,
  oursMany,
  oursSingle,
  weightBytesPerToken
} from './vs-llamacpp-sides.ts'

/** What the 135M run takes from the command line (vs-llamacpp.ts CFG). */
export interface Run135m {
  cfg: {
    family: string
    threads: number
    concurrency: number
    adapters: number
    adapterRank: number
    maxSeqLen: number
    newTokens: number
    rounds: number
    longPromptTokens: number
  }
  cache: string
  prompt: () => number[]
  sessionConfig: Record<string, string>
  say: (m: string) => void
}

const FAMILY_FIXTURES = join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'families')

export function pct(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}
export const r2 = (x: number) => Math.round(x * 100) / 100

interface Fixtures {
  modelDir: string
  adapterDirs: string[]
  gguf: { f32: string; f16: string; adapters: string[] }
}

async function ensureFixtures(run: Run135m): Promise<Fixtures> {
  const { cfg: CFG, cache: CACHE, say } = run
  const FAMILY = CFG.family
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

/** The SmolLM2-135M-shaped scenarios (engine, adapters) and format pairs; what `results` held before --shape. */
export async function run135m(llama: Llama, run: Run135m) {
  const { cfg: CFG, cache: CACHE, prompt, say, sessionConfig: SESSION_CONFIG } = run
  const fx = await ensureFixtures(run)
  const threads = CFG.threads

  say('loading our model (ORT session, q/v rank-8 slot pool) and importing the 8 adapters')
  const ours = await loadModel(fx.modelDir, {
    cacheDir: join(CACHE, 'graphs'),
    // prompts on the native engine too (infer.promptKernels native): its fp32 prompt GEMM is
    // ~15 % faster than ORT's here (docs/NATIVE-DECODE.md "Prompts")
    promptKernels: 'native',
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
      decodeKernels: ours.decodeKernels,
      promptKernels: ours.promptKernels,
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
