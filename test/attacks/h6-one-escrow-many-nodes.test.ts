// H6 (docs/THREATS.md): a client's escrow backed vouchers to every node, so one balance could be
// spent at two nodes at once; the second node's claims then reverted InsufficientEscrow forever.
// Now a client's escrow is per (client, node): the attacker funds node A for one job and tries
// the same money at B. B refuses before any work (INSUFFICIENT_ESCROW), and every token either
// node delivered is paid to it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import {
  addrOf,
  attackStage,
  claimAndRead,
  countTokens,
  job,
  rawVoucher,
  until,
  wire,
  worth
} from './fixture.ts'

const t = attackStage('h6', { two: true, parties: { attacker: { account: 4, escrow: worth(48) } } })

test('escrow for one job, spent at two nodes at once: each node is paid what it delivered', async () => {
  const { s, attacker } = t
  const b = s.b!
  await until('B serves the adapter', async () => (await s.chainOf(b).client.chainId) > 0)
  const [va, vb] = await Promise.all([
    rawVoucher(attacker, s, s.operator(s.a), worth(48)),
    rawVoucher(attacker, s, s.operator(b), worth(48))
  ])
  const [ra, rb] = await Promise.all([
    countTokens(attacker.infer, addrOf(s.a), job(s, 48, { voucher: wire(va) })),
    countTokens(attacker.infer, addrOf(b), job(s, 48, { voucher: wire(vb) }))
  ])
  const atA = ra.tokens > 0 ? worth(ra.tokens) : 0n
  const atB = rb.tokens > 0 ? worth(rb.tokens) : 0n
  assert.ok(ra.ok, String(ra.error))
  const paidA = await claimAndRead(s, s.a, attacker.account.address)
  const paidB = await claimAndRead(s, b, attacker.account.address)
  assert.is(paidA, atA, 'A is paid every token it delivered')
  assert.is(paidB, atB, 'B is paid every token it delivered')
})

test.run()
