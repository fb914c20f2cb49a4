// Wire compatibility with the node before the zod schemas: wire-golden.json holds frames and an
// advert encoded by commit 127f388 (the last one with the hand-written checks). Today's decoders
// must accept them, re-encode them to the same bytes, and the advert's signature must verify.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import { fromHex, toHex } from '../../src/crypto/hash.ts'
import { decodeAdvert, verifyAdvertSignature } from '../../src/protocols/adverts/codec.ts'
import { decodeRequestFrame, decodeResponseFrame, encodeFrame } from '../../src/protocols/infer/codec.ts'
import golden from './wire-golden.json' with { type: 'json' }

test('a request frame of the previous node decodes and re-encodes byte for byte', () => {
  const bytes = fromHex(golden.request as `0x${string}`)
  const f = decodeRequestFrame(bytes)
  assert.is(f.body.params.topK, 40)
  assert.equal(f.body.params.stopStrings, ['\n\n'])
  assert.is(toHex(encodeFrame(f)), golden.request)
})

test('a PAYMENT_REQUIRED error frame with terms decodes and re-encodes byte for byte', () => {
  const bytes = fromHex(golden.paymentRequired as `0x${string}`)
  const f = decodeResponseFrame(bytes)
  assert.is(f.t === 'error' && f.payment?.reason, 'VOUCHER_MISSING')
  assert.is(toHex(encodeFrame(f)), golden.paymentRequired)
})

test('an advert of the previous node decodes, keeps its bytes and its signature verifies', async () => {
  const bytes = fromHex(golden.advert as `0x${string}`)
  const adv = decodeAdvert(bytes)
  assert.is(adv.body.seq, 3)
  assert.is(toHex(encodeCanonical({ body: adv.body, sig: adv.sig })), golden.advert)
  assert.ok(await verifyAdvertSignature(adv))
})

test.run()
