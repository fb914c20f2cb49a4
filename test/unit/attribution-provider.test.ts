import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Attributor, proofHash } from '../../src/attribution/attribute.ts'
import { weightsFromSpans } from '../../src/attribution/credit.ts'
import { DatanetStore } from '../../src/attribution/datanet-store.ts'
import { SpanIndexCache } from '../../src/attribution/index-file.ts'
import { AttributionProofStore, spanAttributionProvider } from '../../src/attribution/provider.ts'
import type { SpanProof } from '../../src/attribution/types.ts'
import type { Hex } from '../../src/crypto/hash.ts'
import { ADDR, rng, words, wordTokenizer } from './attribution-fixtures.ts'

const tok = wordTokenizer()

test('the provider attributes a job, keeps its full proof by job id, and falls back without provenance', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'attr-provider-'))
  const db = new Level<string, Uint8Array>(join(dir, 'db'), { valueEncoding: 'view' })
  try {
    const store = new DatanetStore({ db, dataDir: dir })
    const dn = (await store.createDatanet({ name: 'p', owner: ADDR.alice })).id
    const text = words(rng(9), 500).join(' ')
    await store.contribute(dn, { text, contributor: ADDR.carol })
    await store.publish(dn)
    const attributor = new Attributor({ store, indexes: new SpanIndexCache({ store, tokenizer: tok }) })
    const proofs = new AttributionProofStore(db)
    const adapter = 'bafkadapter'
    const fallbackSummary = {
      method: 'provenance' as const,
      datanets: [],
      contributors: [],
      proofHash: `0x${'0'.repeat(64)}` as Hex
    }
    const provide = spanAttributionProvider({
      attributor,
      provenanceOf: (a) => (a === adapter ? { datanets: [{ id: dn, version: 1, bp: 10_000 }] } : undefined),
      fallback: () => fallbackSummary,
      proofs
    })
    const jobId = `0x${'ab'.repeat(16)}` as Hex
    const outputIds = tok.encode(text).slice(100, 130)
    const summary = await provide({ jobId, modelHash: `0x${'1'.repeat(64)}`, adapter, outputIds })
    assert.equal(summary.contributors, [{ address: ADDR.carol, bp: 10_000 }])
    const kept = await proofs.get(jobId)
    assert.ok(kept)
    assert.is(proofHash(kept!), summary.proofHash)
    assert.is(await proofs.get(`0x${'cd'.repeat(16)}`), undefined)
    const none = await provide({ jobId, modelHash: `0x${'1'.repeat(64)}`, adapter: null, outputIds })
    assert.is(none, fallbackSummary)
    // One attributor per served model (by modelHash): an unknown model falls back too.
    const perModel = spanAttributionProvider({
      attributor: (job) => (job.modelHash === `0x${'1'.repeat(64)}` ? attributor : undefined),
      provenanceOf: () => ({ datanets: [{ id: dn, version: 1, bp: 10_000 }] }),
      fallback: () => fallbackSummary
    })
    assert.is(
      (await perModel({ jobId, modelHash: `0x${'1'.repeat(64)}`, adapter, outputIds })).method,
      'spans'
    )
    assert.is(
      await perModel({ jobId, modelHash: `0x${'2'.repeat(64)}`, adapter, outputIds }),
      fallbackSummary
    )
  } finally {
    await db.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a receipt lists at most 256 contributors, still summing to 10,000 bp', () => {
  const spans: SpanProof[] = Array.from({ length: 300 }, (_, i) => ({
    datanet: `0x${'a'.repeat(64)}`,
    version: 1,
    outputOffset: i,
    tokens: Array.from({ length: 8 + (i % 5) }, () => 1),
    contribution: { cid: 'x', contributor: `0x${(i + 1).toString(16).padStart(40, '0')}`, chunks: [] },
    chunkIndex: 0,
    text: [],
    offset: 0,
    merkle: []
  }))
  const w = weightsFromSpans(spans)
  assert.is(w.contributors.length, 256)
  assert.is(
    w.contributors.reduce((a, c) => a + c.bp, 0),
    10_000
  )
  // The longest spans (12 tokens: i % 5 === 4) are all kept.
  const kept = new Set(w.contributors.map((c) => c.address))
  for (let i = 4; i < 300; i += 5) assert.ok(kept.has(`0x${(i + 1).toString(16).padStart(40, '0')}`))
  assert.equal(w.datanets, [{ id: `0x${'a'.repeat(64)}`, bp: 10_000 }])
})

test.run()
