// ALiBi (BLOOM, Falcon-RW) in the decoder graph (decoder.ts) as one extra q/k dimension in the
// head padding: q carries slope_h / scale and k its own position (new_pos, the slot it takes in
// the cache, stored there with it), so scale · q·k gains slope_h · key position — transformers'
// alibi term (softmax ignores the per-query constant the relative form would subtract). Falcon-RW
// adds the bias before the scale and rounds slope and bias to bfloat16: there q carries 1 and k
// the rounded bias bf16(bf16(slope_h) · position) itself (one K head per query head, which
// Falcon-RW has).
import { alibiSlopes, toBf16 } from '../model/families/bloom.ts'
import { alibiSlot, type ModelLayout } from '../model/layout.ts'
import { NEW_POS } from './names.ts'
import { DT, type GraphBuilder } from './proto.ts'

/** `q`: the constant added to every query; `kAdd()`: the per-position term added to each key. */
export function alibiInputs(g: GraphBuilder, layout: ModelLayout): { q: string; kAdd: () => string } {
  const cfg = layout.config
  const Dp = layout.paddedHeadDim
  const qOut = cfg.numHeads * Dp
  const kvOut = cfg.numKvHeads * Dp
  const slot = alibiSlot(cfg.headDim)
  const slopes = alibiSlopes(cfg.numHeads)
  const falcon = cfg.alibiStyle === 'falcon'
  const cq = new Float32Array(qOut)
  for (let hh = 0; hh < cfg.numHeads; hh++) cq[hh * Dp + slot] = falcon ? 1 : slopes[hh]! / cfg.attentionScale
  const ek = new Float32Array(kvOut)
  for (let hh = 0; hh < cfg.numKvHeads; hh++) ek[hh * Dp + slot] = falcon ? toBf16(slopes[hh]!) : 1
  const pos = g.op('Cast', [g.op('Reshape', [NEW_POS, g.int64('alibi.pos_shape', [0, -1, 1])])], {
    to: DT.FLOAT
  })
  const kw = g.weight('alibi.k', ek, [kvOut])
  return {
    q: g.weight('alibi.q', cq, [qOut]),
    kAdd: (): string => {
      const bias = g.op('Mul', [pos, kw])
      if (!falcon) return bias
      // float → bfloat16 rounds to nearest even, as torch's .bfloat16() does
      return g.op('Cast', [g.op('Cast', [bias], { to: DT.BFLOAT16 })], { to: DT.FLOAT })
    }
  }
}
