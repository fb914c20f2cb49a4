// C1 (docs/THREATS.md): an attacker sends a voucher whose signature is the high-s twin of a valid
// one. viem's recover accepts it, the contract (OpenZeppelin ECDSA, EIP-2098 compact form) never
// does. Before the fix the node served the job, then every claim round failed while compacting
// that signature, so an honest client's later job was never claimed. Now the node refuses it at
// the door (BAD_SIGNATURE, the contract's own rule) and the honest job is claimed.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type Hex, parseSignature, serializeSignature } from 'viem'
import { InferError } from '../../src/protocols/infer/errors.ts'
import {
  addrOf,
  attackStage,
  claimAndRead,
  countTokens,
  job,
  OPEN,
  rawVoucher,
  wire,
  worth
} from './fixture.ts'

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
const t = attackStage('c1', { parties: { attacker: { account: 4 }, honest: { account: 5 } } })

test('a high-s voucher is refused before any work; an honest job is still claimed', async () => {
  const { s, attacker, honest } = t
  const v = await rawVoucher(attacker, s, s.operator(s.a), OPEN)
  const sig = parseSignature(v.signature)
  const high = serializeSignature({
    r: sig.r,
    s: `0x${(N - BigInt(sig.s)).toString(16).padStart(64, '0')}` as Hex,
    yParity: sig.yParity === 0 ? 1 : 0
  })
  const bad = await countTokens(
    attacker.infer,
    addrOf(s.a),
    job(s, 64, { voucher: wire({ ...v, signature: high }) })
  )
  assert.is(bad.tokens, 0, 'no token was served for a voucher the contract would refuse')
  assert.ok(bad.error instanceof InferError, String(bad.error))
  assert.is((bad.error as InferError).code, 'PAYMENT_REQUIRED')
  assert.is((bad.error as InferError).payment?.reason, 'BAD_SIGNATURE')

  const good = await countTokens(honest.infer, addrOf(s.a), job(s, 16))
  assert.ok(good.ok, String(good.error))
  const paid = await claimAndRead(s, s.a, honest.account.address)
  assert.is(paid, worth(good.tokens), "the honest client's job is claimed, to the wei")
})

test.run()
