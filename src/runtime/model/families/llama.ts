// Llama and the checkpoints that share its layout exactly: Mistral (sliding window on every
// layer when set) and dense DeepSeek (deepseek-llm / deepseek-coder v1; DeepSeek-MoE's expert
// fields are refused by parseDecoder).
import { layerWindows, parseDecoder, windowOf } from './common.ts'
import { bool, LIMITS, posInt } from './fields.ts'
import { LLAMA_NAMES, llamaLayer } from './layout.ts'
import { type Family, ModelConfigError } from './types.ts'

export const llama: Family = {
  name: 'llama',
  architectures: ['LlamaForCausalLM', 'MistralForCausalLM', 'DeepseekForCausalLM'],
  modelTypes: ['llama', 'mistral', 'deepseek'],
  ...LLAMA_NAMES,
  layer: llamaLayer,
  parse(raw, gen) {
    const c = parseDecoder(raw, gen, { family: 'llama', architectures: this.architectures })
    // Llama's attention_bias would also put a bias on o_proj, which no model we target uses:
    // refuse it rather than half-support it
    if (bool(raw, 'attention_bias', false)) {
      throw new ModelConfigError(
        `config.json: "attention_bias": true is not supported for ${c.architecture} (it adds q/k/v/o biases); allowed: false`,
        { field: 'attention_bias' }
      )
    }
    const useSw = raw.use_sliding_window ?? c.architecture === 'MistralForCausalLM'
    let window: number | null = null
    if (useSw === true && raw.sliding_window !== undefined && raw.sliding_window !== null) {
      window = posInt(raw, 'sliding_window', LIMITS.maxPositionEmbeddings)
      // a window as long as every sequence changes nothing
      if (window >= c.maxPositionEmbeddings) window = null
    }
    c.layerWindows = layerWindows({}, c.numLayers, window, () => true)
    c.slidingWindow = windowOf(c.layerWindows)
    return c
  }
}
