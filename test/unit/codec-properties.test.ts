// Property tests (fast-check) for the codecs: decode(encode(x)) = x for generated x, and every
// decoder of outside input refuses bad bytes only with a typed error (never TypeError,
// RangeError, a non-Error or a hang): the same rule `npm run fuzz` applies at larger counts.
import fc from 'fast-check'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { getAddress } from 'viem'
import { fuzzTarget } from '../../scripts/fuzz/fast-check-engine.ts'
import { TARGETS } from '../../scripts/fuzz/targets.ts'
import { type SignedVoucher, voucherFromJson, voucherToJson } from '../../src/chain/eip712.ts'
import { decodeCanonical, encodeCanonical } from '../../src/crypto/cbor.ts'
import { cidForBytes } from '../../src/crypto/cid.ts'
import { decryptKeystore, encryptKeystore, parseKeystore } from '../../src/crypto/keystore.ts'
import { decodeRequestFrame, encodeFrame, type RequestFrame } from '../../src/protocols/infer/codec.ts'

const hex = (bytes: number) =>
  fc
    .uint8Array({ minLength: bytes, maxLength: bytes })
    .map((b) => `0x${Buffer.from(b).toString('hex')}` as const)

// canonical CBOR has no undefined, no -0 and integers up to 64 bits
const cborValue = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.string(),
    fc.boolean(),
    fc.constant(null),
    fc.integer(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }).filter((n) => n < -(2n ** 53n) || n > 2n ** 53n),
    fc
      .double({ noNaN: true, noDefaultInfinity: true })
      .filter((d) => !Object.is(d, -0) && !Number.isInteger(d)),
    fc.uint8Array({ maxLength: 32 }),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(
      fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
      tie('v'),
      { maxKeys: 4, noNullPrototype: true }
    )
  )
})).v

test('canonical CBOR: decode(encode(x)) = x', () => {
  fc.assert(
    fc.property(cborValue, (v) => {
      assert.equal(decodeCanonical(encodeCanonical(v as never)), v)
    }),
    { numRuns: 2000 }
  )
})

test('a CBOR map key "__proto__" stays an own key and never sets the prototype', () => {
  const d = decodeCanonical(encodeCanonical(JSON.parse('{"__proto__":{"admin":true},"a":1}'))) as Record<
    string,
    unknown
  >
  assert.ok(Object.hasOwn(d, '__proto__'))
  assert.is(Object.getPrototypeOf(d), Object.prototype)
  assert.is((d as { admin?: boolean }).admin, undefined)
})

test('infer request frames: decode(encode(f)) = f', () => {
  const frame = fc.record(
    {
      prompt: fc.string({ minLength: 1, maxLength: 200 }),
      maxNewTokens: fc.integer({ min: 1, max: 512 }),
      seed: fc.integer({ min: 0, max: 2 ** 31 }),
      jobId: hex(16),
      adapter: fc.uint8Array({ minLength: 1, maxLength: 8 }).map((b) => cidForBytes(b)),
      signature: fc.uint8Array({ minLength: 64, maxLength: 64 })
    },
    { noNullPrototype: true }
  )
  fc.assert(
    fc.property(frame, (x) => {
      const f: RequestFrame = {
        t: 'request',
        body: {
          v: 1,
          jobId: x.jobId,
          model: 'tiny',
          adapter: x.adapter,
          prompt: x.prompt,
          params: { maxNewTokens: x.maxNewTokens, seed: x.seed },
          deadline: 1_900_000_000_000,
          client: '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK',
          voucher: null
        },
        signature: x.signature,
        route: []
      }
      assert.equal(decodeRequestFrame(encodeFrame(f)), f)
    }),
    { numRuns: 1000 }
  )
})

test('vouchers: fromJson(toJson(v)) = v', () => {
  const voucher = fc.record(
    {
      client: hex(20).map((a) => getAddress(a)),
      node: hex(20).map((a) => getAddress(a)),
      adapterId: hex(32),
      cumulativeAmount: fc.bigInt({ min: 1n, max: 2n ** 256n - 1n }),
      signature: hex(65)
    },
    { noNullPrototype: true }
  )
  fc.assert(
    fc.property(voucher, (v: SignedVoucher) => {
      assert.equal(voucherFromJson(JSON.parse(JSON.stringify(voucherToJson(v)))), v)
    }),
    { numRuns: 1000 }
  )
})

test('keystore: decrypt(encrypt(k, pw), pw) = k (light scrypt)', () => {
  fc.assert(
    fc.property(
      hex(32).filter((k) => BigInt(k) > 0n && BigInt(k) < 2n ** 255n),
      fc.string({ minLength: 1 }),
      (k, pw) => {
        const ks = parseKeystore(JSON.stringify(encryptKeystore(k, pw, { n: 16, r: 1, p: 1 })))
        assert.is(decryptKeystore(ks, pw), k)
      }
    ),
    { numRuns: 100 }
  )
})

test('every decoder of outside input refuses bad input only with a typed error', () => {
  for (const t of TARGETS) {
    const r = fuzzTarget(t, 300, 42)
    assert.not.ok(r.failure, `${t.name}: ${r.failure}`)
  }
})

test.run()
