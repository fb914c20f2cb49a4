import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { sha256Hex } from '../../src/crypto/hash.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import { checkpointTensorSpecs, makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { loadCheckpointWeights, loadSafetensors } from '../../src/runtime/formats/safetensors.ts'
import { parseModelConfig } from '../../src/runtime/model/config.ts'

const dir = mkdtempSync(join(tmpdir(), 'openlora-mm-'))
test.after(() => rmSync(dir, { recursive: true, force: true }))

function hashes(d: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const f of readdirSync(d).sort()) out[f] = sha256Hex(readFileSync(join(d, f)))
  return out
}

test('same preset and seed give byte-identical files; another seed changes the weights only', async () => {
  await makeModel({ out: join(dir, 'a'), preset: 'tiny', seed: 7 })
  await makeModel({ out: join(dir, 'b'), preset: 'tiny', seed: 7 })
  await makeModel({ out: join(dir, 'c'), preset: 'tiny', seed: 8 })
  const a = hashes(join(dir, 'a'))
  assert.equal(a, hashes(join(dir, 'b')))
  const c = hashes(join(dir, 'c'))
  assert.is.not(a['model.safetensors'], c['model.safetensors'])
  assert.is(a['tokenizer.json'], c['tokenizer.json'])
  assert.equal(Object.keys(a), [
    'config.json',
    'generation_config.json',
    'model.safetensors',
    'special_tokens_map.json',
    'tokenizer.json',
    'tokenizer_config.json'
  ])
})

test('every preset writes the HF tensor names and shapes its config implies', async () => {
  for (const preset of ['tiny', 'llama3-tiny', 'qwen2-tiny'] as const) {
    const out = join(dir, `p-${preset}`)
    const m = await makeModel({ out, preset, seed: 1 })
    const cfg = parseModelConfig(
      JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')),
      JSON.parse(readFileSync(join(out, 'generation_config.json'), 'utf8'))
    )
    assert.equal(cfg, m.config)
    const w = await loadCheckpointWeights(out)
    const specs = checkpointTensorSpecs(cfg)
    assert.equal([...w.keys()].sort(), specs.map((s) => s.name).sort(), preset)
    for (const s of specs) assert.equal(w.get(s.name)!.shape, s.shape, s.name)
    assert.is(w.has('lm_head.weight'), !cfg.tieWordEmbeddings)
    assert.is(w.has('model.layers.0.self_attn.q_proj.bias'), preset === 'qwen2-tiny')
    // weights are random and centred, norms near one
    const e = w.get('model.embed_tokens.weight')!.data
    const mean = e.reduce((a, b) => a + b, 0) / e.length
    assert.ok(Math.abs(mean) < 0.01, `${preset} mean ${mean}`)
    const norm = w.get('model.norm.weight')!.data
    assert.ok(norm.every((x) => x > 0.5 && x < 1.5) && norm.some((x) => x !== 1))
  }
  const l3 = parseModelConfig(JSON.parse(readFileSync(join(dir, 'p-llama3-tiny', 'config.json'), 'utf8')))
  assert.is(l3.ropeScaling?.type, 'llama3')
  assert.is(l3.headDim, 24)
})

test('sharded and half-precision checkpoints load back to the same fp32 values as rounding allows', async () => {
  await makeModel({ out: join(dir, 'sh'), preset: 'tiny', seed: 2, shards: 3 })
  await makeModel({ out: join(dir, 'one'), preset: 'tiny', seed: 2 })
  await makeModel({ out: join(dir, 'bf'), preset: 'tiny', seed: 2, dtype: 'BF16' })
  const files = readdirSync(join(dir, 'sh')).filter((f) => f.endsWith('.safetensors'))
  assert.equal(files, [
    'model-00001-of-00003.safetensors',
    'model-00002-of-00003.safetensors',
    'model-00003-of-00003.safetensors'
  ])
  const sh = await loadCheckpointWeights(join(dir, 'sh'))
  const one = await loadCheckpointWeights(join(dir, 'one'))
  const bf = await loadCheckpointWeights(join(dir, 'bf'))
  assert.is(sh.size, one.size)
  for (const [k, v] of one) {
    assert.equal([...sh.get(k)!.data], [...v.data], k)
    const b = bf.get(k)!.data
    for (let i = 0; i < v.data.length; i++)
      assert.ok(Math.abs(b[i]! - v.data[i]!) <= Math.abs(v.data[i]!) / 128 + 1e-30)
  }
  assert.is(bf.get('model.norm.weight')!.dtype, 'BF16')
})

test('make-adapter writes PEFT names and shapes, honours rank pattern and layers, is seeded', async () => {
  const model = join(dir, 'p-qwen2-tiny')
  const a1 = await makeAdapter({
    model,
    out: join(dir, 'ad1'),
    rank: 4,
    targets: ['q_proj', 'down_proj'],
    seed: 5,
    rankPattern: { 'layers.1.self_attn.q_proj': 2 },
    layersToTransform: [1]
  })
  await makeAdapter({
    model,
    out: join(dir, 'ad2'),
    rank: 4,
    targets: ['q_proj', 'down_proj'],
    seed: 5,
    rankPattern: { 'layers.1.self_attn.q_proj': 2 },
    layersToTransform: [1]
  })
  assert.equal(hashes(join(dir, 'ad1')), hashes(join(dir, 'ad2')))
  const t = await loadSafetensors(join(dir, 'ad1', 'adapter_model.safetensors'))
  const p = 'base_model.model.model.layers.1.'
  assert.equal([...t.keys()].sort(), [
    p + 'mlp.down_proj.lora_A.weight',
    p + 'mlp.down_proj.lora_B.weight',
    p + 'self_attn.q_proj.lora_A.weight',
    p + 'self_attn.q_proj.lora_B.weight'
  ])
  assert.equal(t.get(p + 'self_attn.q_proj.lora_A.weight')!.shape, [2, 64])
  assert.equal(t.get(p + 'self_attn.q_proj.lora_B.weight')!.shape, [64, 2])
  assert.equal(t.get(p + 'mlp.down_proj.lora_A.weight')!.shape, [4, 160])
  assert.equal(t.get(p + 'mlp.down_proj.lora_B.weight')!.shape, [64, 4])
  assert.ok(t.get(p + 'mlp.down_proj.lora_B.weight')!.data.some((x) => x !== 0))
  assert.is(a1.adapterConfig.base_model_name_or_path, 'openlora-fixtures/qwen2-tiny-seed1')
  assert.equal(a1.adapterConfig.layers_to_transform, [1])
})

test('bad options are refused with the allowed values named', async () => {
  const e1 = await makeModel({ out: join(dir, 'x'), preset: 'gpt2' as 'tiny' }).catch((e: Error) => e)
  assert.instance(e1, Error)
  assert.is((e1 as Error).name, 'InvalidParametersError')
  assert.match((e1 as Error).message, /unknown preset "gpt2"; allowed: tiny/)
  const e2 = await makeAdapter({
    model: join(dir, 'a'),
    out: join(dir, 'y'),
    rank: 4,
    targets: ['lm_head']
  }).catch((e: Error) => e)
  assert.instance(e2, Error)
  assert.match((e2 as Error).message, /unknown target "lm_head"; allowed/)
})

test.run()
