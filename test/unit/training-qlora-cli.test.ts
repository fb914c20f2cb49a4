// `openlora train --base-format int4` end to end: a short run over an int4 base lowers the loss,
// its record states the base format, and the adapter it saves serves on an int4 node (the
// runtime's int4 graph, MatMulNBits over the same codes) where it lowers the loss of the trained
// text against that node's own base. Bad formats are refused naming the allowed ones.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadPeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { loadModel } from '../../src/runtime/model/index.ts'
import type { SignedTrainingRecord } from '../../src/runtime/training/record.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-qlora-cli-'))
const model = join(root, 'model')
const ids = Array.from({ length: 24 }, (_, i) => (i * 37 + 11) % 500)

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['src/node/cli/main.ts', ...args, '--data-dir', join(root, 'node')], {
    encoding: 'utf8'
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

/** mean next-token cross-entropy of `ids` on a served model, fed one token at a time */
async function servedLoss(m: Awaited<ReturnType<typeof loadModel>>, slot: number): Promise<number> {
  const seq = m.allocSequence()
  let sum = 0
  try {
    for (let t = 0; t + 1 < ids.length; t++) {
      const logits = (await m.step([{ seq, tokens: [ids[t]!], slot }]))[0]!
      let max = Number.NEGATIVE_INFINITY
      for (const v of logits) max = Math.max(max, v)
      let z = 0
      for (const v of logits) z += Math.exp(v - max)
      sum += Math.log(z) + max - logits[ids[t + 1]!]!
    }
  } finally {
    m.freeSequence(seq)
  }
  return sum / (ids.length - 1)
}

test('int4 base: a short run lowers the loss, the record says int4, and the adapter serves on an int4 node', async () => {
  await makeModel({ preset: 'tiny', seed: 5, out: model })
  writeFileSync(join(root, 'tokens.json'), JSON.stringify([ids]))
  const out = join(root, 'adapter')
  const r = cli(
    'train',
    '--model',
    model,
    '--out',
    out,
    '--tokens',
    join(root, 'tokens.json'),
    '--steps',
    '6',
    '--lr',
    '0.02',
    '--optimizer',
    'adamw',
    '--seed',
    '3',
    '--base-format',
    'int4',
    '--json'
  )
  assert.is(r.code, 0, r.err)
  const done = JSON.parse(r.out.trim().split('\n').at(-1)!)
  const losses = done.losses as number[]
  assert.is(losses.length, 6)
  assert.ok(losses.at(-1)! < losses[0]! - 0.05, `losses ${losses}`)
  const rec = JSON.parse(readFileSync(join(out, 'training-record.json'), 'utf8')) as SignedTrainingRecord
  assert.is(rec.body.baseModel.format, 'int4')

  const served = await loadModel(model, {
    cacheDir: join(root, 'cache'),
    maxBatch: 1,
    maxSeqLen: 64,
    weightFormat: 'int4',
    pool: { slots: 2, maxRank: 8, targets: ['q_proj', 'v_proj'] }
  })
  try {
    served.pools.write(1, await loadPeftAdapter(out, served.config, { checkBaseModel: false }))
    const base = await servedLoss(served, 0)
    const tuned = await servedLoss(served, 1)
    // the int4 node's base scores the text as the training's step 0 did (activations quantized to
    // int8 there, so not to rounding), and the adapter lowers it as training did
    assert.ok(Math.abs(base - losses[0]!) < 0.02, `int4 node base loss ${base}, training step 0 ${losses[0]}`)
    assert.ok(tuned < base - 0.05, `int4 node: loss with the adapter ${tuned}, without ${base}`)
  } finally {
    await served.dispose()
  }
})

test('--base-format takes fp32, int8 or int4 only', () => {
  const bad = cli(
    'train',
    '--model',
    model,
    '--out',
    join(root, 'x'),
    '--tokens',
    join(root, 'tokens.json'),
    '--steps',
    '1',
    '--lr',
    '0.1',
    '--optimizer',
    'sgd',
    '--base-format',
    'nf4'
  )
  assert.is.not(bad.code, 0)
  assert.match(bad.err, /--base-format must be one of fp32, int8, int4, got "nf4"/)
})

test.after(() => rmSync(root, { recursive: true, force: true }))
test.run()
