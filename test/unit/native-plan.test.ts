// What the native decoder takes on (runtime/native/spec.ts): nativeDecodeSupport refuses each
// config feature it does not compute, naming it, and accepts the Llama block (Llama, Llama 3,
// Qwen2 with biases, Phi-3's fused checkpoints); nativePlan points each weight at the built
// graph's own initializer (tensors.json) with the shapes and block sizes the engine will assume.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { makeModel, type Preset } from '../../src/runtime/fixtures/make-model.ts'
import { ensureBuiltModel } from '../../src/runtime/model/build.ts'
import type { ModelConfig } from '../../src/runtime/model/config.ts'
import { readModelConfig } from '../../src/runtime/model/index.ts'
import { readManifest } from '../../src/runtime/model/manifest.ts'
import { NativeUnavailableError, nativeDecodeSupport } from '../../src/runtime/native/decoder.ts'
import { nativePlan } from '../../src/runtime/native/spec.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-native-plan-'))
const FAMILIES = join(import.meta.dirname, '../fixtures/families')
test.after(() => rmSync(root, { recursive: true, force: true }))

const models = new Map<Preset, string>()
async function model(preset: Preset): Promise<string> {
  let dir = models.get(preset)
  if (!dir) {
    dir = join(root, preset)
    await makeModel({ preset, seed: 3, out: dir })
    models.set(preset, dir)
  }
  return dir
}

test('the family fixtures: each refusal names the feature; Phi-3 (fused checkpoint, Llama block) is supported', async () => {
  const expected: Record<string, RegExp | null> = {
    bloom: /positions "alibi"/,
    falcon: /norm "layernorm"/,
    falcon_new: /norm "layernorm"/,
    falcon_rw: /positions "alibi"/,
    gemma: /norm "rms1p"/,
    gemma2: /norm "rms1p"/,
    gemma3_text: /ropeLocalTheta/,
    glm: /ropeInterleaved/,
    glm4: /ropeInterleaved/,
    phi3: null,
    phi3_longrope: null,
    phi3_longrope_long: null,
    phi3_partial: /partial rotary \(rotaryDim 24 of headDim 32\)/,
    qwen3: /qkNorm/
  }
  const seen = readdirSync(FAMILIES).sort()
  assert.equal(seen, Object.keys(expected).sort(), 'every family fixture has an expectation here')
  for (const f of seen) {
    const why = nativeDecodeSupport(await readModelConfig(join(FAMILIES, f)), 'fp32')
    const want = expected[f]!
    if (want === null) assert.is(why, null, f)
    else assert.match(why ?? 'null', want, f)
  }
})

test('the Llama presets are supported in every format; each feature alone is refused by name', async () => {
  const tiny = await readModelConfig(await model('tiny'))
  for (const p of ['tiny', 'llama3-tiny', 'qwen2-tiny'] as const)
    for (const f of ['fp32', 'int8', 'int4'] as const)
      assert.is(nativeDecodeSupport(await readModelConfig(await model(p)), f), null, `${p} ${f}`)
  const refusals: [Partial<ModelConfig>, RegExp][] = [
    [{ positions: 'alibi' }, /positions "alibi"/],
    [{ ropeInterleaved: true }, /ropeInterleaved/],
    [{ rotaryDim: 8 }, /partial rotary/],
    [{ ropeLocalTheta: 10 }, /ropeLocalTheta/],
    [{ norm: 'rms1p' }, /norm "rms1p"/],
    [{ norm: 'layernorm' }, /norm "layernorm"/],
    [{ activation: 'gelu_tanh' }, /activation "gelu_tanh"/],
    [{ mlp: 'plain' }, /mlp "plain"/],
    [{ parallelBlock: true }, /parallelBlock/],
    [{ qkNorm: true }, /qkNorm/],
    [{ sandwichNorms: true }, /sandwichNorms/],
    [{ attnSoftcap: 50 }, /attnSoftcap/],
    [{ finalSoftcap: 30 }, /finalSoftcap/],
    [{ embedScale: 8 }, /embedScale/],
    [{ layerWindows: [4, null] }, /different sliding windows/]
  ]
  for (const [change, reason] of refusals)
    assert.match(
      nativeDecodeSupport({ ...tiny, ...change }, 'fp32') ?? 'null',
      reason,
      JSON.stringify(change)
    )
  assert.is(
    nativeDecodeSupport({ ...tiny, layerWindows: [4, 4] }, 'fp32'),
    null,
    'one window for every layer'
  )
})

for (const [preset, format] of [
  ['tiny', 'fp32'],
  ['tiny', 'int8'],
  ['tiny', 'int4'],
  ['qwen2-tiny', 'int8'],
  ['llama3-tiny', 'fp32']
] as const) {
  test(`nativePlan ${preset} ${format}: every weight is the graph's initializer`, async () => {
    const dir = await model(preset)
    const cfg = await readModelConfig(dir)
    const built = await ensureBuiltModel(dir, cfg, {
      cacheDir: join(root, 'cache'),
      targets: [],
      weightFormat: format
    })
    const builtDir = dirname(built.modelPath)
    const m = await readManifest(builtDir)
    const plan = await nativePlan(builtDir, cfg, format, 2)
    const at = (name: string) => {
      const t = m.tensors[name]!
      return 'offset' in t ? t.offset : t.values
    }
    const same = (ref: unknown, name: string) =>
      typeof ref === 'number'
        ? assert.is(ref, at(name), name)
        : assert.equal([...(ref as Float32Array)], at(name), name)
    const Dp = plan.headDim
    assert.is(Dp, Math.ceil(cfg.headDim / 16) * 16)
    assert.is(plan.format, { fp32: 0, int8: 1, int4: 2 }[format])
    assert.is(plan.window, 0)
    assert.is(plan.weightsPath, join(builtDir, 'weights.bin'))
    same(plan.embed, 'model.embed_tokens.weight')
    same(plan.finalNorm, 'model.norm.weight')
    const L = plan.layer[1]!
    same(L.inputNorm, 'model.layers.1.input_layernorm.weight')
    same(L.mlpNorm, 'model.layers.1.post_attention_layernorm.weight')
    assert.is(L.qkv.N, (cfg.numHeads + 2 * cfg.numKvHeads) * Dp)
    assert.is(L.o.K, cfg.numHeads * Dp)
    assert.is(L.gateUp.N, 2 * cfg.intermediateSize)
    assert.is(L.down.K, cfg.intermediateSize)
    if (format === 'fp32') {
      same(L.qkv.weight, 'model.layers.1.qkv.weight_t')
      assert.is(L.qkv.rows, false)
      assert.is(L.qkv.block, 0)
      same(plan.lmHead.weight, cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight')
      assert.is(plan.lmHead.rows, true)
    } else {
      const q = format === 'int8' ? 'q8' : 'q4'
      same(L.down.weight, `model.layers.1.down.${q}`)
      same(L.down.scales, 'model.layers.1.down.scales')
      assert.is(L.down.rows, true)
      assert.is(L.down.block, format === 'int4' ? 32 : m.tensors[`model.layers.1.down.${q}`]!.dims[2])
      if (format === 'int4') same(L.down.zeros, 'model.layers.1.down.zp4')
      else assert.is(L.down.zeros, -1)
      same(plan.lmHead.weight, `lm_head.${q}`)
    }
    if (preset === 'qwen2-tiny') same(L.qkvBias, 'model.layers.1.qkv.bias')
    else assert.is(L.qkvBias, -1)
    assert.is(L.oBias, -1)
  })
}

test('nativePlan refuses an unsupported model and a graph whose tensors are not the expected ones', async () => {
  const dir = await model('tiny')
  const cfg = await readModelConfig(dir)
  const built = await ensureBuiltModel(dir, cfg, { cacheDir: join(root, 'cache'), targets: [] })
  try {
    await nativePlan(dirname(built.modelPath), { ...cfg, norm: 'layernorm' }, 'fp32', 1)
    assert.unreachable()
  } catch (err) {
    assert.instance(err, NativeUnavailableError)
    assert.match((err as Error).message, /does not compute norm "layernorm"/)
  }
  try {
    // an fp32 graph read as int8: its q8 codes are not there
    await nativePlan(dirname(built.modelPath), cfg, 'int8', 1)
    assert.unreachable()
  } catch (err) {
    assert.instance(err, NativeUnavailableError)
    assert.match((err as Error).message, /q8/)
  }
})

test.run()
