// tensors.json (model/manifest.ts): each built initializer's placement, as the native decoder reads
// it. Checked against what ONNX Runtime reads (the graph's own external-data entries and inline
// raw data) and against the checkpoint tensors the builder was given.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import onnxProto from 'onnx-proto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { openCheckpoint } from '../../src/runtime/formats/safetensors.ts'
import { DT } from '../../src/runtime/graph/proto.ts'
import { ensureBuiltModel } from '../../src/runtime/model/build.ts'
import { readModelConfig } from '../../src/runtime/model/index.ts'
import { MANIFEST_FILE, readManifest } from '../../src/runtime/model/manifest.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-manifest-'))
const modelDir = join(root, 'tiny')
const cacheDir = join(root, 'cache')

test.before(async () => {
  await makeModel({ preset: 'tiny', seed: 5, out: modelDir })
})
test.after(() => rmSync(root, { recursive: true, force: true }))

for (const weightFormat of ['fp32', 'int8', 'int4'] as const) {
  test(`${weightFormat}: every initializer of model.onnx is in tensors.json where ORT reads it`, async () => {
    const cfg = await readModelConfig(modelDir)
    const built = await ensureBuiltModel(modelDir, cfg, { cacheDir, targets: [], weightFormat })
    const dir = dirname(built.modelPath)
    const m = await readManifest(dir)
    const data = readFileSync(join(dir, 'weights.bin'))
    assert.is(m.dataBytes, data.byteLength)
    const graph = onnxProto.onnx.ModelProto.decode(readFileSync(built.modelPath)).graph!
    assert.is(Object.keys(m.tensors).length, graph.initializer!.length)
    let external = 0
    for (const init of graph.initializer!) {
      const t = m.tensors[init.name!]
      assert.ok(t, `${init.name} is in the manifest`)
      assert.equal(t.dims, init.dims!.map(Number), init.name!)
      assert.is(t.type, init.dataType)
      if (init.externalData && init.externalData.length > 0) {
        external++
        const kv = Object.fromEntries(init.externalData.map((e) => [e.key, e.value]))
        assert.ok('offset' in t, `${init.name} is external`)
        if (!('offset' in t)) continue
        assert.is(t.offset, Number(kv.offset))
        assert.is(t.bytes, Number(kv.length))
      } else {
        assert.ok('values' in t, `${init.name} is inline`)
        if (!('values' in t)) continue
        const raw = init.rawData!
        const buf = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)
        const expect =
          t.type === DT.FLOAT
            ? [...new Float32Array(buf)]
            : t.type === DT.INT64
              ? [...new BigInt64Array(buf)].map(Number)
              : [...raw]
        assert.equal(t.values, expect, init.name!)
      }
    }
    assert.ok(external > 0)

    // the bytes at a manifest offset are the tensor the builder was given (fp32: the embedding as
    // stored in the checkpoint; inline: a norm's weights)
    const ckpt = await openCheckpoint(modelDir)
    try {
      const embed = m.tensors['model.embed_tokens.weight']!
      assert.ok('offset' in embed)
      if ('offset' in embed) {
        const at = new Float32Array(
          data.buffer.slice(data.byteOffset + embed.offset, data.byteOffset + embed.offset + embed.bytes)
        )
        assert.equal([...at], [...ckpt.read('model.embed_tokens.weight')])
      }
      const norm = m.tensors['model.layers.1.input_layernorm.weight']!
      assert.ok('values' in norm, 'a 64-float norm is inline')
      if ('values' in norm) assert.equal(norm.values, [...ckpt.read('model.layers.1.input_layernorm.weight')])
    } finally {
      ckpt.close()
    }
  })
}

test('a model cached without tensors.json is rebuilt once; a corrupt manifest is refused naming the file', async () => {
  const cfg = await readModelConfig(modelDir)
  const first = await ensureBuiltModel(modelDir, cfg, { cacheDir, targets: [] })
  const dir = dirname(first.modelPath)
  rmSync(join(dir, MANIFEST_FILE))
  const again = await ensureBuiltModel(modelDir, cfg, { cacheDir, targets: [] })
  assert.is(again.cached, false)
  const m = await readManifest(dir)
  assert.ok(Object.keys(m.tensors).length > 0)
  assert.is((await ensureBuiltModel(modelDir, cfg, { cacheDir, targets: [] })).cached, true)

  const bad = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8'))
  bad.tensors['model.embed_tokens.weight'].offset = bad.dataBytes
  writeFileSync(join(dir, MANIFEST_FILE), JSON.stringify(bad))
  try {
    await readManifest(dir)
    assert.unreachable('a tensor past weights.bin is refused')
  } catch (err) {
    assert.is((err as Error).name, 'ModelWeightsError')
    assert.match((err as Error).message, /model\.embed_tokens\.weight.*past weights\.bin/)
  }
  writeFileSync(join(dir, MANIFEST_FILE), JSON.stringify({ ...bad, version: 9 }))
  try {
    await readManifest(dir)
    assert.unreachable('an unknown version is refused')
  } catch (err) {
    assert.is((err as Error).name, 'ModelWeightsError')
    assert.match((err as Error).message, /tensors\.json.*version/)
  }
})

test.run()
