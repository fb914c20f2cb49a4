// The `train` capability in adverts (docs/NODE.md, docs/TRAINING.md): optional, so a node that does
// not train publishes the same bytes as before it existed, and a node that does publishes a field
// older nodes keep as an unknown one under the signature (their decoder, like this one, keeps
// unknown fields). Checked: round trip to the same bytes, the signature, and refusals by field.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeCanonical } from '../../src/crypto/cbor.ts'
import { toHex } from '../../src/crypto/hash.ts'
import { decodeAdvert, signAdvert, verifyAdvertSignature } from '../../src/protocols/adverts/codec.ts'
import { InvalidAdvertError } from '../../src/protocols/adverts/errors.ts'
import { testAdvert, testPeer } from './advert-fixture.ts'

const TRAIN = { pricePer1kTokens: '1234567891234567', models: ['tiny-llama'] }

test('an advert with the train capability decodes to the same bytes and verifies', async () => {
  const p = await testPeer()
  const adv = await testAdvert(p, { caps: { train: TRAIN } })
  const back = decodeAdvert(adv.bytes)
  assert.equal(back.body.train, TRAIN)
  assert.is(toHex(encodeCanonical({ body: back.body, sig: back.sig })), toHex(adv.bytes))
  assert.ok(await verifyAdvertSignature(back))
})

test('a node that does not train advertises no train key: the bytes of an advert before it', async () => {
  const p = await testPeer()
  const adv = await testAdvert(p)
  assert.not.ok('train' in adv.body)
  assert.not.ok('train' in decodeAdvert(adv.bytes).body)
})

test('a malformed train capability is refused naming the field', async () => {
  const p = await testPeer()
  const good = await testAdvert(p, { caps: { train: TRAIN } })
  for (const [train, field] of [
    [{ ...TRAIN, pricePer1kTokens: '-1' }, 'train.pricePer1kTokens'],
    [{ ...TRAIN, models: Array.from({ length: 17 }, (_, i) => `m${i}`) }, 'train.models'],
    [{ pricePer1kTokens: '1' }, 'train.models']
  ] as const) {
    const bad = await signAdvert({ ...good.body, train } as never, p.key)
    try {
      decodeAdvert(bad.bytes)
      assert.unreachable(`accepted ${JSON.stringify(train)}`)
    } catch (err) {
      assert.instance(err, InvalidAdvertError)
      assert.match((err as Error).message, field)
    }
  }
})

test.run()
