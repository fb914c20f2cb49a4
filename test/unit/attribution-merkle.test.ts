import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { chunkDocument, documentsFromFile, splitChunks } from '../../src/attribution/chunking.ts'
import { buildMerkleTree, contributionLeaf, processMerkleProof } from '../../src/attribution/merkle.ts'
import { validateProvenance } from '../../src/attribution/provenance.ts'
import { buildSuffixArray } from '../../src/attribution/suffix-array.ts'
import { toBasisPoints } from '../../src/attribution/weights.ts'
import { cidForBytes } from '../../src/crypto/cid.ts'
import { fromHex, keccak256, toHex } from '../../src/crypto/hash.ts'
import { ADDR, rng } from './attribution-fixtures.ts'

test('suffix array equals a naive sort on random strings with many repeats', () => {
  const r = rng(7)
  for (let trial = 0; trial < 500; trial++) {
    const n = 1 + Math.floor(r() * 80)
    const k = 2 + Math.floor(r() * 4)
    const s = new Int32Array(n + 1)
    for (let i = 0; i < n; i++) s[i] = 1 + Math.floor(r() * (k - 1))
    const naive = [...Array(n + 1).keys()].sort((a, b) => {
      for (let d = 0; ; d++) if (s[a + d] !== s[b + d]) return s[a + d]! - s[b + d]!
    })
    assert.equal(Array.from(buildSuffixArray(s, k)), naive, `string ${Array.from(s)}`)
  }
})

test('leaf encoding is keccak256(keccak256(abi.encode(bytes32 digest, address)))', () => {
  const cid = cidForBytes(new Uint8Array([1, 2, 3]))
  const digest = /* sha256 digest in the CID */ (() => {
    const enc = new Uint8Array(64)
    enc.set(fromHex('0x039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81'), 0)
    enc.set(fromHex(ADDR.alice), 44)
    return enc
  })()
  assert.is(contributionLeaf(cid, ADDR.alice), toHex(keccak256(keccak256(digest))))
  assert.is.not(contributionLeaf(cid, ADDR.alice), contributionLeaf(cid, ADDR.bob))
})

test('Merkle proofs of every leaf reach the root, for odd and even sizes, and fail when altered', () => {
  for (const size of [1, 2, 3, 5, 8, 13]) {
    const leaves = Array.from({ length: size }, (_, i) => toHex(keccak256(new Uint8Array([i]))))
    const tree = buildMerkleTree(leaves)
    // Sorted leaves: the same set in another order gives the same root.
    assert.is(buildMerkleTree([...leaves].reverse()).root, tree.root)
    for (const l of leaves) {
      const path = tree.proof(l)
      assert.is(processMerkleProof(l, path), tree.root)
      if (path.length > 0) {
        const bad = [...path]
        bad[0] = toHex(keccak256(fromHex(bad[0]!)))
        assert.is.not(processMerkleProof(l, bad), tree.root)
      }
    }
  }
  assert.throws(() => buildMerkleTree([]))
})

test('basis points sum to exactly 10,000 with largest remainder and a stable tie-break', () => {
  const three = toBasisPoints([
    { key: 'b', weight: 1n },
    { key: 'a', weight: 1n },
    { key: 'c', weight: 1n }
  ])
  // 3333 each, the one extra bp goes to the smallest key on a tie.
  assert.equal(three, [
    { key: 'a', bp: 3334 },
    { key: 'b', bp: 3333 },
    { key: 'c', bp: 3333 }
  ])
  const r = rng(3)
  for (let t = 0; t < 300; t++) {
    const items = Array.from({ length: 1 + Math.floor(r() * 40) }, (_, i) => ({
      key: `k${i}`,
      weight: BigInt(Math.floor(r() * 1e9))
    }))
    const bp = toBasisPoints(items)
    if (items.some((i) => i.weight > 0n))
      assert.is(
        bp.reduce((a, x) => a + x.bp, 0),
        10_000
      )
  }
  assert.equal(toBasisPoints([{ key: 'x', weight: 0n }]), [])
})

test('provenance needs datanet ids with bp summing to exactly 10,000', () => {
  const id = (c: string) => `0x${c.repeat(64)}`
  const ok = validateProvenance({
    datanets: [
      { id: id('b'), version: 1, bp: 2500 },
      { id: id('a'), version: 3, bp: 7500 }
    ]
  })
  assert.is(ok.datanets[0]!.id, id('a'))
  const bad = (v: unknown, re: RegExp) => {
    try {
      validateProvenance(v)
      assert.unreachable('accepted')
    } catch (err) {
      assert.is((err as Error).name, 'ProvenanceError')
      assert.match((err as Error).message, re)
    }
  }
  bad({ datanets: [{ id: id('a'), version: 1, bp: 9999 }] }, /sum to exactly 10000 bp, got 9999/)
  bad({ datanets: [{ id: '0x12', version: 1, bp: 10_000 }] }, /\.id must be/)
  bad({ datanets: [{ id: id('a'), version: 0, bp: 10_000 }] }, /\.version/)
  bad(
    {
      datanets: [
        { id: id('a'), version: 1, bp: 5000 },
        { id: id('a'), version: 2, bp: 5000 }
      ]
    },
    /twice/
  )
  bad({ datanets: [] }, /1 to 64/)
})

test('chunks cut before whitespace, stay valid UTF-8, and reassemble the document', () => {
  const text = 'héllo wörld ✓ '.repeat(1000)
  const bytes = new Uint8Array(Buffer.from(text))
  const chunks = splitChunks(bytes, 100, 20)
  assert.ok(chunks.length > 100)
  assert.is(Buffer.concat(chunks).toString(), text)
  for (const c of chunks.slice(1)) assert.ok(c[0] === 0x20, 'chunk starts at a space')
  const noSpace = new Uint8Array(Buffer.from('✓'.repeat(500)))
  for (const c of splitChunks(noSpace, 100, 20))
    assert.not.throws(() => new TextDecoder('utf-8', { fatal: true }).decode(c))
  const d = chunkDocument(text)
  assert.is(d.bytes, bytes.length)
  assert.is(chunkDocument(text).cid, d.cid)
  assert.is.not(chunkDocument(text + '.').cid, d.cid)
})

test('.jsonl rows become one document each; bad rows are named by line', () => {
  const jsonl =
    '{"text":"one"}\n\n{"prompt":"q","completion":"a"}\n{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}\n'
  const docs = documentsFromFile('d.jsonl', new Uint8Array(Buffer.from(jsonl)))
  assert.equal(
    docs.map((d) => d.text),
    ['one', 'q\na', 'hi\nyo']
  )
  assert.is(docs[1]!.source, 'd.jsonl#3')
  assert.throws(() => documentsFromFile('d.jsonl', new Uint8Array(Buffer.from('{"x":1}\n'))), /line 1/)
  assert.throws(() => documentsFromFile('d.pdf', new Uint8Array([1])), /allowed: \.txt, \.md, \.jsonl/)
  assert.throws(() => documentsFromFile('d.txt', new Uint8Array([0xff, 0xfe, 0xfd])), /UTF-8/)
})

test.run()
