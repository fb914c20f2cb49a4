// Stage 1 of make-demo-model.ts: a small Llama-shape base model pre-trained from scratch on the
// KJV with the project's own training graph (full-weight, `trainBase`) on ONNX Runtime.
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeModel, makeTokenizerConfig, makeTokenizerJson } from '../../src/runtime/fixtures/make-model.ts'
import { rngFor } from '../../src/runtime/fixtures/rng.ts'
import { readModelConfig } from '../../src/runtime/model/index.ts'
import { Tokenizer } from '../../src/runtime/tokenizer.ts'
import { BaseTrainer } from '../../src/runtime/training/base-trainer.ts'
import { adamw } from '../../src/runtime/training/optim.ts'
import { lrFactor } from '../../src/runtime/training/schedule.ts'
import { makeBatch } from '../../src/runtime/training/trainer.ts'
import type { Verse } from './corpus.ts'

export interface PretrainOptions {
  out: string
  verses: Verse[]
  corpusSha256: string
  /** verses left out of the base corpus (the demo datanet's passages) */
  exclude: (v: Verse) => boolean
  steps: number
  /** stop after this many steps of the `steps`-long schedule (checkpoints every 100 steps) */
  stopAt?: number
  batch: number
  seqLen: number
  lr: number
  seed: number
  threads: number
  /** config.json fields of the model's shape */
  shape: Record<string, unknown>
  log: (line: Record<string, unknown>) => void
}

/** A base model's chat template: no chat training, so a chat is just its messages as text. */
export const PLAIN_TEMPLATE =
  "{% for message in messages %}{{ message['content'] }}{% if not loop.last %}{{ '\\n' }}{% endif %}{% endfor %}"

/** The corpus as training text: each chapter one paragraph, verses joined by spaces. */
export function chapters(verses: Verse[]): string[] {
  const out: string[] = []
  let key = ''
  for (const v of verses) {
    const k = `${v.book} ${v.chapter}`
    if (k !== key) out.push('')
    key = k
    out[out.length - 1] += (out[out.length - 1] === '' ? '' : ' ') + v.text
  }
  return out.filter((c) => c !== '')
}

export async function pretrain(
  o: PretrainOptions
): Promise<{ losses: number[]; evalLosses: { step: number; loss: number }[] }> {
  const texts = chapters(o.verses.filter((v) => !o.exclude(v)))
  await rm(o.out, { recursive: true, force: true })
  await mkdir(o.out, { recursive: true })
  await makeModel({
    out: o.out,
    preset: 'tiny',
    seed: o.seed,
    overrides: { ...o.shape, _name_or_path: 'openlora-demo/kjv-base' }
  })
  const cfg = await readModelConfig(o.out)
  const t0 = Date.now()
  const tokJson = makeTokenizerJson(cfg.vocabSize, texts.join('\n\n'))
  await writeFile(join(o.out, 'tokenizer.json'), JSON.stringify(tokJson))
  await writeFile(
    join(o.out, 'tokenizer_config.json'),
    JSON.stringify({ ...makeTokenizerConfig(), chat_template: PLAIN_TEMPLATE }, null, 2)
  )
  const tok = await Tokenizer.fromDir(o.out)
  o.log({ event: 'tokenizer', vocab: tok.vocabSize, ms: Date.now() - t0 })
  // every 50th chapter is held out to measure the loss on text the model never trained on
  const train: number[] = []
  const held: number[] = []
  texts.forEach((c, i) => {
    const ids = tok.encode(`${c}\n\n`, { addSpecialTokens: false })
    ;(i % 50 === 25 ? held : train).push(...ids)
  })
  o.log({ event: 'corpus', chapters: texts.length, trainTokens: train.length, heldTokens: held.length })
  const { B, T } = { B: o.batch, T: o.seqLen }
  const windows = (stream: number[], rng: () => number, n: number) =>
    Array.from({ length: n }, () => {
      const at = Math.floor(rng() * (stream.length - T))
      return stream.slice(at, at + T)
    })
  const trainer = await BaseTrainer.create(o.out, cfg, { B, T }, { threads: o.threads })
  const matrices = adamw({ lr: o.lr, weightDecay: 0.1, beta2: 0.95 })
  const vectors = adamw({ lr: o.lr, weightDecay: 0, beta2: 0.95 })
  const heldBatches = [0, 1].map((i) =>
    makeBatch(windows(held, rngFor(o.seed, `held${i}`), B), cfg.vocabSize, { B, T })
  )
  const evaluate = async () => {
    let sum = 0
    for (const b of heldBatches) sum += (await trainer.evaluate(b)).loss
    return sum / heldBatches.length
  }
  const losses: number[] = []
  const evalLosses: { step: number; loss: number }[] = []
  const warmup = Math.min(100, Math.floor(o.steps / 10))
  const save = async () => {
    // bf16 on disk halves the shipped size; the runtime and `openlora train` read it as fp32
    await trainer.save(join(o.out, 'model.safetensors'), 'BF16')
    await writeFile(
      join(o.out, 'pretraining.json'),
      JSON.stringify(
        {
          corpus: {
            name: 'King James Version (Debian bible-kjv-text)',
            sha256: o.corpusSha256,
            licence: 'public domain'
          },
          trainTokens: train.length,
          heldOutTokens: held.length,
          options: {
            steps: o.steps,
            batch: B,
            seqLen: T,
            lr: o.lr,
            seed: o.seed,
            warmup,
            schedule: 'cosine (floor 10%)',
            ...(o.stopAt === undefined ? {} : { stopAt: o.stopAt })
          },
          stepsDone: losses.length,
          losses: losses.map((l) => Math.round(l * 1e4) / 1e4),
          evalLosses
        },
        null,
        1
      )
    )
  }
  const last = Math.min(o.stopAt ?? o.steps, o.steps)
  for (let s = 0; s < last; s++) {
    const f = 0.1 + 0.9 * lrFactor('cosine', s, warmup, o.steps)
    matrices.lr = o.lr * (s < warmup ? lrFactor('cosine', s, warmup, o.steps) : f)
    vectors.lr = matrices.lr
    const batch = makeBatch(windows(train, rngFor(o.seed, `step${s}`), B), cfg.vocabSize, { B, T })
    const st = Date.now()
    const { loss, gradNorm } = await trainer.step(batch, { matrices, vectors, clipNorm: 1 })
    losses.push(loss)
    o.log({
      event: 'step',
      step: s,
      loss: +loss.toFixed(4),
      gradNorm: +gradNorm.toFixed(3),
      lr: matrices.lr,
      ms: Date.now() - st
    })
    if ((s + 1) % 100 === 0 || s + 1 === last) {
      const e = await evaluate()
      evalLosses.push({ step: s + 1, loss: Math.round(e * 1e4) / 1e4 })
      o.log({ event: 'eval', step: s + 1, loss: e })
      await save()
    }
  }
  await trainer.close()
  return { losses, evalLosses }
}
