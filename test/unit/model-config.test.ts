import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type ModelConfigError, parseModelConfig, projectionShape } from '../../src/runtime/model/config.ts'

// shapes copied from the published configs of these models
const smollm2 = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  vocab_size: 49152,
  rope_theta: 100000,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
  max_position_embeddings: 8192,
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'silu'
}

const llama32 = {
  architectures: ['LlamaForCausalLM'],
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  head_dim: 64,
  vocab_size: 128256,
  rope_theta: 500000,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3'
  },
  max_position_embeddings: 131072,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  tie_word_embeddings: true
}

const qwen2 = {
  architectures: ['Qwen2ForCausalLM'],
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  vocab_size: 151936,
  rope_theta: 1000000.0,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 32768,
  sliding_window: 32768,
  use_sliding_window: false,
  tie_word_embeddings: true,
  bos_token_id: 151643,
  eos_token_id: 151643
}

function code(fn: () => unknown): { name: string; field: unknown; message: string } {
  try {
    fn()
  } catch (err) {
    return {
      name: (err as Error).name,
      field: (err as ModelConfigError).data?.field,
      message: (err as Error).message
    }
  }
  throw new Error('expected an error')
}

test('SmolLM2-135M: GQA, head_dim derived, tied embeddings', () => {
  const c = parseModelConfig(smollm2)
  assert.is(c.architecture, 'LlamaForCausalLM')
  assert.is(c.headDim, 64)
  assert.is(c.numKvHeads, 3)
  assert.is(c.tieWordEmbeddings, true)
  assert.is(c.ropeTheta, 100000)
  assert.is(c.ropeScaling, null)
  assert.is(c.attentionBias, false)
  assert.equal(c.eosTokenIds, [0])
  assert.is(c.bosTokenId, 0)
  assert.equal(projectionShape(c, 'k_proj'), [576, 192])
  assert.equal(projectionShape(c, 'down_proj'), [1536, 576])
})

test('Llama 3.2: llama3 rope scaling, explicit head_dim, eos list; generation_config wins', () => {
  const c = parseModelConfig(llama32)
  assert.equal(c.ropeScaling, {
    type: 'llama3',
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192
  })
  assert.equal(c.eosTokenIds, [128001, 128008, 128009])
  const g = parseModelConfig(llama32, { bos_token_id: 128000, eos_token_id: [128009, 128001] })
  assert.equal(g.eosTokenIds, [128009, 128001])
  const odd = parseModelConfig({ ...llama32, hidden_size: 2000, head_dim: 128 })
  assert.is(odd.headDim, 128)
  assert.equal(projectionShape(odd, 'q_proj'), [2000, 4096])
})

test('Qwen2 has q/k/v bias; linear scaling; unused sliding window ignored', () => {
  const c = parseModelConfig({ ...qwen2, rope_scaling: { type: 'linear', factor: 2 } })
  assert.is(c.attentionBias, true)
  assert.is(c.slidingWindow, null)
  assert.equal(c.ropeScaling, { type: 'linear', factor: 2 })
  assert.is(c.tieWordEmbeddings, true)
})

test('dense DeepseekForCausalLM (Llama layout, no experts) parses', () => {
  const c = parseModelConfig({
    ...smollm2,
    architectures: ['DeepseekForCausalLM'],
    model_type: 'deepseek',
    n_routed_experts: null
  })
  assert.is(c.architecture, 'DeepseekForCausalLM')
})

test('Mistral v0.1 sliding window is read for every layer (the graph computes it)', () => {
  const c = parseModelConfig({
    ...smollm2,
    architectures: ['MistralForCausalLM'],
    sliding_window: 4096,
    max_position_embeddings: 32768
  })
  assert.is(c.slidingWindow, 4096)
  assert.equal(c.layerWindows, new Array(c.numLayers).fill(4096))
})

test('each unsupported or bad value names its field', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ ...smollm2, architectures: ['GPT2LMHeadModel'] }, 'architectures'],
    [{ ...smollm2, architectures: undefined }, 'architectures'],
    [{ ...smollm2, hidden_size: -1 }, 'hidden_size'],
    [{ ...smollm2, hidden_size: 1.5 }, 'hidden_size'],
    [{ ...smollm2, num_hidden_layers: undefined }, 'num_hidden_layers'],
    [{ ...smollm2, num_key_value_heads: 4 }, 'num_key_value_heads'],
    [{ ...smollm2, num_attention_heads: 7, num_key_value_heads: 7 }, 'head_dim'],
    [{ ...smollm2, hidden_act: 'gelu' }, 'hidden_act'],
    [{ ...smollm2, rope_scaling: { type: 'yarn', factor: 4 } }, 'rope_scaling.rope_type'],
    [{ ...smollm2, rope_scaling: { type: 'dynamic', factor: 4 } }, 'rope_scaling.rope_type'],
    [{ ...smollm2, rope_scaling: { type: 'linear' } }, 'factor'],
    [{ ...smollm2, rms_norm_eps: 0 }, 'rms_norm_eps'],
    [{ ...smollm2, tie_word_embeddings: 'yes' }, 'tie_word_embeddings'],
    [{ ...smollm2, eos_token_id: 50000 }, 'eos_token_id'],
    [{ ...smollm2, eos_token_id: 'x' }, 'eos_token_id'],
    [{ ...smollm2, mlp_bias: true }, 'mlp_bias'],
    [{ ...smollm2, attention_bias: true }, 'attention_bias'],
    [{ ...smollm2, architectures: ['DeepseekForCausalLM'], n_routed_experts: 64 }, 'n_routed_experts'],
    [{ ...smollm2, pretraining_tp: 2 }, 'pretraining_tp']
  ]
  for (const [cfg, field] of cases) {
    const e = code(() => parseModelConfig(cfg))
    assert.is(e.name, 'ModelConfigError', field)
    assert.is(e.field, field, `${field}: ${e.message}`)
  }
  assert.is(code(() => parseModelConfig([])).name, 'ModelConfigError')
  assert.is(code(() => parseModelConfig(smollm2, 'nope')).name, 'ModelConfigError')
})

test.run()
