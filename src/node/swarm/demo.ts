// Demo assets of a swarm run: the tiny preset model (random weights, a demo), K seeded PEFT
// adapters, and a demo datanet built from the model's own greedy outputs. How quoting is arranged:
// for each adapter a few prompts are run greedily here, once, and each output's text becomes one
// datanet contribution (contributors take turns). A job later sends one of those prompts with the
// same adapter, greedy, so the serving node's output reproduces the contribution and the receipt
// credits its contributor through span attribution. Outputs of a random model are partly invalid
// UTF-8, so only prompts whose output survives decode → encode for a whole span are kept.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { DEFAULT_MIN_SPAN_TOKENS } from '../../attribution/constants.ts'
import { silentLogger } from '../../common/log.ts'
import { seededRng } from '../../common/random.ts'
import type { Hex } from '../../crypto/hash.ts'
import { loadPeftAdapter } from '../../runtime/adapters/peft.ts'
import { makeAdapter } from '../../runtime/fixtures/make-adapter.ts'
import { makeModel } from '../../runtime/fixtures/make-model.ts'
import { longestCommonRun } from '../../runtime/fixtures/quotable.ts'
import { generate } from '../../runtime/generate.ts'
import { loadModel } from '../../runtime/model/index.ts'

export interface DemoPrompt {
  adapter: number
  promptIds: number[]
  outputIds: number[]
  text: string
  /** tokens of the output that survive decode → encode in one run (what spans can match) */
  quotable: number
}

export interface DemoAssets {
  modelDir: string
  modelId: string
  weightsHash: Hex
  cacheDir: string
  adapters: { dir: string; cid: string }[]
  prompts: DemoPrompt[]
  maxNewTokens: number
}

export interface DemoOptions {
  root: string
  adapters: number
  /** prompts kept per adapter */
  promptsPerAdapter?: number
  maxNewTokens?: number
  seed?: number
}

export async function makeDemoAssets(opts: DemoOptions): Promise<DemoAssets> {
  const seed = opts.seed ?? 7
  const perAdapter = opts.promptsPerAdapter ?? 3
  const maxNewTokens = opts.maxNewTokens ?? 24
  const modelDir = join(opts.root, 'demo-model')
  const cacheDir = join(opts.root, 'model-cache')
  await mkdir(cacheDir, { recursive: true })
  const made = await makeModel({ out: modelDir, preset: 'tiny', seed })
  const adapters: { dir: string; cid: string }[] = []
  for (let k = 0; k < opts.adapters; k++) {
    const dir = join(opts.root, `demo-adapter-${k}`)
    await makeAdapter({
      model: modelDir,
      out: dir,
      rank: 8,
      targets: ['q_proj', 'v_proj'],
      seed: 100 + seed + k
    })
    adapters.push({ dir, cid: '' })
  }
  const model = await loadModel(modelDir, {
    cacheDir,
    maxBatch: 1,
    maxSeqLen: 256,
    intraOpThreads: 1,
    pool: { slots: 2, maxRank: 8, targets: ['q_proj', 'v_proj'] },
    worker: false,
    log: silentLogger
  })
  const prompts: DemoPrompt[] = []
  try {
    const tok = model.tokenizer!
    const vocab = made.config.vocabSize
    const draw = seededRng(seed)
    for (let k = 0; k < adapters.length; k++) {
      const adapter = await loadPeftAdapter(adapters[k]!.dir, model.config)
      adapters[k]!.cid = adapter.cid
      model.pools.write(1, adapter)
      let kept = 0
      // Most random prompts give a quotable output; 40 tries per adapter is far more than needed.
      for (let attempt = 0; attempt < 40 && kept < perAdapter; attempt++) {
        const promptIds = Array.from(
          { length: 5 + Math.floor(draw() * 6) },
          () => 3 + Math.floor(draw() * (vocab - 3))
        )
        let done: { outputIds: number[]; text: string } | undefined
        for await (const ev of generate(model, {
          promptIds,
          params: { maxNewTokens },
          slot: 1,
          decode: (ids) => tok.decode(ids, { skipSpecialTokens: true })
        }))
          if (ev.type === 'done') done = ev
        if (!done || done.outputIds.length < DEFAULT_MIN_SPAN_TOKENS) continue
        const back = tok.encode(tok.decode(done.outputIds), { addSpecialTokens: false })
        const quotable = longestCommonRun(done.outputIds, back)
        if (quotable < DEFAULT_MIN_SPAN_TOKENS) continue
        prompts.push({
          adapter: k,
          promptIds,
          outputIds: done.outputIds,
          text: tok.decode(done.outputIds),
          quotable
        })
        kept++
      }
      if (kept === 0) throw new Error(`no quotable greedy output for demo adapter ${k} in 40 prompts`)
    }
    return {
      modelDir,
      modelId: model.modelId,
      weightsHash: model.weightsHash,
      cacheDir,
      adapters,
      prompts,
      maxNewTokens
    }
  } finally {
    await model.dispose()
  }
}
