// Falcon, both layouts. 7B style: multi_query (one K/V head), attention and MLP in parallel from
// one input_layernorm. new_decoder_architecture (40B/180B, Falcon 2): grouped K/V, parallel
// attention + MLP from two norms (ln_attn, ln_mlp). LayerNorm with bias, a plain GELU MLP
// (dense_h_to_4h → dense_4h_to_h), optional biases on every Linear, and one fused
// query_key_value whose rows interleave per K/V group (new layout), per head (old non-MQA), or
// come as [q | k | v] (MQA); LoRA on it splits B's rows the same way. Falcon-RW: ALiBi instead of
// RoPE (alibi: true), sequential attention then MLP, per-head query_key_value, biases.
import { parseDecoder } from './common.ts'
import { bool, LIMITS, posInt, posNumber } from './fields.ts'
import { plain } from './layout.ts'
import {
  type Family,
  type LayerWeights,
  type ModelConfig,
  ModelConfigError,
  type ModuleSpec
} from './types.ts'

/** Row of the fused query_key_value holding feature i of q, k or v. */
function qkvRows(cfg: ModelConfig, layout: 'grouped' | 'per-head' | 'mqa') {
  const D = cfg.headDim
  const nRep = cfg.numHeads / cfg.numKvHeads
  if (layout === 'grouped') {
    // [kvHeads, nRep + 2, D]: a group's query heads, then its key, then its value
    const at = (g: number, slot: number, j: number) => (g * (nRep + 2) + slot) * D + j
    return {
      q: (i: number) => at(Math.floor(Math.floor(i / D) / nRep), Math.floor(i / D) % nRep, i % D),
      k: (i: number) => at(Math.floor(i / D), nRep, i % D),
      v: (i: number) => at(Math.floor(i / D), nRep + 1, i % D)
    }
  }
  if (layout === 'per-head') {
    // [heads, 3, D]
    const at = (h: number, slot: number, j: number) => (h * 3 + slot) * D + j
    return {
      q: (i: number) => at(Math.floor(i / D), 0, i % D),
      k: (i: number) => at(Math.floor(i / D), 1, i % D),
      v: (i: number) => at(Math.floor(i / D), 2, i % D)
    }
  }
  const q = cfg.numHeads * D
  return { q: (i: number) => i, k: (i: number) => q + i, v: (i: number) => q + D + i }
}

interface FalconConfig extends ModelConfig {
  falconLayout: 'grouped' | 'per-head' | 'mqa'
  twoNorms: boolean
  linearBias: boolean
}

export const falcon: Family = {
  name: 'falcon',
  architectures: ['FalconForCausalLM'],
  modelTypes: ['falcon'],
  embedName: 'transformer.word_embeddings.weight',
  finalNorm: 'transformer.ln_f.weight',
  lmHead: 'lm_head.weight',
  layer(cfg, l): LayerWeights {
    const c = cfg as FalconConfig
    const p = `transformer.h.${l}`
    const H = cfg.hiddenSize
    const D = cfg.headDim
    const b = c.linearBias
    const rows = qkvRows(cfg, c.falconLayout)
    const qkv: ModuleSpec = {
      path: `${p}.self_attention.query_key_value`,
      parts: [
        { proj: 'q_proj', rowOf: rows.q },
        { proj: 'k_proj', rowOf: rows.k },
        { proj: 'v_proj', rowOf: rows.v }
      ],
      rows: (cfg.numHeads + 2 * cfg.numKvHeads) * D,
      cols: H,
      bias: b
    }
    const inputNorm = c.twoNorms ? `${p}.ln_attn.weight` : `${p}.input_layernorm.weight`
    return {
      inputNorm,
      mlpNorm: c.twoNorms
        ? `${p}.ln_mlp.weight`
        : cfg.parallelBlock
          ? inputNorm
          : `${p}.post_attention_layernorm.weight`,
      modules: [
        qkv,
        plain(`${p}.self_attention.dense`, 'o_proj', H, cfg.numHeads * D, b),
        plain(`${p}.mlp.dense_h_to_4h`, 'up_proj', cfg.intermediateSize, H, b),
        plain(`${p}.mlp.dense_4h_to_h`, 'down_proj', H, cfg.intermediateSize, b)
      ]
    }
  },
  parse(raw, gen) {
    const H = posInt(raw, 'hidden_size', LIMITS.hiddenSize, 4544)
    const heads = posInt(raw, 'num_attention_heads', LIMITS.numHeads, 71)
    const newArch = bool(raw, 'new_decoder_architecture', false)
    const mqa = bool(raw, 'multi_query', true)
    const kvHeads = newArch
      ? posInt(raw, 'num_kv_heads', LIMITS.numHeads, heads)
      : mqa
        ? 1
        : posInt(raw, 'num_kv_heads', LIMITS.numHeads, heads)
    const parallel = bool(raw, 'parallel_attn', true)
    if (newArch && !parallel) {
      throw new ModelConfigError(
        'config.json: "parallel_attn": false with "new_decoder_architecture": true is not supported; allowed: true',
        { field: 'parallel_attn', value: false }
      )
    }
    const alibi = bool(raw, 'alibi', false)
    if (alibi && (newArch || mqa)) {
      // Falcon-RW is the only ALiBi Falcon: one K/V head per query head, the old layout
      throw new ModelConfigError(
        `config.json: "alibi": true is supported with one K/V head per query head only (Falcon-RW: "multi_query" and "new_decoder_architecture" false); this config sets ${newArch ? 'new_decoder_architecture' : 'multi_query'}`,
        { field: newArch ? 'new_decoder_architecture' : 'multi_query', value: true }
      )
    }
    const lns = raw.num_ln_in_parallel_attn ?? (newArch ? 2 : 1)
    if (lns !== 1 && lns !== 2) {
      throw new ModelConfigError(
        `config.json: "num_ln_in_parallel_attn" ${JSON.stringify(lns)} is not supported; allowed: 1, 2`,
        { field: 'num_ln_in_parallel_attn', value: lns }
      )
    }
    // Falcon's names for the fields parseDecoder reads
    const mapped = {
      ...raw,
      hidden_size: H,
      num_attention_heads: heads,
      num_key_value_heads: kvHeads,
      head_dim: undefined,
      num_hidden_layers: raw.num_hidden_layers ?? raw.n_layer,
      intermediate_size: raw.ffn_hidden_size ?? 4 * H,
      tie_word_embeddings: raw.tie_word_embeddings ?? true,
      rms_norm_eps: posNumber(raw, 'layer_norm_epsilon', 1e-5),
      hidden_act: raw.activation ?? 'gelu'
    }
    const c = parseDecoder(mapped, gen, {
      family: 'falcon',
      architectures: this.architectures,
      activationKeys: ['hidden_act'],
      activations: { gelu: 'gelu', gelu_pytorch_tanh: 'gelu_tanh' }
    }) as FalconConfig
    if (alibi) {
      c.positions = 'alibi'
      c.alibiStyle = 'falcon'
    }
    c.norm = 'layernorm'
    c.mlp = 'plain'
    c.parallelBlock = newArch || parallel
    c.falconLayout = newArch ? 'grouped' : mqa ? 'mqa' : 'per-head'
    c.twoNorms = newArch && lns === 2
    c.linearBias = bool(raw, 'bias', false)
    return c
  }
}
