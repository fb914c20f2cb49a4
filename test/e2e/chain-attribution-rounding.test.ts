// Attribution rounding (docs/THREATS.md, L2 and the review finding "attribution rounding over the
// cap"): Settlement caps each datanet's attribution at floor(runPool × declared bps / BPS) per
// adapter run. The planner used to hand leftover wei to the largest remainders across datanets, so
// one datanet could get 1 wei above its cap: BadAttribution, and the Claimer then claimed the whole
// batch without attribution (every contributor's share to the treasury). Now each datanet's budget
// is exactly the contract's cap and each contributor's share is floored: both datanets are funded,
// the dust goes to the treasury (role 3), and everything reconciles to the wei. Real anvil, real
// LevelDB, the node's own Claimer.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import type { Hex, LocalAccount } from 'viem'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { Claimer } from '../../src/chain/claimer.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { withdrawContributions } from '../../src/chain/contributions.ts'
import { signVoucher } from '../../src/chain/eip712.ts'
import { splitPayment } from '../../src/chain/shares.ts'
import { VoucherStore } from '../../src/chain/store.ts'

const OPEN = 10n ** 18n
const adapterA = `0x${'a1'.repeat(32)}` as Hex
const adapterB = `0x${'b1'.repeat(32)}` as Hex
const d1 = `0x${'d1'.repeat(32)}` as Hex
const d2 = `0x${'d2'.repeat(32)}` as Hex
const d3 = `0x${'d3'.repeat(32)}` as Hex
let chain: LocalChain
let dir: string
let nodeAcc: LocalAccount
let node: ChainClient
let db: Level<string, string>

test.before(async () => {
  chain = await startLocalChain({ accounts: 8, withdrawalDelaySec: 7200 })
  nodeAcc = chain.accounts[1]!
  node = new ChainClient({ ...chain, account: nodeAcc })
  const owner = new ChainClient({ ...chain, account: chain.accounts[2]! })
  for (const d of [d1, d2, d3]) await owner.createDatanet(d, `0x${'00'.repeat(32)}`)
  const modelHash = `0x${'01'.repeat(32)}` as Hex
  // A splits its pool evenly over d1 and d2; B over thirds of d1, d2, d3 (caps floor each third)
  const declared: [Hex, [Hex, number][]][] = [
    [
      adapterA,
      [
        [d1, 5000],
        [d2, 5000]
      ]
    ],
    [
      adapterB,
      [
        [d1, 3333],
        [d2, 3333],
        [d3, 3334]
      ]
    ]
  ]
  for (const [adapterId, datanets] of declared)
    await owner.registerAdapter({
      adapterId,
      modelHash,
      feePer1kTokens: 1n,
      datanets: datanets.map(([id, weightBps]) => ({ id, weightBps }))
    })
  for (const c of chain.accounts.slice(3, 5))
    await new ChainClient({ ...chain, account: c }).deposit(OPEN, { node: nodeAcc.address })
  dir = mkdtempSync(join(tmpdir(), 'openlora-rounding-'))
  db = new Level<string, string>(join(dir, 'db'))
})
test.after(async () => {
  await db?.close()
  await chain?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

test('odd pools split over datanets and contributors: every datanet funded, dust to the treasury', async () => {
  const store = new VoucherStore(db)
  const alice = chain.accounts[6]!.address
  const bob = chain.accounts[7]!.address
  // amounts whose pool shares are odd and whose contributor splits leave remainders
  const jobs = [
    { client: chain.accounts[3]!, adapterId: adapterA, amount: 1010n, datanets: [d1, d2] },
    { client: chain.accounts[4]!, adapterId: adapterA, amount: 7770n, datanets: [d1, d2] },
    { client: chain.accounts[3]!, adapterId: adapterB, amount: 12_345n, datanets: [d1, d2, d3] }
  ]
  let n = 0
  for (const j of jobs) {
    const v = await signVoucher(j.client, node.domain, {
      node: nodeAcc.address,
      adapterId: j.adapterId,
      cumulativeAmount: j.amount + 1000n
    })
    await store.recordPayment(v, {
      jobId: `0x${(++n).toString(16).padStart(32, '0')}`,
      amountDue: j.amount,
      attribution: {
        datanets: j.datanets.map((id) => ({ id, bp: Math.floor(10_000 / j.datanets.length) })),
        contributors: [
          { address: alice, bp: 7000 },
          { address: bob, bp: 3000 }
        ]
      }
    })
  }
  const treasury = chain.accounts[0]!.address
  const treasuryBefore = await node.creditsOf(treasury)
  const claimer = new Claimer({ chain: node, store }, { claimIntervalSec: 3600, minClaim: 10n ** 30n })
  await claimer.start()
  const [outcome] = await claimer.claimNow()
  await claimer.stop()
  assert.ok(outcome, 'the batch is claimed')
  assert.equal(outcome.vouchers, 3)

  // the contract's caps, per adapter run: floor(runPool × bps / BPS)
  const poolA = splitPayment(1010n).pool + splitPayment(7770n).pool
  const poolB = splitPayment(12_345n).pool
  const cap = (runPool: bigint, bps: bigint) => (runPool * bps) / 10_000n
  const caps = new Map<Hex, bigint>([
    [d1, cap(poolA, 5000n) + cap(poolB, 3333n)],
    [d2, cap(poolA, 5000n) + cap(poolB, 3333n)],
    [d3, cap(poolB, 3334n)]
  ])
  // every datanet is funded (before the fix: none was, the batch's whole pool went to the treasury)
  assert.equal(outcome.poolIds.length, 3, 'one funded pool per declared datanet')
  const pools = (await store.allPools()).filter((p) => p.poolId != null)
  let attributed = 0n
  for (const p of pools) {
    const total = BigInt(p.total)
    assert.ok(
      total <= caps.get(p.datanetId)!,
      `${p.datanetId}: ${total} above its cap ${caps.get(p.datanetId)}`
    )
    // floors lose at most one wei per contributor per run
    assert.ok(caps.get(p.datanetId)! - total <= 4n)
    attributed += total
  }
  // the treasury gets the protocol share and exactly what was not attributed (L2), to the wei
  const protocol = jobs.reduce((s, j) => s + splitPayment(j.amount).protocol, 0n)
  assert.equal((await node.creditsOf(treasury)) - treasuryBefore, protocol + poolA + poolB - attributed)
  // and contributors withdraw exactly what the trees hold
  const paidOut =
    (await withdrawContributions(node, store, alice)) + (await withdrawContributions(node, store, bob))
  assert.equal(paidOut, attributed)
})

test.run()
