// `openlora train` end to end on the committed PyTorch + PEFT fixtures: its per-step losses equal
// torch's (plain SGD and AdamW) step by step, `--dump-grads` holds PyTorch's step-0 gradients
// under PEFT's names, the output adapter is accepted by `adapter add` and changes the model's
// logits in our runtime (`generate --logits`), and bad options are refused by name.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { sha256Hex } from '../../src/crypto/hash.ts'
import { verifyTrainingRecord } from '../../src/protocols/training/record-verify.ts'
import { loadSafetensors } from '../../src/runtime/formats/safetensors.ts'
import type { SignedTrainingRecord } from '../../src/runtime/training/record.ts'

const FIX = join(import.meta.dirname, '..', 'fixtures', 'train')
const root = mkdtempSync(join(tmpdir(), 'openlora-train-cli-'))

function cli(...args: string[]) {
  // train signs its record with the node key of --data-dir: keep that key inside the test's dir
  const dd = args[0] === 'train' || args[0] === 'id' ? ['--data-dir', join(root, 'node')] : []
  const r = spawnSync(process.execPath, ['src/node/cli/main.ts', ...args, ...dd], { encoding: 'utf8' })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

interface Goldens {
  loss: number
  steps: number
  hyper: { sgd_lr: number; adamw_lr: number; weight_decay: number }
  losses: { sgd: number[]; adamw: number[] }
}

function train(fx: string, opt: 'sgd' | 'adamw', out: string, extra: string[] = []) {
  const dir = join(FIX, fx)
  const g = JSON.parse(readFileSync(join(dir, 'goldens.json'), 'utf8')) as Goldens
  const lr = opt === 'sgd' ? g.hyper.sgd_lr : g.hyper.adamw_lr
  const wd = opt === 'adamw' ? ['--weight-decay', String(g.hyper.weight_decay)] : []
  const r = cli(
    'train',
    '--model',
    dir,
    '--out',
    out,
    '--tokens',
    join(dir, 'tokens.json'),
    '--init-adapter',
    join(dir, 'adapter'),
    '--steps',
    String(g.steps),
    '--lr',
    String(lr),
    '--optimizer',
    opt,
    ...wd,
    '--seed',
    '1',
    '--json',
    ...extra
  )
  assert.is(r.code, 0, r.err)
  const lines = r.out.trim().split('\n')
  return { g, done: JSON.parse(lines.at(-1)!), steps: lines.slice(0, -1).map((l) => JSON.parse(l)) }
}

// through the CLI on two runs (both optimizers, both head kinds); every fixture × optimizer is
// checked in process by training-families.test.ts, which keeps this file's process spawns within
// the runner's time limit on a loaded machine
for (const [fx, opt] of [
  ['llama', 'sgd'],
  ['llama-tied', 'adamw']
] as const)
  test(`${fx} ${opt}: losses equal PyTorch + PEFT step by step`, () => {
    const out = join(root, `${fx}-${opt}`)
    const { g, done, steps } = train(fx, opt, out)
    assert.is(done.event, 'done')
    assert.is(done.steps, g.steps)
    assert.is(done.adapter, out)
    assert.match(done.cid, /^baf/)
    assert.is(steps.length, g.steps, 'one step event per step')
    done.losses.forEach((l: number, i: number) => {
      const want = g.losses[opt][i]!
      // float32 gradient differences (≤ 1.3e-5 measured) carry through the updates: the tied SGD
      // run, whose loss rises (sharp curvature), differs by 3e-5 at step 3; the others by < 1e-6
      assert.ok(Math.abs(l - want) / want < 1e-4, `step ${i}: ${l} vs torch ${want}`)
    })
  })

test('--dump-grads writes the step-0 gradients under PEFT names, equal to PyTorch', async () => {
  const file = join(root, 'grads.safetensors')
  train('llama-tied', 'sgd', join(root, 'dump'), ['--dump-grads', file])
  const got = await loadSafetensors(file)
  const want = await loadSafetensors(join(FIX, 'llama-tied', 'grads.safetensors'))
  assert.equal([...got.keys()].sort(), [...want.keys()].sort())
  assert.ok(got.has('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'))
  for (const [name, w] of want) {
    const a = got.get(name)!.data as Float32Array
    const b = w.data as Float32Array
    let num = 0
    let den = 0
    b.forEach((x, i) => {
      num += (a[i]! - x) ** 2
      den += x * x
    })
    assert.ok(Math.sqrt(num / den) <= 1e-4, `${name}: ${Math.sqrt(num / den)}`)
  }
})

test('a fresh run saves an adapter the node imports, that changes logits, with a signed record', async () => {
  const dir = join(FIX, 'llama')
  const out = join(root, 'fresh')
  const r = cli(
    'train',
    '--model',
    dir,
    '--out',
    out,
    '--tokens',
    join(dir, 'tokens.json'),
    '--rank',
    '4',
    '--targets',
    'q_proj,v_proj,down_proj',
    '--steps',
    '3',
    '--lr',
    '0.02',
    '--optimizer',
    'adamw',
    '--seed',
    '9',
    '--json'
  )
  assert.is(r.code, 0, r.err)
  const done = JSON.parse(r.out.trim().split('\n').at(-1)!)
  assert.ok(done.losses[2] < done.losses[0], `loss falls: ${done.losses}`)
  const rec = JSON.parse(readFileSync(join(out, 'training-record.json'), 'utf8')) as SignedTrainingRecord
  assert.is(rec.body.adapterCid, done.cid)
  assert.equal(rec.body.losses, done.losses)
  assert.equal(rec.body.lora, {
    r: 4,
    alpha: 8,
    rslora: false,
    targets: ['q_proj', 'v_proj', 'down_proj'],
    init: 'peft-default seed 9'
  })
  assert.equal(rec.body.hyper, {
    optimizer: 'adamw',
    lr: 0.02,
    steps: 3,
    weightDecay: 0.01,
    seed: 9,
    batch: null,
    seqLen: null,
    packing: false,
    warmup: 0,
    schedule: 'constant',
    evalFraction: 0
  })
  assert.is(rec.body.baseModel.id, 'llama')
  assert.match(rec.body.baseModel.weightsHash, /^0x[0-9a-f]{64}$/)
  assert.is(rec.body.data.sha256, sha256Hex(readFileSync(join(dir, 'tokens.json'))))
  assert.is(rec.signer, JSON.parse(cli('id', '--json').out).peerId, "signed with the node's key")
  assert.ok(await verifyTrainingRecord(rec))
  assert.not.ok(
    await verifyTrainingRecord({ ...rec, body: { ...rec.body, losses: [0, 0, 0] } }),
    'tampering shows'
  )
  const add = cli('adapter', 'add', out, '--data-dir', join(root, 'node'), '--model', dir, '--json')
  assert.is(add.code, 0, add.err)
  assert.is(JSON.parse(add.out.trim()).cid, done.cid, 'the node computes the same CID')
  const logits = (adapter: string[]) => {
    const f = join(root, `logits-${adapter.length}.bin`)
    const g = cli(
      'generate',
      '--model',
      dir,
      ...adapter,
      '--prompt-ids',
      '1,17,40,5',
      '--max-tokens',
      '1',
      '--json',
      '--logits',
      f,
      '--cache-dir',
      join(root, 'cache')
    )
    assert.is(g.code, 0, g.err)
    return new Float32Array(new Uint8Array(readFileSync(f)).buffer)
  }
  const base = logits([])
  const adapted = logits(['--adapter', out])
  const diff = Math.max(...base.map((x, i) => Math.abs(x - adapted[i]!)))
  assert.ok(diff > 1e-3, `adapter changes logits (max diff ${diff})`)
})

test('Phi-3: a fresh run adapts the fused modules PEFT names, and the node serves the result', () => {
  const dir = join(FIX, 'phi3')
  const out = join(root, 'fresh-phi3')
  const r = cli(
    'train',
    '--model',
    dir,
    '--out',
    out,
    '--tokens',
    join(dir, 'tokens.json'),
    '--rank',
    '4',
    '--targets',
    'v_proj,gate_up_proj',
    '--steps',
    '3',
    '--lr',
    '0.02',
    '--optimizer',
    'adamw',
    '--seed',
    '3',
    '--json'
  )
  assert.is(r.code, 0, r.err)
  const done = JSON.parse(r.out.trim().split('\n').at(-1)!)
  assert.ok(done.losses[2] < done.losses[0], `loss falls: ${done.losses}`)
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'))
  assert.equal(cfg.target_modules, ['qkv_proj', 'gate_up_proj'], 'v_proj lives in qkv_proj')
  const rec = JSON.parse(readFileSync(join(out, 'training-record.json'), 'utf8')) as SignedTrainingRecord
  assert.equal(rec.body.lora.targets, ['qkv_proj', 'gate_up_proj'])
  const add = cli('adapter', 'add', out, '--data-dir', join(root, 'node'), '--model', dir, '--json')
  assert.is(add.code, 0, add.err)
  assert.is(JSON.parse(add.out.trim()).cid, done.cid, 'the node computes the same CID')
})

test('bad options are refused with what is allowed', () => {
  const dir = join(FIX, 'llama')
  const base = [
    'train',
    '--model',
    dir,
    '--out',
    join(root, 'bad'),
    '--tokens',
    join(dir, 'tokens.json'),
    '--steps',
    '1',
    '--lr',
    '0.1'
  ]
  let r = cli(...base, '--optimizer', 'adam')
  assert.is(r.code, 2)
  assert.match(r.err, /sgd or adamw/)
  r = cli(...base, '--optimizer', 'sgd', '--targets', 'q_proj,lm_head')
  assert.is(r.code, 2)
  assert.match(r.err, /lm_head.*allowed: q_proj/)
  r = cli(...base, '--optimizer', 'sgd', '--init-adapter', join(dir, 'adapter'), '--rank', '4')
  assert.is(r.code, 2)
  assert.match(r.err, /--init-adapter sets rank/)
  const badTokens = join(root, 'bad-tokens.json')
  spawnSync('sh', ['-c', `echo '[[1, 500]]' > ${badTokens}`])
  r = cli(
    'train',
    '--model',
    dir,
    '--out',
    join(root, 'bad'),
    '--tokens',
    badTokens,
    '--steps',
    '1',
    '--lr',
    '0.1',
    '--optimizer',
    'sgd',
    '--seed',
    '1'
  )
  assert.not.equal(r.code, 0)
  assert.match(r.err, /tokens\[0\]\[1\] = 500: token ids are integers in \[0, 96\)/)
})

test.run()
