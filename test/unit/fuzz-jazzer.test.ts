// The coverage-guided fuzz engine (scripts/fuzz/jazzer-engine.ts) really fuzzes here: the glibc
// 2.36 compat step patches what it must and nothing more, a real target gains coverage and corpus,
// and planted bugs (an untyped throw, a hang over the 1 s limit) are found and their input kept.
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  addonPath,
  ensureJazzerCompat,
  MISSING_VERSIONS,
  versionNeeds,
  weakenVersionNeeds
} from '../../scripts/fuzz/jazzer-compat.ts'
import { fuzzWithJazzer } from '../../scripts/fuzz/jazzer-engine.ts'

const PLANTED = join(import.meta.dirname, '..', 'fuzz', 'planted.ts')

test('compat: the addon loads (with the shim where glibc < 2.38) and patching again changes nothing', () => {
  const r = ensureJazzerCompat()
  const elf = new Uint8Array(readFileSync(addonPath()))
  const needs = versionNeeds(elf)
  assert.ok(
    needs.some((n) => n.name.startsWith('GLIBC_')),
    'the addon lists its glibc version needs'
  )
  if (r.preload) {
    assert.ok(existsSync(r.preload))
    for (const v of MISSING_VERSIONS)
      assert.is(needs.find((n) => n.name === v)?.flags, 2, `${v} is marked VER_FLG_WEAK`)
    // only the two missing versions are weakened; every other need is as Jazzer shipped it
    assert.ok(needs.filter((n) => !MISSING_VERSIONS.includes(n.name)).every((n) => n.flags === 0))
  }
  if (r.preload) assert.equal(weakenVersionNeeds(elf, MISSING_VERSIONS), [], 'already patched: idempotent')
})

test('compat: weakening sets the flag on exactly the named needs, once', () => {
  const elf = new Uint8Array(readFileSync(addonPath()))
  const dv = new DataView(elf.buffer)
  for (const n of versionNeeds(elf)) dv.setUint16(n.at + 4, 0, true) // as shipped
  assert.equal(weakenVersionNeeds(elf, ['GLIBC_2.38']), ['GLIBC_2.38'])
  assert.equal(weakenVersionNeeds(elf, ['GLIBC_2.38']), [])
  const after = versionNeeds(elf)
  assert.is(after.find((n) => n.name === 'GLIBC_2.38')?.flags, 2)
  assert.ok(after.filter((n) => n.name !== 'GLIBC_2.38').every((n) => n.flags === 0))
})

test('jazzer: a real decoder gains coverage and corpus with no finding', async () => {
  const r = await fuzzWithJazzer('gguf', { runs: 3000, rssLimitMb: 2048, seed: 7 })
  assert.not.ok(r.failure, r.failure)
  assert.is(r.runs, 3000)
  assert.ok(r.cov > 10, `cov ${r.cov}`)
  assert.ok(r.ft >= r.cov)
  assert.is(r.corpus.seeds, 1)
  assert.ok(r.corpus.final > r.corpus.initial, `corpus ${r.corpus.initial} -> ${r.corpus.final}`)
})

for (const kind of ['crash', 'hang'] as const)
  test(`jazzer: a planted ${kind} is found and its input kept`, async () => {
    process.env.PLANTED = kind
    try {
      const r = await fuzzWithJazzer('gguf', { runs: 500_000, rssLimitMb: 2048, seed: 7, entry: PLANTED })
      assert.ok(r.failure, 'a finding')
      assert.ok(r.runs < 500_000)
      assert.match(r.failure, kind === 'crash' ? /TypeError: planted/ : /timeout after/)
      assert.ok(r.artifact && existsSync(r.artifact), 'the failing input is kept')
      const input = readFileSync(r.artifact)
      assert.equal([input[0], input[1]], [0x7b, 0x7d])
      rmSync(join(r.artifact, '..'), { recursive: true, force: true })
    } finally {
      delete process.env.PLANTED
    }
  })

test.run()
