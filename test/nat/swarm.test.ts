// The 3-home paid swarm across real NATs: homes A and B behind endpoint-independent NATs, home C
// behind a symmetric one, each running a serving node on the shared anvil (paid-swarm.ts); a
// relay/bootstrap node on the "internet". A client in each home pays the node of the next home
// (A → B, B → C, C → A: one client account, so each channel has one writer) with vouchers against
// its escrow; jobs ride hole-punched or relayed connections (B → C always relayed); the nodes
// claim; every balance (operators, adapter owners, treasury, datanet contributors, the client's
// escrow) must add up to what was paid, to the wei. Root only, like the rest of the tier.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { namespacesLeft, requireNamespaces } from './netns.ts'
import {
  buildPaidSwarm,
  type PaidJobsAnswer,
  paidJobs,
  settleAndReconcile,
  untilRelayed
} from './paid-swarm.ts'

requireNamespaces()
const swarm = await buildPaidSwarm([
  { name: 'A', nat: 'friendly' },
  { name: 'B', nat: 'friendly' },
  { name: 'C', nat: 'symmetric' }
])
const JOBS = 4
const runs = new Map<string, PaidJobsAnswer>()

test.after(async () => {
  const prefix = swarm.topo.prefix
  await swarm.close()
  assert.equal(namespacesLeft({ prefix }), [], 'every namespace of the run is removed')
})

test('every home node holds a relay reservation', async () => {
  await untilRelayed(swarm)
})

test('paid jobs between homes, over hole-punched or relayed connections; into the symmetric NAT relayed', async () => {
  const ring: Array<[string, string]> = [
    ['A', 'B'],
    ['B', 'C'],
    ['C', 'A']
  ]
  // one client at a time: hole punching times its simultaneous dials by a measured round trip,
  // which three clients at once on a loaded 2-core machine skew
  for (const [k, [from, to]] of ring.entries())
    runs.set(`${from}${to}`, await paidJobs(swarm, from, [to], JOBS, { seed: 11 + k, concurrency: 1 }))
  const summary = ring.map(([from, to]) => {
    const a = runs.get(`${from}${to}`)!
    return `${from}→${to}: ${a.outcomes.map((o) => (o.ok ? o.connection : `failed ${o.failures.join(',')}`)).join(' ')}`
  })
  console.log(`  ${summary.join('\n  ')}`)
  for (const [from, to] of ring) {
    const a = runs.get(`${from}${to}`)!
    assert.is(a.outcomes.length, JOBS)
    const to_i = swarm.homes.findIndex((h) => h.name === to)
    for (const o of a.outcomes) {
      assert.ok(
        o.ok,
        `${from} → ${to}: job failed: ${o.failures.join(', ')} ${JSON.stringify(a.failureSamples)}`
      )
      assert.is(o.servedBy, to_i)
      assert.ok(BigInt(o.amountDue!) > 0n, 'every job was paid')
    }
  }
  // Every job says what carried it. A → B (both NATs endpoint-independent) goes direct when the
  // punch lands (nat.test.ts and impaired.test.ts assert that; here payments are the point), and
  // once direct it stays direct: jobs run one after another, so the order is the order they ran.
  for (const a of runs.values())
    for (const o of a.outcomes) assert.ok(o.connection === 'direct' || o.connection === 'relayed')
  const ab = runs.get('AB')!.outcomes.map((o) => o.connection)
  const firstDirect = ab.indexOf('direct')
  if (firstDirect >= 0)
    assert.ok(
      ab.slice(firstDirect).every((c) => c === 'direct'),
      `A → B fell back to relayed: ${ab}`
    )
  // no hole punch crosses a symmetric NAT: B → C is paid over the relay
  for (const o of runs.get('BC')!.outcomes) assert.is(o.connection, 'relayed', 'into a symmetric NAT')
})

test('the nodes claim, and every balance adds up to what the clients paid, to the wei', async () => {
  const ledgers = [...runs.values()].flatMap((a) => a.ledger)
  assert.ok(ledgers.length >= 3, 'a channel per home at least')
  const { rec, claimedByNodesBeforeStop } = await settleAndReconcile(swarm, ledgers)
  assert.ok(claimedByNodesBeforeStop, 'the running nodes claimed every accepted receipt themselves')
  assert.equal(rec.problems, [])
  assert.ok(rec.ok)
  assert.is(rec.receipts, 3 * JOBS)
  const paid = [...runs.values()]
    .flatMap((a) => a.outcomes)
    .reduce((s, o) => s + BigInt(o.amountDue ?? 0), 0n)
  assert.is(
    BigInt(rec.amountDueTotal),
    paid,
    'the receipts the clients accepted are what reconciliation checked'
  )
  assert.is(
    BigInt(rec.claimedTotal),
    BigInt(rec.amountDueTotal) + BigInt(rec.unusedMarginTotal) + BigInt(rec.paidWithoutReceipt)
  )
  assert.ok(rec.vouchersClaimed >= 3)
  assert.ok(rec.poolsFunded >= 1 && BigInt(rec.poolTotal) > 0n, 'datanet contributor pools were funded')
  const roles = new Set(rec.parties.map((p) => p.role))
  for (const role of ['operator', 'adapter-owner', 'contributor', 'treasury', 'client'] as const)
    assert.ok(roles.has(role), `no ${role} in the reconciliation`)
  for (const p of rec.parties) assert.ok(p.ok, JSON.stringify(p))
  const operators = rec.parties.filter((p) => p.role === 'operator')
  assert.is(operators.length, 3)
  for (const op of operators) assert.ok(BigInt(op.credits) > 0n, `operator ${op.address} was paid`)
  const contributorTokens = rec.parties
    .filter((p) => p.role === 'contributor')
    .reduce((s, p) => s + BigInt(p.tokens), 0n)
  assert.is(contributorTokens, BigInt(rec.poolTotal), 'contributors hold exactly the funded pools')
})

test.run()
