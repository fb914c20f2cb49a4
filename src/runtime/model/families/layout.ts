// Weight layouts: how a family names its Linear modules and which projection rows each holds
// (plain, several projections concatenated), and the Llama layer most families start from.
import type { LayerWeights, ModelConfig, ModuleSpec, Projection } from './types.ts'

const ident = (i: number) => i

/** A plain Linear holding one projection. */
export function plain(path: string, proj: Projection, rows: number, cols: number, bias = false): ModuleSpec {
  return { path, parts: [{ proj, rowOf: ident }], rows, cols, bias }
}

/** A Linear whose output rows are several projections one after another (Phi-3's qkv_proj). */
export function concat(path: string, parts: [Projection, number][], cols: number, bias = false): ModuleSpec {
  let at = 0
  const out: ModuleSpec['parts'] = []
  for (const [proj, n] of parts) {
    const start = at
    out.push({ proj, rowOf: (i) => start + i })
    at += n
  }
  return { path, parts: out, rows: at, cols, bias }
}

/** The Llama layer: self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj, two RMSNorms. */
export function llamaLayer(cfg: ModelConfig, l: number): LayerWeights {
  const p = `model.layers.${l}`
  const H = cfg.hiddenSize
  const q = cfg.numHeads * cfg.headDim
  const kv = cfg.numKvHeads * cfg.headDim
  const I = cfg.intermediateSize
  const b = cfg.attentionBias
  return {
    inputNorm: `${p}.input_layernorm.weight`,
    mlpNorm: `${p}.post_attention_layernorm.weight`,
    modules: [
      plain(`${p}.self_attn.q_proj`, 'q_proj', q, H, b),
      plain(`${p}.self_attn.k_proj`, 'k_proj', kv, H, b),
      plain(`${p}.self_attn.v_proj`, 'v_proj', kv, H, b),
      plain(`${p}.self_attn.o_proj`, 'o_proj', H, q),
      plain(`${p}.mlp.gate_proj`, 'gate_proj', I, H),
      plain(`${p}.mlp.up_proj`, 'up_proj', I, H),
      plain(`${p}.mlp.down_proj`, 'down_proj', H, I)
    ]
  }
}

export const LLAMA_NAMES = {
  embedName: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight'
}
