// Gemma (v1): the Llama layout with (1 + w) RMSNorm, embeddings scaled by sqrt(hidden_size),
// GeGLU (GELU-tanh gate), an explicit head_dim (256 on 7B, not hidden/heads), MQA on 2B, tied
// embeddings.
import { parseDecoder } from './common.ts'
import { bool } from './fields.ts'
import { LLAMA_NAMES, llamaLayer } from './layout.ts'
import { type Family, type Json, type ModelConfig, ModelConfigError } from './types.ts'

export const GELU_ACTIVATIONS: Record<string, ModelConfig['activation']> = {
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_new: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
  gelu: 'gelu'
}

/** The Gemma traits every version shares. */
export function gemmaTraits(raw: Json, c: ModelConfig): void {
  if (bool(raw, 'attention_bias', false)) {
    throw new ModelConfigError(
      'config.json: "attention_bias": true is not supported for Gemma; allowed: false',
      {
        field: 'attention_bias'
      }
    )
  }
  c.norm = 'rms1p'
  // transformers multiplies by sqrt(hidden_size) as a tensor of the activations' dtype (fp32)
  c.embedScale = Math.fround(Math.sqrt(c.hiddenSize))
}

export const gemma: Family = {
  name: 'gemma',
  architectures: ['GemmaForCausalLM'],
  modelTypes: ['gemma'],
  ...LLAMA_NAMES,
  layer: llamaLayer,
  parse(raw, gen) {
    const c = parseDecoder({ tie_word_embeddings: true, ...raw }, gen, {
      family: 'gemma',
      architectures: this.architectures,
      activationKeys: ['hidden_act', 'hidden_activation'],
      activations: GELU_ACTIVATIONS
    })
    gemmaTraits(raw, c)
    return c
  }
}
