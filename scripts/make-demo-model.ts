// Makes the demo model and adapter that `npm start` serves (assets/demo/, docs/DEMO-MODEL.md):
//   1. base: fetches the King James Version from Debian's packages (public domain), learns a
//      byte-level BPE tokenizer from it, and pre-trains a small Llama-shape model from random
//      weights with the project's own training graph (full-weight: `trainBase`), leaving out the
//      demo datanet's passages;
//   2. adapter: builds the demo datanet (src/node/demo-data.ts) in a scratch node data dir and
//      trains the demo LoRA adapter on it with `openlora train --datanet`.
// Usage: node scripts/make-demo-model.ts [--stage words|base|adapter|all] [--steps N [--stop-at S]] [--out DIR]
//          [--cache DIR] [--threads N] [--adapter-steps N]
// The defaults reproduce the committed assets (`--steps 450 --stop-at 300`, adapter 120 steps): the
// corpus's sha256 is recorded and every random choice (init, batches, held-out split, LoRA init) is
// seeded. ONNX Runtime's multi-threaded float sums are not promised to be bit-identical across
// machines, so another machine gets the same run up to rounding (not checked bit for bit).
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { DEMO_RECORDS } from '../src/node/demo-data.ts'
import { trainDemoAdapter } from './demo/adapter.ts'
import { corpusWords, loadKjv, type Verse } from './demo/corpus.ts'
import { pretrain } from './demo/pretrain.ts'

const { values } = parseArgs({
  options: {
    stage: { type: 'string', default: 'all' },
    steps: { type: 'string', default: '450' },
    // the committed model is the step-300 checkpoint of the 450-step schedule (docs/DEMO-MODEL.md)
    'stop-at': { type: 'string', default: '300' },
    'adapter-steps': { type: 'string', default: '120' },
    out: { type: 'string', default: 'assets/demo' },
    cache: { type: 'string', default: join('/tmp', 'openlora-kjv') },
    threads: { type: 'string', default: '2' }
  }
})
const stage = values.stage!
if (!['words', 'base', 'adapter', 'all'].includes(stage))
  throw new Error('--stage is words, base, adapter or all')
const log = (line: Record<string, unknown>) => console.log(JSON.stringify(line))

/** the model's shape: ~4.5M parameters, 2048-token vocabulary, 256-token context */
export const DEMO_SHAPE = {
  hidden_size: 256,
  intermediate_size: 688,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  vocab_size: 2048,
  max_position_embeddings: 256,
  initializer_range: 0.02
}

const inRecord = (v: Verse) =>
  DEMO_RECORDS.some(
    (r) =>
      r.ref.book === v.book && r.ref.chapter === v.chapter && v.verse >= r.ref.from && v.verse <= r.ref.to
  )

const kjv = loadKjv(values.cache!)
// the committed record texts must be the corpus's own words
for (const r of DEMO_RECORDS) {
  const text = kjv.verses
    .filter(
      (v) =>
        v.book === r.ref.book && v.chapter === r.ref.chapter && v.verse >= r.ref.from && v.verse <= r.ref.to
    )
    .map((v) => v.text)
    .join(' ')
  if (text !== r.text) throw new Error(`demo record ${r.title} differs from the corpus:\n${text}`)
}
log({ event: 'corpus', verses: kjv.verses.length, sha256: kjv.sha256 })
// the corpus's vocabulary, so a test can tell the demo's answer is made of the corpus's words
mkdirSync(values.out!, { recursive: true })
const words = new Set(kjv.verses.flatMap((v) => corpusWords(v.text)))
writeFileSync(join(values.out!, 'kjv-words.txt'), `${[...words].sort().join('\n')}\n`)

if (stage === 'base' || stage === 'all') {
  await pretrain({
    out: join(values.out!, 'model'),
    verses: kjv.verses,
    corpusSha256: kjv.sha256,
    exclude: inRecord,
    steps: Number(values.steps),
    ...(values['stop-at'] ? { stopAt: Number(values['stop-at']) } : {}),
    batch: 16,
    seqLen: 128,
    lr: 3e-3,
    seed: 1,
    threads: Number(values.threads),
    shape: DEMO_SHAPE,
    log
  })
}

if (stage === 'adapter' || stage === 'all') {
  await trainDemoAdapter({
    model: join(values.out!, 'model'),
    out: join(values.out!, 'adapter'),
    steps: Number(values['adapter-steps']),
    threads: Number(values.threads),
    log
  })
}
