// How many positions per row the KV-cache buffers are laid out with right now. The buffers are
// allocated for maxSeqLen, but a pass hands GroupQueryAttention past tensors of
// [rows, kvHeads, capacity, Dp], and its present output (which the graph picks the new keys from)
// is allocated and filled at that capacity on every run. At a serving-sized maxSeqLen that is
// most of a decode step's non-weight traffic: measured on smollm2-135m, batch 8, ~48 tokens per
// row, GroupQueryAttention took ~1.5 ms per layer at capacity 1024 (≈ 45 ms of an ~80–115 ms
// step) and decode steps were ~25–35% faster at capacity 128. So the layout follows the longest
// live sequence: it doubles when a step needs more room and halves back (with hysteresis) when
// long sequences end, moving each row's cached positions in place (rare: log2 steps per growth).
export const MIN_KV_CAPACITY = 64

const pow2 = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)))

/** The capacity to use for a step whose longest row holds `need` tokens afterwards. */
export function nextKvCapacity(need: number, current: number, max: number): number {
  const fit = Math.max(MIN_KV_CAPACITY, pow2(need))
  if (need > current || current < 1) return Math.min(max, fit)
  // shrink only when far below, so a sequence crossing a boundary does not move the cache back
  // and forth every step
  if (fit * 4 <= current) return Math.min(max, fit * 2)
  return current
}

/**
 * Re-lays buffers of `blocks` rows·heads from `from` to `to` positions per block in place; each
 * block keeps its first min(from, to) positions (all a live row holds).
 */
export function relayoutKv(
  buffers: readonly Float32Array[],
  blocks: number,
  from: number,
  to: number,
  D: number
): void {
  if (from === to) return
  const keep = Math.min(from, to) * D
  for (const buf of buffers) {
    if (to > from) {
      // growing: each block moves right, so go from the last block back (no source overwritten)
      for (let b = blocks - 1; b > 0; b--) buf.copyWithin(b * to * D, b * from * D, b * from * D + keep)
    } else {
      for (let b = 1; b < blocks; b++) buf.copyWithin(b * to * D, b * from * D, b * from * D + keep)
    }
  }
}
