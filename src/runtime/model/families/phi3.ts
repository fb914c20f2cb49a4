// Phi-3 (and Phi-4-mini): the Llama computation with fused checkpoint modules: self_attn.qkv_proj
// ([q | k | v] rows) and mlp.gate_up_proj ([gate | up] rows). A LoRA on a fused module is one A
// shared by its parts and a B whose rows split the same way, so it becomes one LoRA per part in
// the slot pools: exact, since every part reads the same input. LongRoPE (Phi-3-*-128k) is
// computed (model/rope.ts), as is a partial rotary factor (Phi-4-mini's 0.75).
import { layerWindows, parseDecoder, windowOf } from './common.ts'
import { bool, isObject, LIMITS, posInt } from './fields.ts'
import { concat, LLAMA_NAMES, plain } from './layout.ts'
import { type Family, ModelConfigError } from './types.ts'

export const phi3: Family = {
  name: 'phi3',
  architectures: ['Phi3ForCausalLM'],
  modelTypes: ['phi3'],
  ...LLAMA_NAMES,
  layer(cfg, l) {
    const p = `model.layers.${l}`
    const H = cfg.hiddenSize
    const q = cfg.numHeads * cfg.headDim
    const kv = cfg.numKvHeads * cfg.headDim
    const I = cfg.intermediateSize
    return {
      inputNorm: `${p}.input_layernorm.weight`,
      mlpNorm: `${p}.post_attention_layernorm.weight`,
      modules: [
        concat(
          `${p}.self_attn.qkv_proj`,
          [
            ['q_proj', q],
            ['k_proj', kv],
            ['v_proj', kv]
          ],
          H
        ),
        plain(`${p}.self_attn.o_proj`, 'o_proj', H, q),
        concat(
          `${p}.mlp.gate_up_proj`,
          [
            ['gate_proj', I],
            ['up_proj', I]
          ],
          H
        ),
        plain(`${p}.mlp.down_proj`, 'down_proj', H, I)
      ]
    }
  },
  parse(raw, gen) {
    const c = parseDecoder(raw, gen, { family: 'phi3', architectures: this.architectures })
    // Phi-4-mini rotates the first partial_rotary_factor of each head (rotate-half within it)
    const rp = isObject(raw.rope_parameters) ? raw.rope_parameters : raw
    const partial = rp.partial_rotary_factor ?? raw.partial_rotary_factor ?? 1
    const R = typeof partial === 'number' ? Math.trunc(c.headDim * partial) : Number.NaN
    if (!((partial as number) > 0 && (partial as number) <= 1) || R < 2 || R % 2 !== 0) {
      throw new ModelConfigError(
        `config.json: "partial_rotary_factor" ${JSON.stringify(partial)} must be in (0, 1] and give an even number of rotary dims of head_dim ${c.headDim}`,
        { field: 'partial_rotary_factor', value: partial }
      )
    }
    c.rotaryDim = R
    const rs = c.ropeScaling
    if (rs?.type === 'longrope') {
      for (const [key, f] of [
        ['short_factor', rs.shortFactor],
        ['long_factor', rs.longFactor]
      ] as const) {
        if (f.length !== R / 2) {
          throw new ModelConfigError(
            `config.json: longrope "${key}" has ${f.length} entries; ${R} rotary dims need ${R / 2}`,
            { field: key, value: f.length }
          )
        }
      }
    }
    if (bool(raw, 'attention_bias', false)) {
      throw new ModelConfigError(
        'config.json: "attention_bias": true is not supported for Phi-3; allowed: false',
        {
          field: 'attention_bias'
        }
      )
    }
    let window: number | null = null
    if (raw.sliding_window !== undefined && raw.sliding_window !== null) {
      window = posInt(raw, 'sliding_window', LIMITS.maxPositionEmbeddings)
      if (window >= c.maxPositionEmbeddings) window = null
    }
    c.layerWindows = layerWindows({}, c.numLayers, window, () => true)
    c.slidingWindow = windowOf(c.layerWindows)
    return c
  }
}
