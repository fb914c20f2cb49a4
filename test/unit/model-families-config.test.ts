// The family registry: each committed fixture's config.json (as transformers 5 wrote it) parses
// into its family's features, and what the graph cannot compute is refused at load with an error
// naming the key and value — an unknown architecture/model_type, an unknown rope type, longrope without factors,
// multi-query ALiBi Falcon, an unknown layer type — never silently wrong logits.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  type ModelConfig,
  type ModelConfigError,
  parseModelConfig,
  projectionsOf,
  SUPPORTED_ARCHITECTURES
} from '../../src/runtime/model/config.ts'
import { modelLayout } from '../../src/runtime/model/layout.ts'

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'families')
const raw = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8')) as Record<string, unknown>
const parse = (name: string, patch: Record<string, unknown> = {}): ModelConfig =>
  parseModelConfig({ ...raw(name), ...patch })

function refusal(fn: () => unknown): { field: unknown; value: unknown; message: string } {
  try {
    fn()
  } catch (err) {
    assert.is((err as Error).name, 'ModelConfigError')
    const e = err as ModelConfigError
    return { field: e.data?.field, value: e.data?.value, message: e.message }
  }
  throw new Error('expected a refusal')
}

test('each fixture parses into its family with the features that family has', () => {
  const q3 = parse('qwen3')
  assert.is(q3.family, 'qwen3')
  assert.ok(q3.qkNorm)
  const g = parse('gemma')
  assert.equal(
    [g.norm, g.activation, g.numKvHeads, g.headDim, g.tieWordEmbeddings],
    ['rms1p', 'gelu_tanh', 1, 32, true]
  )
  assert.is(g.embedScale, Math.fround(8))
  const g2 = parse('gemma2')
  assert.equal(g2.layerWindows, [4, null])
  assert.equal([g2.attnSoftcap, g2.finalSoftcap, g2.sandwichNorms], [5, 4, true])
  assert.ok(Math.abs(g2.attentionScale - 1 / Math.sqrt(24)) < 1e-12)
  const g3 = parse('gemma3_text')
  assert.equal([g3.ropeTheta, g3.ropeLocalTheta, g3.layerWindows], [1_000_000, 10_000, [4, null, 4]])
  const f = parse('falcon')
  assert.equal([f.norm, f.mlp, f.parallelBlock, f.numKvHeads], ['layernorm', 'plain', true, 1])
  assert.equal(projectionsOf(f), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj'])
  assert.is(parse('falcon_new').numKvHeads, 2)
  const b = parse('bloom')
  assert.is(b.positions, 'alibi')
  assert.is(modelLayout(b).paddedHeadDim, 32) // head 16 + ALiBi's dimension, padded
  const glm4 = parse('glm4')
  assert.equal([glm4.rotaryDim, glm4.ropeInterleaved, glm4.attentionBias], [12, true, true])
  assert.is(parse('phi3').layerWindows[0], 5)
  assert.is(parse('phi3_partial').rotaryDim, 24)
})

test('the head layout is a permutation into the padded head for every rotary kind', () => {
  for (const name of ['qwen3', 'glm', 'glm4', 'bloom', 'gemma', 'phi3_partial']) {
    const c = parse(name)
    const l = modelLayout(c)
    const seen = new Set<number>()
    for (let i = 0; i < c.numHeads * c.headDim; i++) {
      const p = l.padFeature(i)
      assert.ok(p >= 0 && p < c.numHeads * l.paddedHeadDim, `${name}: ${i} -> ${p}`)
      seen.add(p)
    }
    assert.is(seen.size, c.numHeads * c.headDim, `${name}: padFeature is one-to-one`)
  }
})

test('unsupported families and feature values are refused naming the key and value', () => {
  const cases: [string, Record<string, unknown>, string, unknown][] = [
    ['qwen3', { architectures: ['ChatGLMModel'], model_type: 'chatglm' }, 'architectures', 'ChatGLMModel'],
    ['qwen3', { architectures: ['MambaForCausalLM'] }, 'architectures', 'MambaForCausalLM'],
    ['qwen3', { model_type: 'llama' }, 'model_type', 'llama'],
    [
      'gemma2',
      { rope_parameters: { rope_type: 'yarn', factor: 4, rope_theta: 10000 } },
      'rope_parameters.rope_type',
      'yarn'
    ],
    [
      'qwen3',
      { rope_parameters: { rope_type: 'dynamic', factor: 2, rope_theta: 10000 } },
      'rope_parameters.rope_type',
      'dynamic'
    ],
    [
      'phi3',
      // longrope without its factors
      { rope_parameters: { rope_type: 'longrope', rope_theta: 10000 } },
      'rope_parameters.short_factor',
      undefined
    ],
    [
      'phi3',
      { rope_parameters: { rope_theta: 10000, partial_rotary_factor: 0.1 } },
      'partial_rotary_factor',
      0.1
    ],
    // ALiBi Falcon is Falcon-RW's layout (one K/V head per query head); with multi-query it is refused
    ['falcon', { alibi: true, multi_query: true }, 'multi_query', true],
    ['falcon', { alibi: true, new_decoder_architecture: true }, 'new_decoder_architecture', true],
    ['falcon', { num_ln_in_parallel_attn: 3 }, 'num_ln_in_parallel_attn', 3],
    [
      'gemma2',
      { layer_types: ['sliding_attention', 'chunked_attention'] },
      'layer_types',
      'chunked_attention'
    ],
    ['gemma2', { hidden_activation: 'relu' }, 'hidden_activation', 'relu'],
    ['gemma3_text', { use_bidirectional_attention: true }, 'use_bidirectional_attention', undefined],
    [
      'bloom',
      { apply_residual_connection_post_layernorm: true },
      'apply_residual_connection_post_layernorm',
      true
    ],
    [
      'glm',
      { partial_rotary_factor: 0.3, rope_parameters: { rope_theta: 10000 } },
      'partial_rotary_factor',
      0.3
    ],
    ['qwen3', { attention_bias: true }, 'attention_bias', undefined],
    [
      'phi3',
      {
        rope_parameters: {
          rope_type: 'longrope',
          rope_theta: 10000,
          short_factor: [1, 2],
          long_factor: [1, 2]
        },
        original_max_position_embeddings: 64
      },
      'short_factor',
      2
    ]
  ]
  for (const [name, patch, field, value] of cases) {
    const e = refusal(() => parse(name, patch))
    assert.is(e.field, field, `${name} ${JSON.stringify(patch)}: ${e.message}`)
    if (value !== undefined) {
      assert.is(e.value, value, e.message)
      assert.ok(e.message.includes(JSON.stringify(value)) || e.message.includes(String(value)), e.message)
    }
  }
  const chatglm = refusal(() => parse('qwen3', { architectures: ['ChatGLMModel'], model_type: 'chatglm' }))
  assert.match(chatglm.message, /remote-code ChatGLM/)
  for (const arch of [
    'Qwen3ForCausalLM',
    'Gemma2ForCausalLM',
    'FalconForCausalLM',
    'BloomForCausalLM',
    'Glm4ForCausalLM'
  ])
    assert.ok(SUPPORTED_ARCHITECTURES.includes(arch), arch)
})

test.run()
