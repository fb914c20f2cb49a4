// The family → llama.cpp architecture table (export/gguf-arch.ts) and the family writer's
// layouts (export/gguf-families.ts, gguf-lora.ts), read back from the files: which architecture
// each family gets, the query scale folded where llama.cpp fixes its own, fused tensors in
// llama.cpp's row order, a fused LoRA stacked block-diagonally, and refusals naming the key.
// test/e2e/llamacpp-families.test.ts runs the same files in llama.cpp.
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadPeftAdapter } from '../../src/runtime/adapters/peft.ts'
import { llamaCppArch } from '../../src/runtime/export/gguf-arch.ts'
import { exportModelToGguf } from '../../src/runtime/export/gguf-families.ts'
import { exportLoraToGguf } from '../../src/runtime/export/gguf-lora.ts'
import { readGgufFile, readGgufTensor } from '../../src/runtime/formats/gguf.ts'
import { loadCheckpointWeights } from '../../src/runtime/formats/safetensors.ts'
import { parseModelConfig } from '../../src/runtime/model/config.ts'

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'families')
const config = (name: string, patch: Record<string, unknown> = {}) =>
  parseModelConfig({ ...JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8')), ...patch })

test('each family maps to llama.cpp’s architecture of it', () => {
  const want: Record<string, string> = {
    qwen3: 'qwen3',
    gemma: 'gemma',
    gemma3_text: 'gemma3',
    phi3: 'phi3',
    falcon: 'falcon',
    bloom: 'bloom',
    glm4: 'glm4'
  }
  for (const [fixture, arch] of Object.entries(want))
    assert.is(llamaCppArch(config(fixture)).arch, arch, fixture)
  // transformers' GlmForCausalLM is llama.cpp's chatglm (when its attention is hidden wide)
  assert.is(llamaCppArch(config('glm', { head_dim: 16 })).arch, 'chatglm')
})

test('a query scale llama.cpp fixes is folded: Gemma 2 query_pre_attn_scalar, and its 27B rule', () => {
  // fixture: query_pre_attn_scalar 24, head_dim 16; llama.cpp scales by 1/sqrt(16)
  const tied = { tie_word_embeddings: true }
  assert.ok(Math.abs(llamaCppArch(config('gemma2', tied)).qScale - Math.sqrt(16 / 24)) < 1e-12)
  // 46 layers is llama.cpp's 27B: 1/sqrt(hidden / heads) = 1/sqrt(16), ours 1/sqrt(144)
  const big = config('gemma2', {
    ...tied,
    num_hidden_layers: 46,
    query_pre_attn_scalar: 144,
    layer_types: null
  })
  assert.ok(Math.abs(llamaCppArch(big).qScale - Math.sqrt(16 / 144)) < 1e-12)
  assert.is(llamaCppArch(config('qwen3')).qScale, 1)
})

test('refusals name the key: Falcon-RW ALiBi, longrope, untied Gemma 2, soft-cap off', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['falcon_rw', {}, 'alibi'],
    ['phi3_longrope', {}, 'rope_scaling'],
    ['gemma2', {}, 'tie_word_embeddings'],
    ['gemma2', { tie_word_embeddings: true, attn_logit_softcapping: null }, 'attn_logit_softcapping'],
    ['falcon_new', {}, 'bias'],
    ['glm', {}, 'head_dim']
  ]
  for (const [fixture, patch, field] of cases) {
    const err = (() => {
      try {
        llamaCppArch(config(fixture, patch))
      } catch (e) {
        return e as Error & { data: { field: string } }
      }
    })()
    assert.is(err?.name, 'NotSupportedError', fixture)
    assert.is(err!.data.field, field, err!.message)
    assert.match(err!.message, /llama\.cpp|not exported/)
  }
})

test('BLOOM: attn_qkv holds [q; k; v] from the per-head interleaved query_key_value; a LoRA on it is stacked', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'gguf-arch-'))
  try {
    const fixture = join(FIXTURES, 'bloom')
    const cfg = config('bloom')
    await exportModelToGguf(fixture, join(dir, 'm.gguf'))
    const { bytes, gguf } = await readGgufFile(join(dir, 'm.gguf'))
    assert.is(gguf.metadata.get('general.architecture'), 'bloom')
    assert.is(gguf.metadata.get('bloom.attention.layer_norm_epsilon'), Math.fround(1e-5))
    const hf = (await loadCheckpointWeights(fixture)).get(
      'transformer.h.1.self_attention.query_key_value.weight'
    )!
    const qkv = readGgufTensor(bytes, gguf, 'blk.1.attn_qkv.weight')
    const H = cfg.hiddenSize
    const D = cfg.headDim
    // row (part, head h, j) of ours is HF row (h·3 + part)·D + j
    for (const [part, h, j] of [
      [0, 0, 0],
      [1, 2, 5],
      [2, 3, D - 1]
    ] as const) {
      const ours = (part * H + h * D + j) * H
      const theirs = ((h * 3 + part) * D + j) * H
      assert.equal([...qkv.subarray(ours, ours + H)], [...hf.data.subarray(theirs, theirs + H)])
    }
    assert.ok(gguf.tensors.some((t) => t.name === 'token_embd_norm.bias'))

    const adapter = await loadPeftAdapter(join(fixture, 'adapter-all'), cfg, { checkBaseModel: false })
    await exportLoraToGguf(adapter, cfg, join(dir, 'a.gguf'))
    const a = await readGgufFile(join(dir, 'a.gguf'))
    const r = adapter.layers.get(0)!.get('q_proj')!.r
    const t = new Map(a.gguf.tensors.map((x) => [x.name, x]))
    // three parts of rank r stacked: A [3r, H], B [3H, 3r] block-diagonal
    assert.equal(t.get('blk.0.attn_qkv.weight.lora_a')!.ne, [H, 3 * r])
    assert.equal(t.get('blk.0.attn_qkv.weight.lora_b')!.ne, [3 * r, 3 * H])
    const B = readGgufTensor(a.bytes, a.gguf, 'blk.0.attn_qkv.weight.lora_b')
    for (let row = 0; row < 3 * H; row++) {
      for (let c = 0; c < 3 * r; c++) {
        if (Math.floor(row / H) !== Math.floor(c / r))
          assert.is(B[row * 3 * r + c], 0, `off-diagonal block at ${row},${c}`)
      }
    }
    assert.ok(B.some((x) => x !== 0))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
