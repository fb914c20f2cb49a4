// Shared by the attribution tests: a deterministic word tokenizer (the narrow TextEncoder
// interface; ids from a hash of each word, so two instances agree like two copies of one
// tokenizer.json do) and a seeded text generator.
import type { TextEncoder } from '../../src/attribution/types.ts'
import { seededRng } from '../../src/common/random.ts'

export function wordTokenizer(vocabBits = 15): TextEncoder {
  const mask = (1 << vocabBits) - 1
  return {
    encode(text: string): number[] {
      const out: number[] = []
      for (const w of text.match(/\S+/g) ?? []) {
        let h = 0x811c9dc5
        for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w.charCodeAt(i), 0x01000193) >>> 0
        out.push(h & mask)
      }
      return out
    }
  }
}

export const rng = seededRng

/** `count` words like "w123", drawn from `vocab` distinct words. */
export function words(r: () => number, count: number, vocab = 5000): string[] {
  return Array.from({ length: count }, () => `w${Math.floor(r() * vocab)}`)
}

export const ADDR = {
  alice: '0x000000000000000000000000000000000000a11c',
  bob: '0x0000000000000000000000000000000000000b0b',
  carol: '0x00000000000000000000000000000000000ca201'
} as const
