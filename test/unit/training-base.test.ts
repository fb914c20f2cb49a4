// Full-weight training (`trainBase`, used to pre-train the demo model): the training graph with
// every checkpoint tensor as an input must give the same loss as the frozen graph, gradients that
// agree with finite differences of its own loss (embeddings through both the lookup and a tied
// head, norms, projections), and AdamW steps on one batch must drive its loss down.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readModelConfig } from '../../src/runtime/model/index.ts'
import { BaseTrainer } from '../../src/runtime/training/base-trainer.ts'
import { freshLora } from '../../src/runtime/training/lora.ts'
import { adamw } from '../../src/runtime/training/optim.ts'
import { makeBatch, Trainer } from '../../src/runtime/training/trainer.ts'

const FIX = join(import.meta.dirname, '..', 'fixtures', 'train')
const tokensOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'tokens.json'), 'utf8')) as number[][]

for (const fx of ['llama', 'llama-tied']) {
  test(`${fx}: full-weight loss equals the frozen graph's; gradients match finite differences`, async () => {
    const dir = join(FIX, fx)
    const cfg = await readModelConfig(dir)
    const seqs = tokensOf(dir)
    const batch = makeBatch(seqs, cfg.vocabSize)
    // a fresh adapter has B = 0, so the LoRA graph's loss is the base model's loss
    const frozen = await Trainer.create(
      dir,
      cfg,
      freshLora(cfg, {
        rank: 2,
        alpha: 4,
        targets: ['q_proj'],
        rslora: false,
        seed: 1,
        baseModel: 'fixture'
      }),
      seqs
    )
    const want = (await frozen.evaluate()).loss
    await frozen.close()
    const tr = await BaseTrainer.create(dir, cfg, { B: batch.B, T: batch.T })
    try {
      const r = await tr.evaluate(batch)
      assert.ok(Math.abs(r.loss - want) <= 1e-6 * want, `loss ${r.loss} vs frozen ${want}`)
      const names = tr.names
      assert.ok(names.includes('model.embed_tokens.weight') && names.includes('model.norm.weight'))
      assert.is(names.includes('lm_head.weight'), !cfg.tieWordEmbeddings, 'lm_head only when untied')
      let seed = 5
      const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1
      // one direction over every tensor, then one per kind: embeddings, norms, projections
      const groups: [string, (n: string) => boolean][] = [
        ['all', () => true],
        ['embeddings', (n) => n.includes('embed') || n.includes('lm_head')],
        ['norms', (n) => n.includes('norm')],
        ['projections', (n) => n.includes('proj')]
      ]
      for (const [label, pick] of groups) {
        const d = tr.weights.map((w, i) =>
          pick(names[i]!) ? Float32Array.from(w, rand) : new Float32Array(w.length)
        )
        let dot = 0
        d.forEach((di, i) => {
          for (let j = 0; j < di.length; j++) dot += di[j]! * r.grads[i]![j]!
        })
        const orig = tr.weights.map((w) => Float32Array.from(w))
        const at = async (s: number) => {
          tr.weights.forEach((w, i) => {
            for (let j = 0; j < w.length; j++) w[j] = orig[i]![j]! + s * d[i]![j]!
          })
          return (await tr.evaluate(batch)).loss
        }
        const h = 4e-3
        const cd = async (e: number) => ((await at(e)) - (await at(-e))) / (2 * e)
        const fd = (4 * (await cd(h / 2)) - (await cd(h))) / 3
        for (const [i, w] of tr.weights.entries()) w.set(orig[i]!)
        assert.ok(Math.abs(fd - dot) <= 2e-3 * Math.abs(dot) + 1e-4, `${label}: fd ${fd} vs grad·d ${dot}`)
      }
      // training the whole model on one batch fits it
      const o = { matrices: adamw({ lr: 1e-2 }), vectors: adamw({ lr: 1e-2, weightDecay: 0 }), clipNorm: 1 }
      const first = (await tr.step(batch, o)).loss
      let last = first
      for (let s = 0; s < 15; s++) last = (await tr.step(batch, o)).loss
      assert.ok(last < 0.5 * first, `loss ${first} → ${last} after 16 AdamW steps on one batch`)
    } finally {
      await tr.close()
    }
  })
}

test.run()
