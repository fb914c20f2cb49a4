// Incremental detokenization with stop strings. Token text is the growth of decode(all ids), so
// multi-byte characters split over tokens come out whole; a trailing U+FFFD (an incomplete UTF-8
// sequence) and, when stop strings are set, the last (longest stop − 1) characters are held back
// so no streamed token ever shows part of a stop string.
export class TextTracker {
  private readonly decode: (ids: number[]) => string
  private readonly stops: string[]
  private readonly holdBack: number
  private emitted = 0
  text = ''

  constructor(decode: (ids: number[]) => string, stopStrings: string[] = []) {
    this.decode = decode
    this.stops = stopStrings.filter((s) => s.length > 0)
    this.holdBack = this.stops.reduce((m, s) => Math.max(m, s.length - 1), 0)
  }

  /** Re-decodes after a new token; returns the new text that is safe to stream and whether a
   * stop string was hit (then `text` is cut just before it). */
  update(ids: number[]): { delta: string; stopped: boolean } {
    const full = this.decode(ids)
    for (const s of this.stops) {
      const from = Math.max(0, this.emitted - s.length)
      const at = full.indexOf(s, from)
      if (at >= 0) {
        this.text = full.slice(0, at)
        const delta = this.text.slice(this.emitted)
        this.emitted = this.text.length
        return { delta, stopped: true }
      }
    }
    this.text = full
    let safe = full.length - this.holdBack
    if (full.endsWith('\uFFFD')) safe = Math.min(safe, full.length - 1)
    if (safe <= this.emitted) return { delta: '', stopped: false }
    const delta = full.slice(this.emitted, safe)
    this.emitted = safe
    return { delta, stopped: false }
  }
}
