import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { silentLogger } from '../../src/common/log.ts'
import { encodeManifest } from '../../src/crypto/cid.ts'
import { sha256, sha256Hex } from '../../src/crypto/hash.ts'
import { loadPeftAdapter, parsePeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { hasNestedQuantifier } from '../../src/runtime/adapters/peft-config.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { adapterCid, weightsHash } from '../../src/runtime/formats/identity.ts'
import { loadSafetensors, writeSafetensors } from '../../src/runtime/formats/safetensors.ts'
import type { ModelConfig } from '../../src/runtime/model/config.ts'

const dir = mkdtempSync(join(tmpdir(), 'openlora-peft-'))
test.after(() => rmSync(dir, { recursive: true, force: true }))
const opts = { log: silentLogger }
let tiny: ModelConfig
let qwen: ModelConfig
const TINY = join(dir, 'tiny')
const QWEN = join(dir, 'qwen')

test.before(async () => {
  tiny = (await makeModel({ out: TINY, preset: 'tiny', seed: 1 })).config
  qwen = (await makeModel({ out: QWEN, preset: 'qwen2-tiny', seed: 1 })).config
})

let n = 0
function fresh(): string {
  return join(dir, `ad${n++}`)
}

async function errorOf(
  p: Promise<unknown>
): Promise<Error & { data: Record<string, unknown>; code: string }> {
  try {
    await p
  } catch (err) {
    return err as Error & { data: Record<string, unknown>; code: string }
  }
  throw new Error('expected an error')
}

function editConfig(d: string, patch: Record<string, unknown>): void {
  const p = join(d, 'adapter_config.json')
  writeFileSync(p, JSON.stringify({ ...JSON.parse(readFileSync(p, 'utf8')), ...patch }))
}

test('loads A/B exactly as stored, scale alpha/r, CID over the two files', async () => {
  const out = fresh()
  await makeAdapter({ model: TINY, out, rank: 8, alpha: 16, targets: ['q_proj', 'v_proj'], seed: 3 })
  const a = await loadPeftAdapter(out, tiny, opts)
  assert.equal(a.config.targets, ['q_proj', 'v_proj'])
  assert.equal([...a.layers.keys()], [0, 1])
  const q = a.layers.get(1)!.get('q_proj')!
  assert.is(q.r, 8)
  assert.is(q.scale, 2)
  assert.is(q.inFeatures, 64)
  assert.is(q.outFeatures, 64)
  const v = a.layers.get(0)!.get('v_proj')!
  assert.is(v.outFeatures, 32)
  const raw = await loadSafetensors(join(out, 'adapter_model.safetensors'))
  assert.equal([...q.A], [...raw.get('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight')!.data])
  assert.equal([...v.B], [...raw.get('base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight')!.data])
  assert.is(a.maxRank, 8)
  assert.is(a.bytes, 2 * (8 * 64 + 64 * 8 + 8 * 64 + 32 * 8) * 4)
  // the CID is the manifest CID of exactly the two PEFT files, whatever else is in the folder
  writeFileSync(join(out, 'README.md'), 'model card')
  assert.is(a.cid, await adapterCid(out))
  const cfgBytes = readFileSync(join(out, 'adapter_config.json'))
  const stBytes = readFileSync(join(out, 'adapter_model.safetensors'))
  const again = await makeAdapter({
    model: TINY,
    out: fresh(),
    rank: 8,
    alpha: 16,
    targets: ['q_proj', 'v_proj'],
    seed: 3
  })
  assert.is((await loadPeftAdapter(again.dir, tiny, opts)).cid, a.cid)
  stBytes[stBytes.length - 1]! ^= 1
  const other = fresh()
  await makeAdapter({ model: TINY, out: other, rank: 8, alpha: 16, targets: ['q_proj', 'v_proj'], seed: 3 })
  writeFileSync(join(other, 'adapter_model.safetensors'), stBytes)
  assert.is.not((await loadPeftAdapter(other, tiny, opts)).cid, a.cid)
  assert.ok(cfgBytes.length > 0)
})

test('rsLoRA scale, rank_pattern and alpha_pattern per module, layers_to_transform', async () => {
  const out = fresh()
  await makeAdapter({
    model: QWEN,
    out,
    rank: 8,
    alpha: 16,
    rslora: true,
    targets: ['k_proj', 'o_proj', 'gate_proj', 'down_proj'],
    rankPattern: { 'layers.1.self_attn.o_proj': 4, down_proj: 2 },
    alphaPattern: { gate_proj: 3 },
    layersToTransform: [1],
    seed: 9
  })
  const a = await loadPeftAdapter(out, qwen, opts)
  assert.equal([...a.layers.keys()], [1])
  const l = a.layers.get(1)!
  assert.is(l.get('k_proj')!.scale, 16 / Math.sqrt(8))
  assert.is(l.get('o_proj')!.r, 4)
  assert.is(l.get('o_proj')!.scale, 16 / 2)
  assert.is(l.get('down_proj')!.r, 2)
  assert.is(l.get('down_proj')!.inFeatures, 160)
  assert.is(l.get('gate_proj')!.scale, 3 / Math.sqrt(8))
  assert.is(a.maxRank, 8)
  assert.equal(a.config.layersToTransform, [1])
  // without rslora the same pattern gives alpha/r
  editConfig(out, { use_rslora: false })
  const b = await loadPeftAdapter(out, qwen, opts)
  assert.is(b.layers.get(1)!.get('o_proj')!.scale, 4)
  assert.is(b.layers.get(1)!.get('gate_proj')!.scale, 3 / 8)
})

test('target_modules as a regex, all-linear, exclude_modules and fan_in_fan_out', async () => {
  const out = fresh()
  await makeAdapter({ model: TINY, out, rank: 4, targets: ['q_proj', 'up_proj'], seed: 1 })
  editConfig(out, { target_modules: '.*\\.(q_proj|up_proj)' })
  assert.equal((await loadPeftAdapter(out, tiny, opts)).config.targets, ['q_proj', 'up_proj'])
  const all = fresh()
  await makeAdapter({
    model: TINY,
    out: all,
    rank: 4,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    seed: 1
  })
  editConfig(all, { target_modules: 'all-linear', fan_in_fan_out: true })
  assert.is((await loadPeftAdapter(all, tiny, opts)).config.targets.length, 7)
  // excluding layer 1's q_proj makes its tensors unexpected
  editConfig(all, { exclude_modules: ['model.layers.1.self_attn.q_proj'] })
  const e = await errorOf(loadPeftAdapter(all, tiny, opts))
  assert.is(e.data.tensor, 'base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight')
})

test('each unsupported config field is refused, naming it', async () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ use_dora: true }, 'use_dora'],
    [{ modules_to_save: ['lm_head'] }, 'modules_to_save'],
    [{ bias: 'all' }, 'bias'],
    [{ peft_type: 'IA3' }, 'peft_type'],
    [{ target_modules: ['q_proj', 'embed_tokens'] }, 'target_modules'],
    [{ target_modules: ['lm_head'] }, 'target_modules'],
    [{ target_modules: '.*(q_proj|lm_head)' }, 'target_modules'],
    [{ target_modules: ['c_attn'] }, 'target_modules'],
    [{ target_modules: null }, 'target_modules'],
    [{ target_modules: '(' }, 'target_modules'],
    [{ r: 0 }, 'r'],
    [{ lora_alpha: 'x' }, 'lora_alpha'],
    [{ layers_to_transform: [5] }, 'layers_to_transform'],
    [{ rank_pattern: { q_proj: 2.5 } }, 'rank_pattern'],
    [{ alpha_pattern: { '[': 2 } }, 'alpha_pattern'],
    [{ layer_replication: [[0, 1]] }, 'layer_replication'],
    [{ layers_pattern: 'h' }, 'layers_pattern'],
    // exponential backtracking shapes from an untrusted config are refused before they run
    [{ target_modules: '(.*)*x' }, 'target_modules'],
    [{ rank_pattern: { '(a+)+$': 2 } }, 'rank_pattern'],
    [{ base_model_name_or_path: 'meta-llama/Llama-3.2-1B' }, 'base_model_name_or_path']
  ]
  const out = fresh()
  await makeAdapter({ model: TINY, out, rank: 4, targets: ['q_proj'], seed: 1 })
  const good = readFileSync(join(out, 'adapter_config.json'), 'utf8')
  for (const [patch, field] of cases) {
    writeFileSync(join(out, 'adapter_config.json'), good)
    editConfig(out, patch)
    const e = await errorOf(loadPeftAdapter(out, tiny, opts))
    assert.is(e.name, 'PeftAdapterError', field)
    assert.is(e.code, 'ADAPTER_INVALID')
    assert.is(e.data.field, field, `${JSON.stringify(patch)}: ${e.message}`)
  }
  // a name mismatch can be overridden; shapes are still checked
  writeFileSync(join(out, 'adapter_config.json'), good)
  editConfig(out, { base_model_name_or_path: 'meta-llama/Llama-3.2-1B' })
  assert.ok(await loadPeftAdapter(out, tiny, { ...opts, checkBaseModel: false }))
  // same model under another folder: the last path segment decides
  editConfig(out, { base_model_name_or_path: '/models/TINY-seed1' })
  assert.ok(await loadPeftAdapter(out, tiny, { ...opts, modelId: 'openlora-fixtures/tiny-seed1' }))
  writeFileSync(join(out, 'adapter_config.json'), '{"r": 4,')
  assert.match((await errorOf(loadPeftAdapter(out, tiny, opts))).message, /not valid JSON/)
})

test('bad tensors are refused, naming the tensor', async () => {
  const base = fresh()
  await makeAdapter({ model: TINY, out: base, rank: 4, targets: ['q_proj'], layersToTransform: [0], seed: 1 })
  const cfg = readFileSync(join(base, 'adapter_config.json'))
  const p = 'base_model.model.model.layers.0.self_attn.q_proj.'
  const A = { shape: [4, 64], data: new Float32Array(256).fill(0.1) }
  const B = { shape: [64, 4], data: new Float32Array(256).fill(0.1) }
  const cases: [Record<string, { shape: number[]; data: Float32Array }>, string, RegExp][] = [
    [
      {
        [p + 'lora_A.weight']: A,
        [p + 'lora_B.weight']: B,
        [p + 'lora_magnitude_vector']: { shape: [64], data: new Float32Array(64) }
      },
      p + 'lora_magnitude_vector',
      /DoRA/
    ],
    [
      {
        [p + 'lora_A.weight']: A,
        [p + 'lora_B.weight']: B,
        'base_model.model.model.embed_tokens.lora_embedding_A': {
          shape: [4, 512],
          data: new Float32Array(2048)
        }
      },
      'base_model.model.model.embed_tokens.lora_embedding_A',
      /embedding/
    ],
    [
      {
        [p + 'lora_A.weight']: A,
        [p + 'lora_B.weight']: B,
        'base_model.model.lm_head.weight': { shape: [1], data: new Float32Array(1) }
      },
      'base_model.model.lm_head.weight',
      /lm_head/
    ],
    [
      { [p + 'lora_A.weight']: { shape: [4, 32], data: new Float32Array(128) }, [p + 'lora_B.weight']: B },
      p + 'lora_A.weight',
      /does not fit the base model/
    ],
    [
      { [p + 'lora_A.weight']: { shape: [2, 64], data: new Float32Array(128) }, [p + 'lora_B.weight']: B },
      p + 'lora_A.weight',
      /rank/
    ],
    [{ [p + 'lora_A.weight']: A }, p + 'lora_B.weight', /missing/],
    [
      {
        [p + 'lora_A.weight']: A,
        [p + 'lora_B.weight']: B,
        'base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight': A
      },
      'base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight',
      /do not select/
    ],
    [
      {
        [p + 'lora_A.weight']: A,
        [p + 'lora_B.weight']: B,
        'base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight': A
      },
      'base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight',
      /2 layers/
    ],
    [
      { [p + 'lora_A.weight']: A, 'base_model.model.model.layers.0.mlp.q_proj.lora_B.weight': B },
      'base_model.model.model.layers.0.mlp.q_proj.lora_B.weight',
      /not a PEFT LoRA tensor/
    ],
    [
      {
        [p + 'lora_A.weight']: { shape: [4, 64], data: new Float32Array(256).fill(Number.NaN) },
        [p + 'lora_B.weight']: B
      },
      p + 'lora_A.weight',
      /non-finite/
    ]
  ]
  for (const [tensors, name, re] of cases) {
    const out = fresh()
    await makeAdapter({ model: TINY, out, rank: 4, targets: ['q_proj'], layersToTransform: [0], seed: 1 })
    writeFileSync(join(out, 'adapter_config.json'), cfg)
    await writeSafetensors(join(out, 'adapter_model.safetensors'), tensors)
    const e = await errorOf(loadPeftAdapter(out, tiny, opts))
    assert.is(e.name, 'PeftAdapterError', name)
    assert.is(e.data.tensor, name, e.message)
    assert.match(e.message, re)
  }
  // an adapter made for another base model (qwen2-tiny's MLP is 160 wide, tiny's 128)
  const q = fresh()
  await makeAdapter({ model: QWEN, out: q, rank: 4, targets: ['down_proj'], seed: 1 })
  const e = await errorOf(loadPeftAdapter(q, tiny, { ...opts, checkBaseModel: false }))
  assert.match(e.message, /does not fit the base model/)
  assert.match((await errorOf(loadPeftAdapter(q, tiny, opts))).message, /qwen2-tiny-seed1/)
})

test('truncated or missing files give PeftAdapterError, never a crash', async () => {
  const out = fresh()
  await makeAdapter({ model: TINY, out, rank: 4, targets: ['q_proj'], seed: 1 })
  const st = readFileSync(join(out, 'adapter_model.safetensors'))
  writeFileSync(join(out, 'adapter_model.safetensors'), st.subarray(0, st.length - 10))
  let e = await errorOf(loadPeftAdapter(out, tiny, opts))
  assert.is(e.name, 'PeftAdapterError')
  assert.match(e.message, /truncated/)
  writeFileSync(join(out, 'adapter_model.safetensors'), st.subarray(0, 4))
  e = await errorOf(loadPeftAdapter(out, tiny, opts))
  assert.match(e.message, /truncated/)
  rmSync(join(out, 'adapter_model.safetensors'))
  e = await errorOf(loadPeftAdapter(out, tiny, opts))
  assert.is(e.name, 'PeftAdapterError')
  assert.match(e.message, /adapter_model.safetensors/)
  e = await errorOf(loadPeftAdapter(out, tiny, { ...opts, maxFileBytes: 10 }))
  assert.is(e.name, 'PeftAdapterError')
})

test('weightsHash is the sha256 of the hf-weights manifest and follows the weights', async () => {
  const h = await weightsHash(TINY)
  const st = readFileSync(join(TINY, 'model.safetensors'))
  const want = sha256Hex(
    encodeManifest({
      v: 1,
      kind: 'hf-weights',
      files: [{ name: 'model.safetensors', size: st.length, sha256: sha256(st) }]
    })
  )
  assert.is(h, want)
  const same = join(dir, 'tiny-again')
  await makeModel({ out: same, preset: 'tiny', seed: 1 })
  assert.is(await weightsHash(same), h)
  const other = join(dir, 'tiny-2')
  await makeModel({ out: other, preset: 'tiny', seed: 2 })
  assert.is.not(await weightsHash(other), h)
  const sharded = join(dir, 'tiny-sharded')
  await makeModel({ out: sharded, preset: 'tiny', seed: 1, shards: 2 })
  assert.match(await weightsHash(sharded), /^0x[0-9a-f]{64}$/)
})

test('nested-quantifier detector: refuses (a+)+ shapes, keeps ordinary PEFT patterns', () => {
  for (const bad of ['(a+)+', '(.*)*', '((ab)*c)+', '(a|b+){2,}', '(x(y+))*'])
    assert.ok(hasNestedQuantifier(bad), bad)
  for (const ok of [
    '.*\\.(q_proj|v_proj)',
    'model.layers.(0|1).self_attn.q_proj',
    '[(+]+',
    '\\(a+\\)+',
    '(q|k)?_proj',
    'q_proj'
  ])
    assert.not.ok(hasNestedQuantifier(ok), ok)
})

test('any value in any config field, or corrupt weight bytes, ends in PeftAdapterError or a valid adapter', async () => {
  const out = fresh()
  await makeAdapter({
    model: TINY,
    out,
    rank: 2,
    targets: ['q_proj', 'down_proj'],
    layersToTransform: [0],
    seed: 4
  })
  const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>
  const weights = new Uint8Array(readFileSync(join(out, 'adapter_model.safetensors')))
  const values: unknown[] = [
    null,
    true,
    false,
    0,
    -1,
    1.5,
    1e300,
    '',
    'x',
    '(',
    '.*',
    [],
    [1],
    ['q_proj'],
    {},
    { a: 1 },
    { '.*': 0 },
    'a'.repeat(600)
  ]
  let seed = 7
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n
  const keys = [...Object.keys(cfg), 'exclude_modules', 'lora_bias', 'target_parameters']
  let loaded = 0
  for (let i = 0; i < 600; i++) {
    const c = { ...cfg }
    for (let j = 0; j < 1 + rnd(3); j++) c[keys[rnd(keys.length)]!] = values[rnd(values.length)]
    const w = weights.slice()
    if (i % 3 === 0) for (let j = 0; j < 3; j++) w[rnd(w.length)] = rnd(256)
    try {
      const a = parsePeftAdapter(new TextEncoder().encode(JSON.stringify(c)), w, tiny, opts)
      assert.ok(a.layers.size > 0)
      loaded++
    } catch (err) {
      assert.is((err as Error).name, 'PeftAdapterError', (err as Error).stack)
    }
  }
  assert.ok(loaded > 0 && loaded < 600, `loaded ${loaded}`)
})

test.run()
