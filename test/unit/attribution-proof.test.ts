import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Attributor, attributionHash, proofHash } from '../../src/attribution/attribute.ts'
import { type ContributionRecord, DatanetStore } from '../../src/attribution/datanet-store.ts'
import { SpanIndexCache } from '../../src/attribution/index-file.ts'
import { modelTextEncoder } from '../../src/attribution/model-tokenizer.ts'
import type { AttributionProof, VersionRoot } from '../../src/attribution/types.ts'
import { type VerifyCheck, verifyAttribution } from '../../src/attribution/verify.ts'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import { type Hex, sha256Hex } from '../../src/crypto/hash.ts'
import { makeTokenizerConfig, makeTokenizerJson } from '../../src/runtime/fixtures/make-model.ts'
import { ADDR, rng, words, wordTokenizer } from './attribution-fixtures.ts'

const tok = wordTokenizer()
let dir: string
let db: Level<string, unknown>
let store: DatanetStore
let attributor: Attributor
let dnA: Hex
let dnB: Hex
let roots: VersionRoot[]
const docs: Record<string, { text: string; rec: ContributionRecord }> = {}

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'attr-'))
  db = new Level(join(dir, 'db'))
  store = new DatanetStore({ db, dataDir: dir })
  const r = rng(42)
  dnA = (await store.createDatanet({ name: 'A', owner: ADDR.alice })).id
  dnB = (await store.createDatanet({ name: 'B', owner: ADDR.bob })).id
  const add = async (key: string, dn: Hex, contributor: string, text: string) => {
    docs[key] = { text, rec: await store.contribute(dn, { text, contributor }) }
  }
  await add('alice', dnA, ADDR.alice, words(r, 3000).join(' ')) // ~17 KB, several chunks
  await add('bob', dnA, ADDR.bob, words(r, 400).join(' '))
  const shared = words(r, 300).join(' ')
  await add('sharedAlice', dnA, ADDR.alice, shared + ' end')
  await add('sharedCarol', dnA, ADDR.carol, 'start ' + shared)
  await add('carol', dnB, ADDR.carol, words(r, 600).join(' '))
  const vA = await store.publish(dnA)
  const vB = await store.publish(dnB)
  roots = [
    { datanetId: dnA, version: 1, root: vA.root },
    { datanetId: dnB, version: 1, root: vB.root }
  ]
  attributor = new Attributor({ store, indexes: new SpanIndexCache({ store, tokenizer: tok }) })
})
test.after(async () => {
  await db.close()
  rmSync(dir, { recursive: true, force: true })
})

const provenance = {
  datanets: [
    { id: '' as Hex, version: 1, bp: 7000 },
    { id: '' as Hex, version: 1, bp: 3000 }
  ]
}
const prov = () => ({
  datanets: [
    { ...provenance.datanets[0]!, id: dnA },
    { ...provenance.datanets[1]!, id: dnB }
  ]
})
const quote = (key: string, from: number, n: number) => tok.encode(docs[key]!.text).slice(from, from + n)
const noise = (n: number, seed: number) =>
  tok.encode(
    words(rng(seed), n, 1000)
      .map((w) => `z${w}`)
      .join(' ')
  )
const clone = <T>(x: T): T => structuredClone(x)

function failsWith(
  proof: unknown,
  check: VerifyCheck,
  opts: Parameters<typeof verifyAttribution>[2] = { tokenizer: tok }
) {
  const r = verifyAttribution(proof, roots, opts)
  assert.is(r.ok, false, `expected the ${check} check to fail`)
  assert.ok(
    r.failures.some((f) => f.check === check),
    `expected a ${check} failure, got ${JSON.stringify(r.failures)}`
  )
  return r
}

test('an output quoting a contribution credits its contributor with all 10,000 bp, and the proof verifies', async () => {
  const out = [...noise(5, 1), ...quote('bob', 100, 40), ...noise(5, 2)]
  const { summary, proof } = await attributor.attribute(out, prov())
  assert.is(summary.method, 'spans')
  assert.equal(summary.contributors, [{ address: ADDR.bob, bp: 10_000 }])
  assert.equal(summary.datanets, [{ id: dnA, bp: 10_000 }])
  assert.is(proof.spans.length, 1)
  assert.is(proof.spans[0]!.outputOffset, 5)
  assert.is(proof.spans[0]!.tokens.length, 40)
  assert.is(summary.proofHash, sha256Hex(encodeCanonical(proof)))
  assert.is(attributionHash(summary), sha256Hex(encodeCanonical(summary)))
  const r = verifyAttribution(proof, roots, { tokenizer: tok, outputIds: out, summary })
  assert.equal(r.failures, [])
  assert.equal(r.checked, { spans: 1, tokens: true, output: true })
  // The proof survives a JSON round trip (it is written to files and sent as is).
  assert.ok(verifyAttribution(JSON.parse(JSON.stringify(proof)), roots, { tokenizer: tok }).ok)
})

test('weights are matched tokens per contributor and datanet, summing to exactly 10,000', async () => {
  const out = [
    ...quote('alice', 10, 30),
    ...noise(4, 3),
    ...quote('carol', 50, 20),
    ...noise(3, 4),
    ...quote('bob', 0, 11)
  ]
  const { summary, proof } = await attributor.attribute(out, prov())
  const bp = Object.fromEntries(summary.contributors.map((c) => [c.address, c.bp]))
  // 30 : 20 : 11 tokens → 4918.03 : 3278.69 : 1803.28 → the largest remainder gets the last bp.
  assert.equal(bp, { [ADDR.alice]: 4918, [ADDR.carol]: 3279, [ADDR.bob]: 1803 })
  const dbp = Object.fromEntries(summary.datanets.map((d) => [d.id, d.bp]))
  assert.equal(dbp, { [dnA]: 6721, [dnB]: 3279 })
  assert.is(
    summary.contributors.reduce((a, c) => a + c.bp, 0),
    10_000
  )
  assert.ok(verifyAttribution(proof, roots, { tokenizer: tok, outputIds: out }).ok)
})

test('a span found in two contributors splits evenly and each gets a proof', async () => {
  const shared = docs.sharedAlice!.text.split(' ').slice(20, 60).join(' ')
  const out = tok.encode(shared)
  const { summary, proof } = await attributor.attribute(out, prov())
  assert.equal(summary.contributors, [
    { address: ADDR.alice, bp: 5000 },
    { address: ADDR.carol, bp: 5000 }
  ])
  assert.is(proof.spans.length, 2)
  assert.ok(verifyAttribution(proof, roots, { tokenizer: tok, outputIds: out }).ok)
})

test('a span crossing a chunk boundary carries both chunks and verifies', async () => {
  const rec = docs.alice!.rec
  const firstChunkTokens = tok.encode(await store.readChunkText(rec.chunks[0]!)).length
  const out = quote('alice', firstChunkTokens - 15, 30)
  const { proof } = await attributor.attribute(out, prov())
  assert.is(proof.spans.length, 1)
  const s = proof.spans[0]!
  assert.is(s.chunkIndex, 0)
  assert.is(s.text.length, 2)
  assert.is(s.offset, firstChunkTokens - 15)
  assert.ok(verifyAttribution(proof, roots, { tokenizer: tok, outputIds: out }).ok)
})

test('no match: the adapter provenance weights apply to whole datanets', async () => {
  const out = noise(64, 9)
  const { summary, proof } = await attributor.attribute(out, prov())
  assert.is(summary.method, 'provenance')
  assert.equal(
    summary.datanets,
    [
      { id: dnA, bp: 7000 },
      { id: dnB, bp: 3000 }
    ].sort((a, b) => (a.id < b.id ? -1 : 1))
  )
  assert.is(proof.spans.length, 0)
  // B has one contributor (carol): she gets all of B's 3000 plus her token share of A.
  const c = Object.fromEntries(summary.contributors.map((x) => [x.address, x.bp]))
  assert.is(
    summary.contributors.reduce((a, x) => a + x.bp, 0),
    10_000
  )
  assert.ok(c[ADDR.carol]! > 3000 && c[ADDR.alice]! > c[ADDR.bob]!)
  assert.ok(verifyAttribution(proof, roots, { outputIds: out, summary }).ok)
})

test('attribution is deterministic, also with the index reloaded from disk', async () => {
  const out = [...quote('alice', 500, 25), ...quote('bob', 5, 12)]
  const a = await attributor.attribute(out, prov())
  const fresh = new Attributor({ store, indexes: new SpanIndexCache({ store, tokenizer: tok }) })
  const b = await fresh.attribute(out, prov())
  assert.is(a.summary.proofHash, b.summary.proofHash)
  assert.is(proofHash(b.proof), a.summary.proofHash)
})

test('a proof with a changed token, offset, chunk, manifest, Merkle step or weight fails naming it', async () => {
  const out = [...quote('alice', 2000, 20), ...quote('carol', 10, 10)]
  const { proof, summary } = await attributor.attribute(out, prov())
  assert.ok(verifyAttribution(proof, roots, { tokenizer: tok }).ok)

  let p = clone(proof)
  p.spans[0]!.tokens[3] = (p.spans[0]!.tokens[3]! + 1) % 32768
  const r = failsWith(p, 'tokens')
  assert.match(r.failures.find((f) => f.check === 'tokens')!.message, /span token 3/)
  assert.is(r.failures.find((f) => f.check === 'tokens')!.span, 0)
  failsWith(p, 'output', { outputIds: out })

  p = clone(proof)
  p.spans[0]!.offset += 1
  failsWith(p, 'offset')
  p.spans[0]!.offset = 1_000_000
  failsWith(p, 'offset')

  p = clone(proof)
  p.spans[1]!.text[0] = p.spans[1]!.text[0]!.replace(/w/, 'W')
  assert.is(failsWith(p, 'chunk').failures[0]!.span, 1)

  p = clone(proof)
  p.spans[0]!.contribution.chunks[p.spans[0]!.contribution.chunks.length - 1]!.size += 1
  failsWith(p, 'cid')

  // A span whose version holds one contribution has an empty path (its leaf is the root), so
  // tamper with a span that has a step. Which span comes first depends on the datanet ids, which
  // include the creation time.
  p = clone(proof)
  const withPath = p.spans.find((s) => s.merkle.length > 0)
  assert.ok(withPath, 'fixture must give at least one span a Merkle step')
  withPath!.merkle[withPath!.merkle.length - 1] = `0x${'ab'.repeat(32)}`
  failsWith(p, 'merkle')

  p = clone(proof)
  p.spans[0]!.contribution.contributor = ADDR.bob
  failsWith(p, 'merkle')
  failsWith(p, 'weights')

  p = clone(proof)
  p.contributors[0]!.bp -= 1
  p.contributors[1]!.bp += 1
  failsWith(p, 'weights')

  failsWith(proof, 'summary', { summary: { ...summary, contributors: [{ address: ADDR.bob, bp: 10_000 }] } })
  failsWith({ ...proof, v: 2 }, 'schema')
  failsWith({ ...proof, extra: 1 } as AttributionProof, 'schema')
})

test('a proof checked against the wrong root fails', async () => {
  const out = quote('bob', 200, 20)
  const { proof } = await attributor.attribute(out, prov())
  const wrong = roots.map((r) => (r.datanetId === dnA ? { ...r, root: roots[1]!.root } : r))
  const res = verifyAttribution(proof, wrong, { tokenizer: tok })
  assert.is(res.ok, false)
  assert.ok(res.failures.some((f) => f.check === 'root'))
  assert.ok(res.failures.some((f) => f.check === 'merkle'))
  assert.ok(
    verifyAttribution(proof, [], {}).failures.some(
      (f) => f.check === 'root' && /no trusted root/.test(f.message)
    )
  )
})

test('with the real model tokenizer: a generated output quoting a contribution credits its contributor', async () => {
  const modelDir = join(dir, 'model')
  const { mkdirSync } = await import('node:fs')
  mkdirSync(modelDir)
  writeFileSync(join(modelDir, 'tokenizer.json'), JSON.stringify(makeTokenizerJson(512)))
  writeFileSync(join(modelDir, 'tokenizer_config.json'), JSON.stringify(makeTokenizerConfig()))
  const { encoder, tokenizerId } = await modelTextEncoder(modelDir)
  assert.match(tokenizerId, /^[0-9a-f]{16}$/)
  const dn = (await store.createDatanet({ name: 'real', owner: ADDR.alice })).id
  const paragraphs = [
    'The river carried the small boat past the mill, where the miller counted his sacks of grain before the winter came.',
    'A lighthouse keeper wrote every evening about the ships, the weather and the gulls that rested on the rail of the gallery.',
    'In the market the baker sold bread with seeds, and the children waited for the warm rolls that came out at noon.'
  ]
  await store.contribute(dn, { text: paragraphs[0]!, contributor: ADDR.alice })
  await store.contribute(dn, { text: paragraphs[1]!, contributor: ADDR.bob })
  await store.contribute(dn, { text: paragraphs[2]!, contributor: ADDR.carol })
  const v = await store.publish(dn)
  const real = new Attributor(
    { store, indexes: new SpanIndexCache({ store, tokenizer: encoder }, { tokenizerId }) },
    { minSpanTokens: 8 }
  )
  // "Generated" output: a prompt-like preamble, then the model quoting bob's paragraph.
  const out = encoder.encode(
    'Answer: the lighthouse keeper wrote every evening about the ships, the weather and the gulls.'
  )
  const { summary, proof } = await real.attribute(out, { datanets: [{ id: dn, version: 1, bp: 10_000 }] })
  assert.is(summary.method, 'spans')
  assert.equal(summary.contributors, [{ address: ADDR.bob, bp: 10_000 }])
  const res = verifyAttribution(proof, [{ datanetId: dn, version: 1, root: v.root }], {
    tokenizer: encoder,
    outputIds: out,
    summary
  })
  assert.equal(res.failures, [])
})

test.run()
