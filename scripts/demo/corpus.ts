// The demo model's corpus: the King James Version of the Bible (1611; its copyright has expired,
// as Debian's bible-kjv-text copyright file states), taken from Debian's packages with their
// ordinary client: `apt-get download bible-kjv bible-kjv-text`, unpacked with `dpkg-deb -x`, and
// printed verse by verse with the package's own `bible` program. Nothing is installed system-wide.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { sha256Hex } from '../../src/crypto/hash.ts'

export interface Verse {
  /** the `bible` program's book abbreviation, e.g. Ge, Ps, 1Co */
  book: string
  chapter: number
  verse: number
  text: string
}

/** `bible -f` prints `Ge1:1 In the beginning…`, one verse per line. */
const LINE = /^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$/

export function parseVerses(text: string): Verse[] {
  const out: Verse[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const m = LINE.exec(line)
    if (!m) throw new Error(`unexpected line in the bible output: ${JSON.stringify(line.slice(0, 80))}`)
    out.push({ book: m[1]!, chapter: Number(m[2]), verse: Number(m[3]), text: m[4]!.trim() })
  }
  return out
}

/** Fetches (once, into `cacheDir`) and parses the KJV; returns the verses and the text's sha256. */
export function loadKjv(cacheDir: string): { verses: Verse[]; sha256: string } {
  const textFile = join(cacheDir, 'kjv.txt')
  if (!existsSync(textFile)) {
    mkdirSync(cacheDir, { recursive: true })
    execFileSync('apt-get', ['download', 'bible-kjv', 'bible-kjv-text'], { cwd: cacheDir, stdio: 'inherit' })
    const root = join(cacheDir, 'root')
    for (const deb of readdirSync(cacheDir).filter((f) => f.endsWith('.deb')))
      execFileSync('dpkg-deb', ['-x', join(cacheDir, deb), root])
    const text = execFileSync(
      join(root, 'usr/bin/bible'),
      ['-p', join(root, 'usr/lib'), '-f', 'gen1:1-rev22:21'],
      {
        maxBuffer: 64 * 1024 * 1024
      }
    ).toString('utf8')
    writeFileSync(textFile, text)
  }
  const text = readFileSync(textFile, 'utf8')
  return { verses: parseVerses(text), sha256: sha256Hex(new TextEncoder().encode(text)) }
}

/** Lower-case words of a text (letters and inner apostrophes), as the demo test splits answers. */
export function corpusWords(text: string): string[] {
  return (text.toLowerCase().match(/[a-z]+(?:'[a-z]+)*/g) ?? []) as string[]
}
