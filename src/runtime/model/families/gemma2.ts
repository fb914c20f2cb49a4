// Gemma 2: Gemma plus sandwich norms (post_attention_layernorm on the attention output,
// pre/post_feedforward_layernorm around the MLP), attention and final logit soft-capping,
// sliding-window attention on alternating layers, and a query scale from query_pre_attn_scalar.
import { layerWindows, parseDecoder, windowOf } from './common.ts'
import { LIMITS, optNumber, posInt, posNumber } from './fields.ts'
import { GELU_ACTIVATIONS, gemmaTraits } from './gemma.ts'
import { LLAMA_NAMES, llamaLayer } from './layout.ts'
import type { Family, Json, LayerWeights, ModelConfig } from './types.ts'

export function sandwichLayer(cfg: ModelConfig, l: number): LayerWeights {
  const p = `model.layers.${l}`
  return {
    ...llamaLayer(cfg, l),
    mlpNorm: `${p}.pre_feedforward_layernorm.weight`,
    postAttnNorm: `${p}.post_attention_layernorm.weight`,
    postMlpNorm: `${p}.post_feedforward_layernorm.weight`
  }
}

/** Gemma 2/3 config fields beyond Gemma's; `slides(l)` is the default layer pattern. */
export function gemma2Traits(raw: Json, c: ModelConfig, slides: (l: number) => boolean): void {
  gemmaTraits(raw, c)
  c.sandwichNorms = true
  c.attentionScale = 1 / Math.sqrt(posNumber(raw, 'query_pre_attn_scalar', 256))
  c.attnSoftcap = optNumber(raw, 'attn_logit_softcapping')
  c.finalSoftcap = optNumber(raw, 'final_logit_softcapping')
  const window =
    raw.sliding_window === null || raw.sliding_window === undefined
      ? null
      : posInt(raw, 'sliding_window', LIMITS.maxPositionEmbeddings)
  c.layerWindows = layerWindows(raw, c.numLayers, window, slides).map((w) =>
    w !== null && w >= c.maxPositionEmbeddings ? null : w
  )
  c.slidingWindow = windowOf(c.layerWindows)
}

export const gemma2: Family = {
  name: 'gemma2',
  architectures: ['Gemma2ForCausalLM'],
  modelTypes: ['gemma2'],
  ...LLAMA_NAMES,
  layer: sandwichLayer,
  parse(raw, gen) {
    const c = parseDecoder({ tie_word_embeddings: true, ...raw }, gen, {
      family: 'gemma2',
      architectures: this.architectures,
      activationKeys: ['hidden_activation', 'hidden_act'],
      activations: GELU_ACTIVATIONS
    })
    gemma2Traits(raw, c, (l) => l % 2 === 0)
    return c
  }
}
