// GLM (GlmForCausalLM, the GLM-4-9B-0414 generation as transformers defines it) and GLM-4
// (Glm4ForCausalLM): the Llama computation with partial rotary (the first head_dim ·
// partial_rotary_factor dims rotate, half by default), rotary pairs interleaved (2i, 2i+1), q/k/v
// biases (attention_bias, on by default), and a fused mlp.gate_up_proj ([gate | up] rows). GLM-4
// adds sandwich norms: post_self_attn_layernorm on the attention output and post_mlp_layernorm on
// the MLP output. The old remote-code ChatGLM (ChatGLMModel) is a different layout and is refused.
import { parseDecoder } from './common.ts'
import { bool, isObject } from './fields.ts'
import { concat, LLAMA_NAMES, llamaLayer } from './layout.ts'
import { type Family, type Json, type LayerWeights, type ModelConfig, ModelConfigError } from './types.ts'

/** The Llama layer with gate and up fused into one mlp.gate_up_proj ([gate | up] rows). */
function glmLayer(cfg: ModelConfig, l: number): LayerWeights {
  const layer = llamaLayer(cfg, l)
  const I = cfg.intermediateSize
  const fused = concat(
    `model.layers.${l}.mlp.gate_up_proj`,
    [
      ['gate_proj', I],
      ['up_proj', I]
    ],
    cfg.hiddenSize
  )
  // modules 4 and 5 are gate_proj and up_proj; down_proj stays after them
  layer.modules.splice(4, 2, fused)
  return layer
}

function parseGlm(raw: Json, gen: unknown, family: string, architectures: readonly string[]): ModelConfig {
  const c = parseDecoder({ rms_norm_eps: 1.5625e-7, ...raw }, gen, { family, architectures })
  c.attentionBias = bool(raw, 'attention_bias', true)
  const rp = isObject(raw.rope_parameters) ? raw.rope_parameters : {}
  const factor = rp.partial_rotary_factor ?? raw.partial_rotary_factor ?? 0.5
  const R = typeof factor === 'number' ? Math.trunc(c.headDim * factor) : Number.NaN
  if (!((factor as number) > 0 && (factor as number) <= 1) || R < 2 || R % 2 !== 0) {
    throw new ModelConfigError(
      `config.json: "partial_rotary_factor" ${JSON.stringify(factor)} must be in (0, 1] and give an even number of rotary dims of head_dim ${c.headDim}`,
      { field: 'partial_rotary_factor', value: factor }
    )
  }
  c.rotaryDim = R
  c.ropeInterleaved = true
  return c
}

export const glm: Family = {
  name: 'glm',
  architectures: ['GlmForCausalLM'],
  modelTypes: ['glm'],
  ...LLAMA_NAMES,
  layer: glmLayer,
  parse(raw, gen) {
    return parseGlm(raw, gen, 'glm', this.architectures)
  }
}

export const glm4: Family = {
  name: 'glm4',
  architectures: ['Glm4ForCausalLM'],
  modelTypes: ['glm4'],
  ...LLAMA_NAMES,
  layer(cfg, l) {
    const p = `model.layers.${l}`
    return {
      ...glmLayer(cfg, l),
      postAttnNorm: `${p}.post_self_attn_layernorm.weight`,
      postMlpNorm: `${p}.post_mlp_layernorm.weight`
    }
  },
  parse(raw, gen) {
    return parseGlm(raw, gen, 'glm4', this.architectures)
  }
}
