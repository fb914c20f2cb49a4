// llama.cpp (node-llama-cpp's prebuilt CPU library) runs our GGUF exports of the tiny preset and
// must produce our runtime's greedy tokens, with and without a LoRA adapter. This checks both
// exports (base weights incl. the q/k permutation, and the adapter layout and scale) end to end.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, type Token } from 'node-llama-cpp'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadPeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { exportCheckpointToGguf } from '../../src/runtime/export/gguf-llama.ts'
import { exportLoraToGguf } from '../../src/runtime/export/gguf-lora.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { generate } from '../../src/runtime/generate.ts'
import { type LoadedModel, loadModel } from '../../src/runtime/model/index.ts'
import { Tokenizer } from '../../src/runtime/tokenizer.ts'

const NEW_TOKENS = 24
// token ids, not text: the comparison is of the two forward passes; tokenizer parity is its own test
const PROMPTS = [
  [1, 72, 101, 108, 108, 111, 300, 400],
  [1, 5, 9, 200, 201, 202],
  [1, 444, 17, 88, 311, 56, 250, 19, 402, 77, 3, 111]
]

let dir: string
let ours: LoadedModel
let llama: Llama
let theirs: LlamaModel
let base: string
let lora: string

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'llamacpp-e2e-'))
  const model = await makeModel({ out: join(dir, 'tiny'), preset: 'tiny', seed: 11 })
  const adapterDir = join(dir, 'adapter')
  await makeAdapter({
    model: model.dir,
    out: adapterDir,
    rank: 4,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    seed: 5
  })
  base = join(dir, 'tiny.gguf')
  lora = join(dir, 'adapter.gguf')
  await exportCheckpointToGguf(model.dir, base)
  const adapter = await loadPeftAdapter(adapterDir, model.config)
  await exportLoraToGguf(adapter, model.config, lora)

  ours = await loadModel(model.dir, {
    cacheDir: join(dir, 'cache'),
    intraOpThreads: 2,
    maxBatch: 2,
    maxSeqLen: 64
  })
  ours.pools.write(1, adapter)
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error })
  theirs = await llama.loadModel({ modelPath: base })
})

test.after(async () => {
  await ours?.dispose()
  await theirs?.dispose()
  await llama?.dispose()
  await rm(dir, { recursive: true, force: true })
})

// Two fp32 engines sum in different orders: logits agree to ~2e-6 here. A greedy pick is only
// compared where the top two logits are further apart than this; closer is a genuine tie.
const LOGIT_TOL = 1e-4

/** llama.cpp's greedy continuation and its full logits before each generated token. */
async function llamaRun(
  prompt: number[],
  withLora: boolean
): Promise<{ tokens: number[]; logits: Float32Array[] }> {
  const ctx = await theirs.createContext({
    contextSize: 128,
    // one thread: correctness only, and llama.cpp's spinning barriers crawl on a busy 2-core machine
    threads: 1,
    sequences: 1,
    // llama.cpp's default F16 KV cache, and its CPU flash attention (which works in F16 even over
    // an F32 cache), round what we keep in fp32 (logits off by ~2e-3 instead of ~2e-6)
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
    ...(withLora ? { lora: { adapters: [{ filePath: lora }] } } : {})
  })
  try {
    const seq = ctx.getSequence()
    const want = { generateNext: { token: true, logits: true, options: { temperature: 0 } } } as const
    const tokens: number[] = []
    const logits: Float32Array[] = []
    let input: Parameters<typeof seq.controlledEvaluate>[0] = [
      ...(prompt.slice(0, -1) as Token[]),
      [prompt[prompt.length - 1] as Token, want]
    ]
    for (let i = 0; i < NEW_TOKENS; i++) {
      const out = await seq.controlledEvaluate(input)
      const next = out[out.length - 1]!.next
      const row = new Float32Array(ours.config.vocabSize)
      for (const [t, v] of next.logits!) row[t] = v
      tokens.push(next.token!)
      logits.push(row)
      input = [[next.token! as Token, want]]
    }
    return { tokens, logits }
  } finally {
    await ctx.dispose()
  }
}

/** Our logits before each of the given tokens (teacher forcing on llama.cpp's choices). */
async function oursLogits(prompt: number[], tokens: number[], slot: number): Promise<Float32Array[]> {
  const seq = ours.allocSequence()
  try {
    const out: Float32Array[] = []
    let [logits] = await ours.step([{ seq, tokens: prompt, slot }])
    for (let i = 0; i < tokens.length; i++) {
      out.push(logits)
      if (i + 1 < tokens.length) [logits] = await ours.step([{ seq, tokens: [tokens[i]], slot }])
    }
    return out
  } finally {
    ours.freeSequence(seq)
  }
}

function top2(x: Float32Array): { best: number; margin: number } {
  let best = 0
  let second = -1
  for (let i = 1; i < x.length; i++) {
    if (x[i] > x[best]) {
      second = best
      best = i
    } else if (second < 0 || x[i] > x[second]) second = i
  }
  return { best, margin: x[best] - x[second] }
}

/** Our greedy output through generate(), the single-request path of the runtime. */
async function oursGreedy(prompt: number[], slot: number): Promise<number[]> {
  for await (const ev of generate(ours, {
    promptIds: prompt,
    slot,
    params: { maxNewTokens: NEW_TOKENS, temperature: 0 }
  })) {
    if (ev.type === 'done') return ev.outputIds
  }
  throw new Error('generate ended without a done event')
}

/**
 * Same next-token logits at every step, and llama.cpp's greedy pick is our argmax wherever the
 * pick is not a tie. Returns the tokens compared exactly and our greedy output's agreement.
 */
async function compare(withLora: boolean): Promise<{ exact: number; ties: number; tokens: number[][] }> {
  let exact = 0
  let ties = 0
  const all: number[][] = []
  for (const p of PROMPTS) {
    const ref = await llamaRun(p, withLora)
    const mine = await oursLogits(p, ref.tokens, withLora ? 1 : 0)
    const greedy = await oursGreedy(p, withLora ? 1 : 0)
    let firstTie = NEW_TOKENS
    for (let i = 0; i < NEW_TOKENS; i++) {
      let diff = 0
      for (let v = 0; v < mine[i].length; v++) diff = Math.max(diff, Math.abs(mine[i][v] - ref.logits[i][v]))
      assert.ok(diff < LOGIT_TOL, `prompt ${p.join(' ')} step ${i}: logits differ by ${diff}`)
      const { best, margin } = top2(mine[i])
      if (margin < LOGIT_TOL) {
        ties++
        firstTie = Math.min(firstTie, i)
      } else {
        assert.is(ref.tokens[i], best, `prompt ${p.join(' ')} step ${i}: llama.cpp picked ${ref.tokens[i]}`)
        exact++
      }
    }
    // our greedy tokens are llama.cpp's up to a tie (or our stop at eos, which llama.cpp runs past)
    const n = Math.min(firstTie, greedy.length)
    assert.equal(greedy.slice(0, n), ref.tokens.slice(0, n), `prompt ${p.join(' ')}: greedy tokens`)
    if (firstTie === NEW_TOKENS && greedy.length < NEW_TOKENS)
      assert.ok(ours.config.eosTokenIds.includes(greedy.at(-1)!))
    all.push(ref.tokens)
  }
  return { exact, ties, tokens: all }
}

test('llama.cpp computes our logits and greedy tokens on the tiny preset (base model)', async () => {
  const r = await compare(false)
  assert.ok(r.exact >= PROMPTS.length * NEW_TOKENS - 4, `only ${r.exact} tokens compared (${r.ties} ties)`)
})

test('llama.cpp with the GGUF LoRA adapter computes our adapter logits and tokens', async () => {
  const withAdapter = await compare(true)
  assert.ok(withAdapter.exact >= PROMPTS.length * NEW_TOKENS - 4)
  const base = await compare(false)
  assert.not.equal(
    withAdapter.tokens,
    base.tokens,
    'the adapter changed nothing, so this would prove nothing'
  )
})

test("llama.cpp's tokenizer on the exported vocabulary splits text as ours does", async () => {
  const tok = await Tokenizer.fromDir(join(dir, 'tiny'))
  const texts = [
    'Hello world, 123!',
    "The adapter's weights don't change the base model.\n  Two spaces, tabs\tand 4567 digits.",
    'unicode: café, naïve, 日本語 and emoji 🙂',
    '<|im_start|>user\nhi<|im_end|>'
  ]
  for (const text of texts) {
    // special tokens parsed in both (our encode does; llama.cpp when told to)
    assert.equal([...theirs.tokenize(text, true)], tok.encode(text), JSON.stringify(text))
    assert.is(theirs.detokenize(tok.encode(text) as Token[], true), tok.decode(tok.encode(text)))
  }
})

test('the F16 export gives llama.cpp our logits to fp16 weight precision', async () => {
  const f16 = join(dir, 'tiny-f16.gguf')
  await exportCheckpointToGguf(join(dir, 'tiny'), f16, { dtype: 'F16' })
  const half = await llama.loadModel({ modelPath: f16 })
  const f32Model = theirs
  theirs = half
  try {
    let worst = 0
    let agree = 0
    for (const p of PROMPTS) {
      const ref = await llamaRun(p, false)
      const mine = await oursLogits(p, ref.tokens, 0)
      for (let i = 0; i < NEW_TOKENS; i++) {
        for (let v = 0; v < mine[i].length; v++)
          worst = Math.max(worst, Math.abs(mine[i][v] - ref.logits[i][v]))
        if (top2(mine[i]).best === ref.tokens[i]) agree++
      }
    }
    // fp16 keeps 11 significant bits: logits of ~3 move by a few 1e-3 (4e-3 seen), not by 2e-2
    assert.ok(worst < 0.02, `F16 logits differ by ${worst}`)
    assert.ok(agree >= PROMPTS.length * NEW_TOKENS * 0.9, `only ${agree} greedy picks agree`)
  } finally {
    theirs = f32Model
    await half.dispose()
  }
})

test.run()
