// Gemma 3 (text): Gemma 2's layer (sandwich norms, query_pre_attn_scalar) plus q/k (1 + w)
// RMSNorm per head, five sliding-window layers per global one by default, and two RoPE bases:
// the global layers' rope_theta (with its scaling) and the local layers' own base.
import { parseDecoder } from './common.ts'
import { isObject, posNumber } from './fields.ts'
import { GELU_ACTIVATIONS } from './gemma.ts'
import { gemma2Traits, sandwichLayer } from './gemma2.ts'
import { LLAMA_NAMES } from './layout.ts'
import { parseRopeScaling } from './rope-config.ts'
import { type Family, ModelConfigError } from './types.ts'

export const gemma3: Family = {
  name: 'gemma3_text',
  architectures: ['Gemma3ForCausalLM'],
  modelTypes: ['gemma3_text'],
  ...LLAMA_NAMES,
  layer(cfg, l) {
    const p = `model.layers.${l}.self_attn`
    return { ...sandwichLayer(cfg, l), qNorm: `${p}.q_norm.weight`, kNorm: `${p}.k_norm.weight` }
  },
  parse(raw, gen) {
    if (raw.use_bidirectional_attention === true) {
      throw new ModelConfigError(
        'config.json: "use_bidirectional_attention": true is not supported; allowed: false',
        {
          field: 'use_bidirectional_attention'
        }
      )
    }
    // transformers 5 writes rope_parameters per layer type; older configs rope_theta +
    // rope_local_base_freq (+ rope_scaling for the global layers)
    const rp = raw.rope_parameters
    let local = 10_000
    let flat = raw
    if (isObject(rp) && (isObject(rp.full_attention) || isObject(rp.sliding_attention))) {
      const full = isObject(rp.full_attention) ? rp.full_attention : {}
      const slide = isObject(rp.sliding_attention) ? rp.sliding_attention : {}
      if (parseRopeScaling(slide, 1, 'rope_parameters.sliding_attention') !== null) {
        throw new ModelConfigError(
          'config.json: scaled RoPE on the sliding layers is not supported; allowed: default',
          {
            field: 'rope_parameters.sliding_attention.rope_type',
            value: slide.rope_type
          }
        )
      }
      local = posNumber(slide, 'rope_theta', 10_000, 'config.json rope_parameters.sliding_attention')
      flat = { ...raw, rope_parameters: { rope_theta: 1_000_000, ...full } }
    } else {
      local = posNumber(raw, 'rope_local_base_freq', 10_000)
    }
    const c = parseDecoder({ tie_word_embeddings: true, ...flat }, gen, {
      family: 'gemma3_text',
      architectures: this.architectures,
      ropeTheta: 1_000_000,
      activationKeys: ['hidden_activation', 'hidden_act'],
      activations: GELU_ACTIVATIONS
    })
    const pattern = typeof raw.sliding_window_pattern === 'number' ? raw.sliding_window_pattern : 6
    gemma2Traits(raw, c, (l) => (l + 1) % pattern !== 0)
    c.qkNorm = true
    c.ropeLocalTheta = local
    return c
  }
}
