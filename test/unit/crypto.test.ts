import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { decodeCanonical, encodeCanonical } from '../../src/crypto/cbor.ts'
import { cidDigest, cidForBytes, cidForManifest } from '../../src/crypto/cid.ts'
import { fromHex, hashTokenIds, sha256, toHex } from '../../src/crypto/hash.ts'

test('canonical CBOR sorts map keys so insertion order never changes the bytes', () => {
  const a = encodeCanonical({ b: 1, a: [1, 2], c: 'x' })
  const b = encodeCanonical({ c: 'x', a: [1, 2], b: 1 })
  assert.equal(toHex(a), toHex(b))
  assert.equal(decodeCanonical(a), { a: [1, 2], b: 1, c: 'x' })
})

test('canonical CBOR decoding rejects duplicate keys', () => {
  // {"a":1,"a":2} hand-encoded: map(2) "a" 1 "a" 2
  assert.throws(() => decodeCanonical(fromHex('a2616101616102')))
})

test('manifest CID does not depend on file order and changes with any byte', () => {
  const f1 = { name: 'adapter_config.json', size: 3, sha256: sha256('abc') }
  const f2 = { name: 'adapter_model.safetensors', size: 3, sha256: sha256('def') }
  const c1 = cidForManifest({ v: 1, kind: 'peft-adapter', files: [f1, f2] })
  const c2 = cidForManifest({ v: 1, kind: 'peft-adapter', files: [f2, f1] })
  assert.is(c1, c2)
  const c3 = cidForManifest({ v: 1, kind: 'peft-adapter', files: [f1, { ...f2, sha256: sha256('deg') }] })
  assert.is.not(c1, c3)
  assert.is(cidDigest(c1).length, 32)
  assert.ok(cidForBytes(new Uint8Array([1])).startsWith('b'))
})

test('token id hash is little-endian uint32 sha256', () => {
  assert.is(hashTokenIds([1]), toHex(sha256(new Uint8Array([1, 0, 0, 0]))))
  assert.is.not(hashTokenIds([1, 2]), hashTokenIds([2, 1]))
})

test.run()
