// Attribution benchmark (issue 6): span index build speed and memory over a synthetic datanet,
// attribution time of 64-token outputs against the generation time of the same 64 tokens on a
// random checkpoint (SmolLM2-135M shape, as bench:model), proof verification time and size.
//
//   npm run bench:attribution -- [--quick] [--json] [--tokens N] [--preset smollm2-135m]
//
// The corpus: documents of seeded random English words (the fixture corpus' vocabulary), put
// through the real DatanetStore (LevelDB + chunk files) and tokenized with the model's own
// tokenizer. Generation and attribution rounds are interleaved (A/B) because this machine's speed
// drifts; medians, p99 and sample counts are reported.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { Attributor } from '../../src/attribution/attribute.ts'
import { DatanetStore } from '../../src/attribution/datanet-store.ts'
import {
  buildSpanIndex,
  type CorpusDoc,
  loadSpanIndex,
  SpanIndexCache,
  writeSpanIndex
} from '../../src/attribution/index-file.ts'
import { modelTextEncoder } from '../../src/attribution/model-tokenizer.ts'
import { verifyAttribution } from '../../src/attribution/verify.ts'
import { seededRng } from '../../src/common/random.ts'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import type { Hex } from '../../src/crypto/hash.ts'
import { FIXTURE_CORPUS } from '../../src/runtime/fixtures/corpus.ts'
import { makeModel, type Preset } from '../../src/runtime/fixtures/make-model.ts'
import { loadModel } from '../../src/runtime/model/index.ts'
import { benchArgs } from './args.ts'
import { benchMachine } from './machine.ts'

const values = benchArgs(
  'npm run bench:attribution -- [--quick] [--json] [--tokens N] [--preset smollm2-135m]',
  {
    quick: { type: 'boolean' },
    json: { type: 'boolean' },
    tokens: { type: 'string' },
    preset: { type: 'string', default: 'smollm2-135m' }
  }
)
const quick = values.quick === true
const TARGET_TOKENS = values.tokens ? Number(values.tokens) : quick ? 1_000_000 : 10_000_000
const ROUNDS = quick ? 3 : 15
const OUT_TOKENS = 64
const PROMPT_TOKENS = 32
const CONTRIBUTORS = 500
const preset = values.preset as Preset
const say = (s: string) => {
  if (!values.json) console.log(s)
}
const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!
}
const r2 = (x: number) => Math.round(x * 100) / 100
const rng = seededRng

// ---- model (shared with bench:model's cache dir) and tokenizer
const root = join(tmpdir(), 'openlora-bench-model')
const modelDir = join(root, `${preset}-seed0`)
try {
  if (!existsSync(join(modelDir, 'config.json'))) {
    say(`writing a random ${preset} checkpoint to ${modelDir}`)
    await makeModel({ out: modelDir, preset, seed: 0 })
  }
} catch (err) {
  console.error(`cannot prepare the model: ${(err as Error).message}`)
  process.exit(1)
}
const { encoder, tokenizerId } = await modelTextEncoder(modelDir)

// ---- synthetic datanet through the real store
const work = mkdtempSync(join(tmpdir(), 'bench-attr-'))
const db = new Level<string, Uint8Array>(join(work, 'db'), { valueEncoding: 'view' })
const store = new DatanetStore({ db, dataDir: join(work, 'datanets') })
const vocab = [...new Set(FIXTURE_CORPUS.split(/\s+/).filter(Boolean))]
const r = rng(2026)
const addrs = Array.from({ length: CONTRIBUTORS }, (_, i) => `0x${(i + 1).toString(16).padStart(40, '0')}`)
const dn = await store.createDatanet({ name: 'bench', owner: addrs[0]!, createdAt: 0 })
// Tokens per word of this tokenizer on this vocabulary, to size the corpus in tokens.
const probe = Array.from({ length: 2000 }, () => vocab[Math.floor(r() * vocab.length)]).join(' ')
const tokPerWord = encoder.encode(probe).length / 2000
let t0 = performance.now()
let words = 0
let docsN = 0
while (words * tokPerWord < TARGET_TOKENS) {
  const n = 200 + Math.floor(r() * 3000)
  const text = Array.from({ length: n }, () => vocab[Math.floor(r() * vocab.length)]).join(' ')
  await store.contribute(dn.id, { text, contributor: addrs[Math.floor(r() * CONTRIBUTORS)]! })
  words += n
  docsN++
}
const ingestMs = performance.now() - t0
const version = await store.publish(dn.id)
say(
  `datanet: ${docsN} contributions, ~${Math.round(words * tokPerWord)} tokens, ingest ${Math.round(ingestMs)} ms`
)

// ---- index build: tokenize, suffix array, write; then a lazy load as a node does
const cache = new SpanIndexCache({ store, tokenizer: encoder }, { tokenizerId })
t0 = performance.now()
const { contributions } = await store.versionContents(dn.id, 1)
const docs: CorpusDoc[] = []
for (const c of contributions) {
  const chunkTokens: number[][] = []
  for (const ref of c.chunks) chunkTokens.push(encoder.encode(await store.readChunkText(ref)))
  docs.push({ cid: c.cid, contributor: c.contributor, chunkTokens })
}
const tokenizeMs = performance.now() - t0
t0 = performance.now()
const built = buildSpanIndex(docs, { datanetId: dn.id, version: 1, root: version.root, tokenizerId })
const suffixArrayMs = performance.now() - t0
t0 = performance.now()
await writeSpanIndex(cache.fileFor(dn.id, 1), built)
const writeMs = performance.now() - t0
const n = built.n
docs.length = 0
t0 = performance.now()
const loaded = await loadSpanIndex(cache.fileFor(dn.id, 1))
const loadMs = performance.now() - t0
const headerBytes = Buffer.byteLength(JSON.stringify(loaded.header))
const bytesPerToken = (loaded.bytesLoaded + headerBytes) / n
// The fixture tokenizer's ids fit 2 bytes; Qwen2/Llama-3 vocabularies (~152k ids) need 3. Measure
// that layout too on 1M synthetic token ids in 1,000-token contributions.
const bigVocab = (() => {
  const br = rng(7)
  const docs152k: CorpusDoc[] = Array.from({ length: 1000 }, (_, i) => ({
    cid: `synthetic-${i}`,
    contributor: addrs[i % CONTRIBUTORS] as Hex,
    chunkTokens: [Array.from({ length: 1000 }, () => Math.floor(br() ** 3 * 151_936))]
  }))
  const t = performance.now()
  const idx = buildSpanIndex(docs152k, {
    datanetId: dn.id,
    version: 1,
    root: version.root,
    tokenizerId: 'vocab152k'
  })
  const ms = performance.now() - t
  return {
    tokenWidthBytes: idx.header.width,
    bytesPerToken:
      Math.round(((idx.bytesLoaded + Buffer.byteLength(JSON.stringify(idx.header))) / idx.n) * 1000) / 1000,
    suffixArrayTokensPerSec: Math.round(idx.n / (ms / 1000))
  }
})()
say(
  `index: ${n} tokens, width ${loaded.header.width} B, tokenize ${Math.round(tokenizeMs)} ms, SA ${Math.round(suffixArrayMs)} ms, load ${Math.round(loadMs)} ms, ${bytesPerToken.toFixed(3)} B/token`
)

// ---- model for generation timing
const model = await loadModel(modelDir, {
  cacheDir: join(root, 'cache-attribution'),
  maxBatch: 1,
  maxSeqLen: PROMPT_TOKENS + OUT_TOKENS + 8,
  pool: { slots: 2, maxRank: 8, targets: ['q_proj', 'v_proj'] }
})
/**
 * Exactly 64 greedy tokens after a 32-token prompt, straight on step() (as generate() does, but
 * never stopping at EOS: a random checkpoint may emit it at any point).
 */
async function generate64(seed: number, count = OUT_TOKENS): Promise<{ ms: number; ids: number[] }> {
  const pr = rng(seed)
  const promptIds = Array.from({ length: PROMPT_TOKENS }, () => 3 + Math.floor(pr() * 200))
  const t = performance.now()
  const seq = model.allocSequence()
  const ids: number[] = []
  try {
    let [logits] = await model.step([{ seq, tokens: promptIds, slot: 0 }])
    for (let i = 0; i < count; i++) {
      let best = 0
      for (let v = 1; v < logits!.length; v++) if (logits![v]! > logits![best]!) best = v
      ids.push(best)
      if (i + 1 < count) [logits] = await model.step([{ seq, tokens: [best], slot: 0 }])
    }
  } finally {
    model.freeSequence(seq)
  }
  return { ms: performance.now() - t, ids }
}

const attributor = new Attributor({ store, indexes: cache })
const provenance = { datanets: [{ id: dn.id as Hex, version: 1, bp: 10_000 }] }
const roots = [{ datanetId: dn.id as Hex, version: 1, root: version.root }]
function quoteAt(seed: number, len: number): number[] {
  const qr = rng(seed)
  for (;;) {
    const p = Math.floor(qr() * (n - len))
    if (loaded.locate(p).doc === loaded.locate(p + len - 1).doc)
      return Array.from({ length: len }, (_, k) => loaded.token(p + k))
  }
}

t0 = performance.now()
await attributor.attribute(quoteAt(1, OUT_TOKENS), provenance)
const firstAttributeMs = performance.now() - t0 // includes the lazy index load and the version's Merkle tree
await generate64(0, 4) // warm the session

const gen: number[] = []
const attr: Record<'quote' | 'half' | 'generated', number[]> = { quote: [], half: [], generated: [] }
const verify: { withTokenizer: number[]; hashesOnly: number[] } = { withTokenizer: [], hashesOnly: [] }
const spanBytes: number[] = []
const spanCborBytes: number[] = []
const methods: Record<string, string> = {}
for (let round = 0; round < ROUNDS; round++) {
  const g = await generate64(100 + round)
  gen.push(g.ms)
  const outputs = {
    quote: quoteAt(1000 + round, OUT_TOKENS),
    half: [...quoteAt(2000 + round, OUT_TOKENS / 2), ...g.ids.slice(0, OUT_TOKENS / 2)],
    generated: g.ids
  }
  for (const kind of ['quote', 'half', 'generated'] as const) {
    const t = performance.now()
    const res = await attributor.attribute(outputs[kind], provenance)
    attr[kind].push(performance.now() - t)
    methods[kind] = res.summary.method
    if (kind === 'quote') {
      let tv = performance.now()
      const ok1 = verifyAttribution(res.proof, roots, {
        tokenizer: encoder,
        outputIds: outputs.quote,
        summary: res.summary
      })
      verify.withTokenizer.push(performance.now() - tv)
      tv = performance.now()
      const ok2 = verifyAttribution(res.proof, roots, { outputIds: outputs.quote })
      verify.hashesOnly.push(performance.now() - tv)
      if (!ok1.ok || !ok2.ok)
        throw new Error(`a fresh proof failed verification: ${JSON.stringify(ok1.failures)}`)
      for (const s of res.proof.spans) {
        spanBytes.push(Buffer.byteLength(JSON.stringify(s)))
        spanCborBytes.push(encodeCanonical(s).length)
      }
    }
  }
}
await model.dispose()
await db.close()
rmSync(work, { recursive: true, force: true })

const genP50 = q(gen, 0.5)
const worstAttrP50 = Math.max(...Object.values(attr).map((xs) => q(xs, 0.5)))
const verifyP50 = q(verify.withTokenizer, 0.5)
const results = {
  corpusTokens: n,
  contributions: docsN,
  ingestMs: Math.round(ingestMs),
  indexBuild: {
    tokenizeMs: Math.round(tokenizeMs),
    suffixArrayMs: Math.round(suffixArrayMs),
    writeMs: Math.round(writeMs),
    suffixArrayTokensPerSec: Math.round(n / (suffixArrayMs / 1000)),
    totalTokensPerSec: Math.round(n / ((tokenizeMs + suffixArrayMs + writeMs) / 1000))
  },
  index: {
    loadMs: Math.round(loadMs),
    bytesPerToken: Math.round(bytesPerToken * 1000) / 1000,
    tokenWidthBytes: loaded.header.width,
    vocab152k: bigVocab
  },
  firstAttributeMs: r2(firstAttributeMs),
  generation64: { p50Ms: r2(genP50), p99Ms: r2(q(gen, 0.99)), samples: gen.length },
  attribution64: Object.fromEntries(
    Object.entries(attr).map(([k, xs]) => [
      k,
      { method: methods[k], p50Ms: r2(q(xs, 0.5)), p99Ms: r2(q(xs, 0.99)), samples: xs.length }
    ])
  ),
  verify: {
    withTokenizerP50Ms: r2(verifyP50),
    withTokenizerP99Ms: r2(q(verify.withTokenizer, 0.99)),
    hashesOnlyP50Ms: r2(q(verify.hashesOnly, 0.5)),
    samples: verify.withTokenizer.length
  },
  proofBytesPerSpan: { jsonP50: q(spanBytes, 0.5), cborP50: q(spanCborBytes, 0.5), spans: spanBytes.length },
  attributionShareOfGeneration: Math.round((worstAttrP50 / genP50) * 10000) / 10000,
  verifySpeedupVsGeneration: r2(genP50 / verifyP50)
}
const goals = [
  {
    name: 'attribution_share_of_job_time',
    value: results.attributionShareOfGeneration,
    target: '<= 0.10',
    met: results.attributionShareOfGeneration <= 0.1
  },
  {
    name: 'verify_speedup_vs_generation',
    value: results.verifySpeedupVsGeneration,
    target: '>= 100',
    met: results.verifySpeedupVsGeneration >= 100
  },
  {
    name: 'index_bytes_per_corpus_token',
    value: Math.max(results.index.bytesPerToken, bigVocab.bytesPerToken),
    target: '<= 8',
    met: Math.max(results.index.bytesPerToken, bigVocab.bytesPerToken) <= 8
  }
]
const report = {
  bench: 'attribution',
  machine: benchMachine(),
  config: {
    quick,
    corpus: `${docsN} documents of seeded random words from the fixture corpus vocabulary, ${CONTRIBUTORS} contributors, tokenized with the ${preset} fixture tokenizer`,
    targetTokens: TARGET_TOKENS,
    model: `${preset} random checkpoint, CPU, batch 1, greedy, prompt ${PROMPT_TOKENS} tokens`,
    outputTokens: OUT_TOKENS,
    outputs: 'quote = 64 corpus tokens; half = 32 quoted + 32 generated; generated = the model output itself',
    rounds: ROUNDS,
    warm: 'index loaded and Merkle tree built before timing (firstAttributeMs is the cold call); ORT session warmed with one generation',
    minSpanTokens: attributor.minSpanTokens
  },
  results,
  goals
}
if (values.json) console.log(JSON.stringify(report))
else {
  console.log(`generation of 64 tokens  p50 ${results.generation64.p50Ms} ms (n=${gen.length})`)
  for (const [k, v] of Object.entries(results.attribution64))
    console.log(`attribution ${k.padEnd(9)} p50 ${v.p50Ms} ms  p99 ${v.p99Ms} ms (${v.method})`)
  console.log(
    `verify (tokenizer) p50 ${results.verify.withTokenizerP50Ms} ms, hashes only ${results.verify.hashesOnlyP50Ms} ms; proof ${results.proofBytesPerSpan.jsonP50} B/span JSON, ${results.proofBytesPerSpan.cborP50} B CBOR`
  )
  for (const g of goals) console.log(`goal ${g.name}: ${g.value} (${g.target}) ${g.met ? 'met' : 'NOT met'}`)
}
