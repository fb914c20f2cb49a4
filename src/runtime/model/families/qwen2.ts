// Qwen2: the Llama layout with a bias on q/k/v (hard-coded by the model, whatever
// attention_bias says), and sliding windows only when use_sliding_window, on the layers from
// max_window_layers on.
import { layerWindows, parseDecoder, windowOf } from './common.ts'
import { LIMITS, posInt } from './fields.ts'
import { LLAMA_NAMES, llamaLayer } from './layout.ts'
import type { Family, Json, ModelConfig } from './types.ts'

export function qwenWindows(raw: Json, c: ModelConfig): void {
  let window: number | null = null
  if (raw.use_sliding_window === true && raw.sliding_window !== undefined && raw.sliding_window !== null) {
    window = posInt(raw, 'sliding_window', LIMITS.maxPositionEmbeddings)
    if (window >= c.maxPositionEmbeddings) window = null
  }
  const from =
    raw.max_window_layers === undefined ? 0 : posInt(raw, 'max_window_layers', LIMITS.numLayers + 1)
  c.layerWindows = layerWindows(window === null ? {} : raw, c.numLayers, window, (l) => l >= from)
  c.slidingWindow = windowOf(c.layerWindows)
}

export const qwen2: Family = {
  name: 'qwen2',
  architectures: ['Qwen2ForCausalLM'],
  modelTypes: ['qwen2'],
  ...LLAMA_NAMES,
  layer: llamaLayer,
  parse(raw, gen) {
    const c = parseDecoder(raw, gen, { family: 'qwen2', architectures: this.architectures })
    c.attentionBias = true
    qwenWindows(raw, c)
    return c
  }
}
