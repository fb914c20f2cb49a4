// BLOOM: ALiBi instead of RoPE, a LayerNorm right after the embedding, LayerNorm with bias, one
// fused query_key_value interleaved per head ([heads, 3, head_dim] rows), a plain GELU-tanh MLP
// and biases on every Linear. LoRA on query_key_value splits B's rows per head like the weight.
import { parseDecoder } from './common.ts'
import { bool, LIMITS, posInt, posNumber } from './fields.ts'
import { plain } from './layout.ts'
import { type Family, ModelConfigError } from './types.ts'

/** ALiBi slopes as transformers' build_alibi_tensor computes them (fp32). */
export function alibiSlopes(heads: number): Float32Array {
  const closest = 2 ** Math.floor(Math.log2(heads))
  const base = Math.fround(2 ** -(2 ** -(Math.log2(closest) - 3)))
  const out = new Float32Array(heads)
  for (let i = 0; i < closest; i++) out[i] = Math.fround(base ** (i + 1))
  if (closest !== heads) {
    const extra = Math.fround(2 ** -(2 ** -(Math.log2(2 * closest) - 3)))
    const n = Math.min(closest, heads - closest)
    for (let i = 0; i < n; i++) out[closest + i] = Math.fround(extra ** (2 * i + 1))
  }
  return out
}

/** x rounded to bfloat16 (round to nearest, ties to even, as torch's .bfloat16()), as a number. */
export function toBf16(x: number): number {
  const f = new Float32Array([x])
  const u = new Uint32Array(f.buffer)
  u[0] = ((u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) & 0xffff0000) >>> 0
  return f[0]!
}

export const bloom: Family = {
  name: 'bloom',
  architectures: ['BloomForCausalLM'],
  modelTypes: ['bloom'],
  embedName: 'transformer.word_embeddings.weight',
  embedNorm: 'transformer.word_embeddings_layernorm.weight',
  finalNorm: 'transformer.ln_f.weight',
  lmHead: 'lm_head.weight',
  layer(cfg, l) {
    const p = `transformer.h.${l}`
    const H = cfg.hiddenSize
    const D = cfg.headDim
    // [heads, 3, D]: each head's query, key and value rows together
    const at = (slot: number) => (i: number) => (Math.floor(i / D) * 3 + slot) * D + (i % D)
    return {
      inputNorm: `${p}.input_layernorm.weight`,
      mlpNorm: `${p}.post_attention_layernorm.weight`,
      modules: [
        {
          path: `${p}.self_attention.query_key_value`,
          parts: [
            { proj: 'q_proj', rowOf: at(0) },
            { proj: 'k_proj', rowOf: at(1) },
            { proj: 'v_proj', rowOf: at(2) }
          ],
          rows: 3 * H,
          cols: H,
          bias: true
        },
        plain(`${p}.self_attention.dense`, 'o_proj', H, H, true),
        plain(`${p}.mlp.dense_h_to_4h`, 'up_proj', cfg.intermediateSize, H, true),
        plain(`${p}.mlp.dense_4h_to_h`, 'down_proj', H, cfg.intermediateSize, true)
      ]
    }
  },
  parse(raw, gen) {
    if (bool(raw, 'apply_residual_connection_post_layernorm', false)) {
      throw new ModelConfigError(
        'config.json: "apply_residual_connection_post_layernorm": true is not supported; allowed: false',
        { field: 'apply_residual_connection_post_layernorm', value: true }
      )
    }
    const H = posInt(raw, 'hidden_size', LIMITS.hiddenSize, (raw.n_embed as number | undefined) ?? 64)
    const heads = posInt(raw, 'n_head', LIMITS.numHeads, (raw.num_attention_heads as number | undefined) ?? 8)
    const c = parseDecoder(
      {
        ...raw,
        hidden_size: H,
        num_attention_heads: heads,
        num_key_value_heads: heads,
        num_hidden_layers: raw.n_layer ?? raw.num_hidden_layers,
        intermediate_size: 4 * H,
        tie_word_embeddings: raw.tie_word_embeddings ?? true,
        rms_norm_eps: posNumber(raw, 'layer_norm_epsilon', 1e-5),
        hidden_act: 'gelu_tanh'
      },
      gen,
      { family: 'bloom', architectures: this.architectures, activations: { gelu_tanh: 'gelu_tanh' } }
    )
    c.positions = 'alibi'
    c.norm = 'layernorm'
    c.mlp = 'plain'
    return c
  }
}
