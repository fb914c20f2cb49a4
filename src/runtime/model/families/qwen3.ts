// Qwen3: the Llama layout without Qwen2's q/k/v bias, plus a per-head RMSNorm of q and k
// (self_attn.q_norm / k_norm, weight [head_dim]) before RoPE.
import { parseDecoder } from './common.ts'
import { bool } from './fields.ts'
import { LLAMA_NAMES, llamaLayer } from './layout.ts'
import { qwenWindows } from './qwen2.ts'
import { type Family, ModelConfigError } from './types.ts'

export const qwen3: Family = {
  name: 'qwen3',
  architectures: ['Qwen3ForCausalLM'],
  modelTypes: ['qwen3'],
  ...LLAMA_NAMES,
  layer(cfg, l) {
    const w = llamaLayer(cfg, l)
    const p = `model.layers.${l}.self_attn`
    return { ...w, qNorm: `${p}.q_norm.weight`, kNorm: `${p}.k_norm.weight` }
  },
  parse(raw, gen) {
    const c = parseDecoder(raw, gen, { family: 'qwen3', architectures: this.architectures })
    if (bool(raw, 'attention_bias', false)) {
      throw new ModelConfigError(
        'config.json: "attention_bias": true is not supported for Qwen3 (q/k/v/o biases); allowed: false',
        {
          field: 'attention_bias'
        }
      )
    }
    c.qkNorm = true
    qwenWindows(raw, c)
    return c
  }
}
