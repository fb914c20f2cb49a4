// The Hugging Face / PEFT → GGUF mapping onto llama.cpp's `llama` architecture, checked against
// llama.cpp's conventions written out by hand (convert_hf_to_gguf.py, convert_lora_to_gguf.py):
// q/k row permutation, tensor names, pre-tokenizer, llama3 rope factors, whole checkpoint and
// LoRA exports. The container itself is gguf.test.ts.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadPeftAdapter } from '../../src/runtime/adapters/peft.ts'
import {
  detectPreTokenizer,
  exportCheckpointToGguf,
  ggufTensorName,
  llamaRopeFreqs,
  permuteRotaryRows
} from '../../src/runtime/export/gguf-llama.ts'
import { exportLoraToGguf } from '../../src/runtime/export/gguf-lora.ts'
import { readGgufFile, readGgufTensor } from '../../src/runtime/formats/gguf.ts'
import { writeSafetensors } from '../../src/runtime/formats/safetensors.ts'
import { parseModelConfig } from '../../src/runtime/model/config.ts'
import { assertClose, seq, tmp } from './gguf-fixture.ts'

test('permuteRotaryRows is convert_hf_to_gguf.py permute: halves of each head interleaved', () => {
  // one head of 4 rows (2 columns): HF rows [r0 r1 | r2 r3] → llama.cpp [r0 r2 r1 r3]
  const w = Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3])
  assert.equal([...permuteRotaryRows(w, 4, 2, 1)], [0, 0, 2, 2, 1, 1, 3, 3])
  // two heads of 4, one column
  assert.equal(
    [...permuteRotaryRows(Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 8, 1, 2)],
    [0, 2, 1, 3, 4, 6, 5, 7]
  )
  assert.throws(() => permuteRotaryRows(new Float32Array(6), 6, 1, 2), /even size/)
})

test('HF tensor names map onto llama.cpp names', () => {
  assert.is(ggufTensorName('model.embed_tokens.weight'), 'token_embd.weight')
  assert.is(ggufTensorName('model.norm.weight'), 'output_norm.weight')
  assert.is(ggufTensorName('lm_head.weight'), 'output.weight')
  assert.is(ggufTensorName('model.layers.3.input_layernorm.weight'), 'blk.3.attn_norm.weight')
  assert.is(ggufTensorName('model.layers.3.post_attention_layernorm.weight'), 'blk.3.ffn_norm.weight')
  assert.is(ggufTensorName('model.layers.0.self_attn.q_proj.weight'), 'blk.0.attn_q.weight')
  assert.is(ggufTensorName('model.layers.0.self_attn.k_proj.bias'), 'blk.0.attn_k.bias')
  assert.is(ggufTensorName('model.layers.0.self_attn.o_proj.weight'), 'blk.0.attn_output.weight')
  assert.is(ggufTensorName('model.layers.12.mlp.gate_proj.weight'), 'blk.12.ffn_gate.weight')
  assert.is(ggufTensorName('model.layers.12.mlp.down_proj.weight'), 'blk.12.ffn_down.weight')
  assert.is(ggufTensorName('model.layers.0.self_attn.rotary_emb.inv_freq'), null)
})

test('pre-tokenizer names follow the HF pre_tokenizer shape', () => {
  assert.is(detectPreTokenizer({ type: 'ByteLevel', use_regex: true }), 'gpt-2')
  const smol = {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Digits', individual_digits: true },
      { type: 'ByteLevel', use_regex: true }
    ]
  }
  assert.is(detectPreTokenizer(smol), 'smollm')
  assert.is(detectPreTokenizer({ type: 'Whitespace' }), 'default')
})

test('llama3 rope_freqs factors: 1 for short wavelengths, factor for long, smooth between', () => {
  const cfg = parseModelConfig({
    architectures: ['LlamaForCausalLM'],
    hidden_size: 256,
    intermediate_size: 64,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    vocab_size: 16,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 128
    }
  })
  const f = llamaRopeFreqs(cfg)!
  assert.is(f.length, 64)
  assert.is(f[0], 1)
  assert.is(f[63], 8)
  const mid = [...f].filter((v) => v > 1 && v < 8)
  assert.ok(mid.length > 0)
  for (let i = 1; i < f.length; i++) assert.ok(f[i] >= f[i - 1])
})

async function writeTinyCheckpoint(dir: string, tie: boolean): Promise<Record<string, Float32Array>> {
  const H = 8
  const V = 260
  const t: Record<string, { shape: number[]; data: Float32Array }> = {
    'model.embed_tokens.weight': { shape: [V, H], data: seq(V * H) },
    'model.norm.weight': { shape: [H], data: seq(H) },
    'model.layers.0.input_layernorm.weight': { shape: [H], data: seq(H) },
    'model.layers.0.post_attention_layernorm.weight': { shape: [H], data: seq(H) },
    'model.layers.0.self_attn.q_proj.weight': { shape: [8, H], data: seq(64, 2) },
    'model.layers.0.self_attn.k_proj.weight': { shape: [4, H], data: seq(32, 3) },
    'model.layers.0.self_attn.v_proj.weight': { shape: [4, H], data: seq(32, 4) },
    'model.layers.0.self_attn.o_proj.weight': { shape: [H, 8], data: seq(64, 5) },
    'model.layers.0.mlp.gate_proj.weight': { shape: [16, H], data: seq(128) },
    'model.layers.0.mlp.up_proj.weight': { shape: [16, H], data: seq(128) },
    'model.layers.0.mlp.down_proj.weight': { shape: [H, 16], data: seq(128) }
  }
  if (!tie) t['lm_head.weight'] = { shape: [V, H], data: seq(V * H, 6) }
  await writeSafetensors(join(dir, 'model.safetensors'), t)
  const config = {
    architectures: ['LlamaForCausalLM'],
    hidden_size: H,
    intermediate_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    vocab_size: V,
    max_position_embeddings: 64,
    rope_theta: 10000,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: tie,
    bos_token_id: 256,
    eos_token_id: 257
  }
  await writeFile(join(dir, 'config.json'), JSON.stringify(config))
  const vocab: Record<string, number> = {}
  for (let i = 0; i < 256; i++) vocab[`b${i}`] = i
  vocab.ab = 258
  await writeFile(
    join(dir, 'tokenizer.json'),
    JSON.stringify({
      model: { type: 'BPE', vocab, merges: [['a', 'b']] },
      pre_tokenizer: { type: 'ByteLevel', use_regex: true },
      added_tokens: [
        { id: 256, content: '<s>', special: true },
        { id: 257, content: '</s>', special: true }
      ]
    })
  )
  await writeFile(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ add_bos_token: false, chat_template: '{{x}}' })
  )
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.data]))
}

test('checkpoint export: llama metadata, tokenizer, permuted q/k, tied output omitted, F16 close', async () => {
  const dir = await tmp()
  const w = await writeTinyCheckpoint(dir, true)
  const out = join(dir, 'm.gguf')
  await exportCheckpointToGguf(dir, out)
  const { bytes, gguf } = await readGgufFile(out)
  const m = gguf.metadata
  const want: Record<string, unknown> = {
    'general.architecture': 'llama',
    'general.alignment': 32,
    'general.file_type': 0,
    'llama.context_length': 64,
    'llama.embedding_length': 8,
    'llama.block_count': 1,
    'llama.feed_forward_length': 16,
    'llama.attention.head_count': 2,
    'llama.attention.head_count_kv': 1,
    'llama.rope.dimension_count': 4,
    'llama.vocab_size': 260,
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.pre': 'gpt-2',
    'tokenizer.ggml.bos_token_id': 256,
    'tokenizer.ggml.eos_token_id': 257,
    'tokenizer.ggml.add_bos_token': false,
    'tokenizer.chat_template': '{{x}}'
  }
  for (const [k, v] of Object.entries(want)) assert.is(m.get(k), v, k)
  assert.ok(Math.abs((m.get('llama.attention.layer_norm_rms_epsilon') as number) - 1e-5) < 1e-9)
  assert.is(m.get('llama.rope.freq_base'), 10000)
  assert.not.ok(m.has('llama.attention.key_length'))
  const tokens = m.get('tokenizer.ggml.tokens') as string[]
  const types = m.get('tokenizer.ggml.token_type') as number[]
  assert.is(tokens.length, 260)
  assert.is(tokens[258], 'ab')
  assert.is(tokens[259], '[PAD259]')
  assert.equal([types[0], types[256], types[259]], [1, 3, 5])
  assert.equal(m.get('tokenizer.ggml.merges'), ['a b'])
  const names = gguf.tensors.map((t) => t.name)
  assert.not.ok(names.includes('output.weight'))
  assert.ok(names.includes('blk.0.ffn_down.weight'))
  assert.equal(gguf.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!.ne, [8, 8])
  assert.equal(
    [...readGgufTensor(bytes, gguf, 'blk.0.attn_q.weight')],
    [...permuteRotaryRows(w['model.layers.0.self_attn.q_proj.weight'], 8, 8, 2)]
  )
  assert.equal(
    [...readGgufTensor(bytes, gguf, 'blk.0.attn_k.weight')],
    [...permuteRotaryRows(w['model.layers.0.self_attn.k_proj.weight'], 4, 8, 1)]
  )
  assert.equal(
    [...readGgufTensor(bytes, gguf, 'blk.0.attn_v.weight')],
    [...w['model.layers.0.self_attn.v_proj.weight']]
  )

  const dir2 = await tmp()
  await writeTinyCheckpoint(dir2, false)
  const out16 = join(dir2, 'm16.gguf')
  await exportCheckpointToGguf(dir2, out16, { dtype: 'F16' })
  const f16 = await readGgufFile(out16)
  assert.is(f16.gguf.metadata.get('general.file_type'), 1)
  const byName = new Map(f16.gguf.tensors.map((t) => [t.name, t]))
  assert.is(byName.get('output.weight')!.type, 1)
  assert.is(byName.get('output_norm.weight')!.type, 0) // norms stay F32
  const emb = readGgufTensor(f16.bytes, f16.gguf, 'token_embd.weight')
  assertClose(emb, w['model.embed_tokens.weight'], 1e-3, 'token_embd')
})

test('LoRA export: adapter metadata, [r,in]/[out,r] pairs, permuted q B, rsLoRA folded into B', async () => {
  const dir = await tmp()
  await writeTinyCheckpoint(dir, true)
  const cfg = parseModelConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')))
  const ad = join(dir, 'adapter')
  await import('node:fs/promises').then((fs) => fs.mkdir(ad))
  const r = 2
  const qA = seq(r * 8)
  const qB = seq(8 * r, 2)
  const vB = seq(4 * r, 3)
  await writeSafetensors(join(ad, 'adapter_model.safetensors'), {
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': { shape: [r, 8], data: qA },
    'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': { shape: [8, r], data: qB },
    'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight': { shape: [r, 8], data: seq(r * 8, 4) },
    'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight': { shape: [4, r], data: vB }
  })
  await writeFile(
    join(ad, 'adapter_config.json'),
    JSON.stringify({
      peft_type: 'LORA',
      r,
      lora_alpha: 4,
      use_rslora: true,
      target_modules: ['q_proj', 'v_proj']
    })
  )
  const lora = await loadPeftAdapter(ad, cfg, { checkBaseModel: false })
  assert.is(lora.layers.get(0)!.get('q_proj')!.scale, 4 / Math.sqrt(2))
  const out = join(dir, 'a.gguf')
  const res = await exportLoraToGguf(lora, cfg, out)
  assert.is(res.alpha, 4)
  const { bytes, gguf } = await readGgufFile(out)
  assert.is(gguf.metadata.get('general.type'), 'adapter')
  assert.is(gguf.metadata.get('general.architecture'), 'llama')
  assert.is(gguf.metadata.get('adapter.type'), 'lora')
  assert.is(gguf.metadata.get('adapter.lora.alpha'), 4)
  const t = new Map(gguf.tensors.map((x) => [x.name, x]))
  // llama.cpp's check: a.ne[0] = in features, b.ne[1] = out features, a.ne[1] = b.ne[0] = r
  assert.equal(t.get('blk.0.attn_q.weight.lora_a')!.ne, [8, r])
  assert.equal(t.get('blk.0.attn_q.weight.lora_b')!.ne, [r, 8])
  assert.equal(t.get('blk.0.attn_v.weight.lora_b')!.ne, [r, 4])
  assert.equal([...readGgufTensor(bytes, gguf, 'blk.0.attn_q.weight.lora_a')], [...qA])
  // llama.cpp scales by alpha / r = 2; PEFT rsLoRA by alpha / sqrt(r) = 2.83: B carries the rest
  const fold = 4 / Math.sqrt(2) / (4 / 2)
  const wantQ = permuteRotaryRows(qB, 8, r, 2).map((v) => v * fold)
  const gotQ = readGgufTensor(bytes, gguf, 'blk.0.attn_q.weight.lora_b')
  assertClose(gotQ, wantQ, 1e-6, 'q lora_b')
  const gotV = readGgufTensor(bytes, gguf, 'blk.0.attn_v.weight.lora_b')
  assertClose(
    gotV,
    vB.map((v) => v * fold),
    1e-6,
    'v lora_b'
  )
})

test('GGUF export refuses a family its llama writer cannot express, naming it', async () => {
  const d = await mkdtemp(join(tmpdir(), 'gguf-family-'))
  try {
    const fixture = join(import.meta.dirname, '..', 'fixtures', 'families', 'gemma2')
    const err = await exportCheckpointToGguf(fixture, join(d, 'out.gguf')).then(
      () => null,
      (e: Error) => e
    )
    assert.is(err?.name, 'NotSupportedError')
    assert.match(err!.message, /gemma2/)
  } finally {
    await rm(d, { recursive: true, force: true })
  }
})

test.run()
