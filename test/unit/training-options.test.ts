// The PEFT/TRL-style options of `openlora train`: lr schedules equal transformers' schedulers
// (goldens from test/reference/make_schedule_goldens.py), --batch/--seq-len/--packing/
// --eval-fraction plan the data as documented, a run resumed from a checkpoint reaches the same
// bytes as the uninterrupted run, a resume with other options is refused by name, and --datanet
// trains on a datanet this node holds with its version, root and contributors in the signed record.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { verifyTrainingRecord } from '../../src/protocols/training/record-verify.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { Tokenizer } from '../../src/runtime/tokenizer.ts'
import { planData } from '../../src/runtime/training/plan.ts'
import type { SignedTrainingRecord } from '../../src/runtime/training/record.ts'
import { lrFactor, type ScheduleName } from '../../src/runtime/training/schedule.ts'

const FIX = join(import.meta.dirname, '..', 'fixtures', 'train')
const root = mkdtempSync(join(tmpdir(), 'openlora-train-opts-'))
const model = join(root, 'tiny')
await makeModel({ out: model, preset: 'tiny' })
const node = join(root, 'node')

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['src/node/cli/main.ts', ...args, '--data-dir', node], {
    encoding: 'utf8'
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}
const done = (out: string) => JSON.parse(out.trim().split('\n').at(-1)!)

test('lr schedules equal transformers get_scheduler factors, step by step', () => {
  const g = JSON.parse(readFileSync(join(FIX, 'schedules.json'), 'utf8')) as {
    warmup: number
    steps: number
    factors: Record<ScheduleName, number[]>
  }
  for (const [name, want] of Object.entries(g.factors))
    want.forEach((f, s) => {
      const got = lrFactor(name as ScheduleName, s, g.warmup, g.steps)
      assert.ok(Math.abs(got - f) < 1e-12, `${name} step ${s}: ${got} vs torch ${f}`)
    })
})

test('planData: eval split, truncation, packing and per-epoch batches', () => {
  const seqs = Array.from({ length: 10 }, (_, i) => Array.from({ length: 5 + i }, (_, t) => (i * 7 + t) % 50))
  const p = planData(seqs, { batch: 3, seqLen: 6, evalFraction: 0.2, seed: 4 })
  assert.is(p.eval.length, 2)
  assert.is(p.train.length, 8)
  assert.is(p.B, 3)
  assert.is(p.T, 6)
  assert.ok(p.train.every((r) => r.ids.length <= 6))
  const key = (r: { ids: number[] }) => r.ids.join(',')
  const held = new Set(p.eval.map(key))
  assert.ok(
    p.train.every((r) => !held.has(key(r))),
    'held-out rows are not trained'
  )
  // one epoch (3 steps of ≤3 rows) covers every training row once; the next epoch reshuffles
  const epoch = (e: number) => [0, 1, 2].flatMap((k) => p.batchOf(e * 3 + k)).map(key)
  assert.equal([...epoch(0)].sort(), p.train.map(key).sort())
  assert.equal([...epoch(1)].sort(), p.train.map(key).sort())
  assert.not.equal(epoch(0), epoch(1))
  assert.equal(
    epoch(0),
    (() => {
      const again = planData(seqs, { batch: 3, seqLen: 6, evalFraction: 0.2, seed: 4 })
      return [0, 1, 2].flatMap((k) => again.batchOf(k)).map(key)
    })(),
    'the order is a function of the seed'
  )
  const packed = planData(seqs, { seqLen: 8, packing: true, seed: 1 })
  const total = seqs.reduce((a, s) => a + s.length, 0)
  assert.is(packed.train.length, Math.ceil(total / 8))
  assert.ok(packed.train.slice(0, -1).every((r) => r.ids.length === 8))
  assert.throws(() => planData(seqs.slice(0, 1), { evalFraction: 0.5, seed: 1 }), /leaves none to train on/)
})

const tok = await Tokenizer.fromDir(model)
const TEXTS = [
  'the quick brown fox jumps over the lazy dog',
  'a stitch in time saves nine',
  'all that glitters is not gold',
  'the early bird catches the worm',
  'fortune favours the bold',
  'actions speak louder than words',
  'better late than never',
  'knowledge is power'
]
const tokens = join(root, 'tokens.json')
writeFileSync(tokens, JSON.stringify(TEXTS.map((t) => tok.encode(t))))
const OPTS = [
  '--model',
  model,
  '--tokens',
  tokens,
  '--steps',
  '6',
  '--lr',
  '0.02',
  '--optimizer',
  'adamw',
  '--batch',
  '3',
  '--seq-len',
  '8',
  '--warmup',
  '2',
  '--schedule',
  'cosine',
  '--eval-fraction',
  '0.25',
  '--seed',
  '5',
  '--threads',
  '1',
  '--json'
]

test('a run resumed from its step-3 checkpoint ends bit-identical to the uninterrupted run', () => {
  const full = cli('train', ...OPTS, '--out', join(root, 'full'), '--checkpoint-every', '3')
  assert.is(full.code, 0, full.err)
  const a = done(full.out)
  assert.is(a.losses.length, 6)
  assert.ok(Number.isFinite(a.evalLoss), 'held-out loss reported')
  const steps = full.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((e) => e.event === 'step')
  assert.is(steps[0].lr, 0, 'warmup starts at lr 0, as transformers does')
  assert.ok(Math.abs(steps[2].lr - 0.02) < 1e-12, 'peak lr after warmup')

  const res = cli(
    'train',
    ...OPTS,
    '--out',
    join(root, 'resumed'),
    '--resume',
    join(root, 'full', 'checkpoint-3')
  )
  assert.is(res.code, 0, res.err)
  const b = done(res.out)
  assert.equal(b.losses, a.losses, 'the same loss curve, to the bit')
  assert.is(b.evalLoss, a.evalLoss)
  assert.is(b.cid, a.cid)
  assert.ok(
    readFileSync(join(root, 'full', 'adapter_model.safetensors')).equals(
      readFileSync(join(root, 'resumed', 'adapter_model.safetensors'))
    )
  )
  const rec = JSON.parse(
    readFileSync(join(root, 'resumed', 'training-record.json'), 'utf8')
  ) as SignedTrainingRecord
  assert.equal(rec.body.losses, a.losses)
  assert.is(rec.body.hyper.schedule, 'cosine')
  assert.is(rec.body.data.evalSequences, 2)

  const other = cli(
    'train',
    ...OPTS.map((o) => (o === '0.02' ? '0.03' : o)),
    '--out',
    join(root, 'x'),
    '--resume',
    join(root, 'full', 'checkpoint-3')
  )
  assert.is.not(other.code, 0)
  assert.match(other.err, /trained with lr = 0\.02, this run has 0\.03/)
})

test('bad option values are refused by name', () => {
  const bad = (extra: string[], re: RegExp) => {
    const r = cli('train', ...OPTS, '--out', join(root, 'bad'), ...extra)
    assert.is.not(r.code, 0)
    assert.match(r.err, re)
  }
  bad(['--schedule', 'step'], /--schedule must be one of constant, linear, cosine/)
  bad(['--warmup', '9'], /--warmup 9 is more than --steps 6/)
  bad(['--packing', '--seq-len', '1'], /--seq-len must be an integer ≥ 2/)
  bad(['--resume', join(root, 'nope')], /no trainer-state\.json/)
})

test('--datanet trains on a published version; the record names it, its root and contributors', async () => {
  const alice = '0x00000000000000000000000000000000000a11ce'
  const bob = '0x0000000000000000000000000000000000000b0b'
  const c = cli('datanet', 'create', '--name', 'proverbs', '--owner', alice, '--json')
  assert.is(c.code, 0, c.err)
  const id = JSON.parse(c.out).id as string
  const file = (name: string, rows: string[]) => {
    const f = join(root, name)
    writeFileSync(f, rows.map((text) => JSON.stringify({ text })).join('\n'))
    return f
  }
  for (const [who, f] of [
    [alice, file('a.jsonl', TEXTS.slice(0, 4))],
    [bob, file('b.jsonl', TEXTS.slice(4))]
  ] as const)
    assert.is(cli('datanet', 'contribute', '--datanet', id, '--file', f, '--contributor', who).code, 0)
  const pub = cli('datanet', 'publish', '--datanet', id, '--json')
  assert.is(pub.code, 0, pub.err)
  const root1 = JSON.parse(pub.out).root as string
  const r = cli(
    'train',
    '--model',
    model,
    '--out',
    join(root, 'dn'),
    '--datanet',
    `${id}@1`,
    '--steps',
    '2',
    '--lr',
    '0.01',
    '--optimizer',
    'sgd',
    '--seed',
    '1',
    '--json'
  )
  assert.is(r.code, 0, r.err)
  const rec = JSON.parse(
    readFileSync(join(root, 'dn', 'training-record.json'), 'utf8')
  ) as SignedTrainingRecord
  assert.equal(rec.body.datanets, [{ id, version: 1, root: root1, contributors: [alice, bob].sort() }])
  assert.is(rec.body.data.kind, 'datanet')
  assert.is(rec.body.data.sequences, TEXTS.length)
  assert.ok(await verifyTrainingRecord(rec), 'the record is signed by this node')
  const missing = cli(
    'train',
    '--model',
    model,
    '--out',
    join(root, 'dn2'),
    '--datanet',
    `${id}@7`,
    '--steps',
    '1',
    '--lr',
    '0.01',
    '--optimizer',
    'sgd'
  )
  assert.is.not(missing.code, 0)
  assert.match(missing.err, /no version 7/)
})

test.run()
