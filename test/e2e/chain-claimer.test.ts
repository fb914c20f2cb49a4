// The Claimer over a real LevelDB and a real anvil: a node "killed" between storing vouchers and
// claiming them claims them after a restart (a fresh Claimer over the same directory), exactly
// once; a node killed after its claim was mined but before it noted it claims nothing more; the
// minClaim threshold claims without being asked; a refused voucher does not block the batch; and
// contributors withdraw with the proofs the store kept. Every voucher signs a margin above what
// its jobs cost (as clients do); the claims take only what the receipts owe.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import type { LocalAccount } from 'viem'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { Claimer } from '../../src/chain/claimer.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { proofsFor, withdrawContributions } from '../../src/chain/contributions.ts'
import { signVoucher } from '../../src/chain/eip712.ts'
import { splitPayment } from '../../src/chain/shares.ts'
import { VoucherStore } from '../../src/chain/store.ts'
import { channelKey } from '../../src/chain/vouchers.ts'
import { createLogger } from '../../src/common/log.ts'

const OPEN = 10n ** 18n
const adapterA = `0x${'aa'.repeat(32)}` as const
const adapterB = `0x${'bb'.repeat(32)}` as const
const datanetId = `0x${'dd'.repeat(32)}` as const
let chain: LocalChain
let dir: string
let nodeAcc: LocalAccount
let node: ChainClient
let clients: LocalAccount[]
const open = (sub: string) => new Level<string, string>(join(dir, sub))

test.before(async () => {
  chain = await startLocalChain({ accounts: 9, withdrawalDelaySec: 7200 })
  nodeAcc = chain.accounts[1]!
  node = new ChainClient({ ...chain, account: nodeAcc })
  const owner = new ChainClient({ ...chain, account: chain.accounts[2]! })
  await owner.createDatanet(datanetId, `0x${'00'.repeat(32)}`)
  // both adapters declare the datanet, so their contributor pools may go to it (H5)
  const datanets = [{ id: datanetId, weightBps: 10_000 }]
  await owner.registerAdapter({
    adapterId: adapterA,
    modelHash: `0x${'01'.repeat(32)}`,
    feePer1kTokens: 1n,
    datanets
  })
  await owner.registerAdapter({
    adapterId: adapterB,
    modelHash: `0x${'01'.repeat(32)}`,
    feePer1kTokens: 1n,
    datanets
  })
  clients = chain.accounts.slice(3, 6)
  for (const c of clients)
    await new ChainClient({ ...chain, account: c }).deposit(100n * OPEN, { node: nodeAcc.address })
  dir = mkdtempSync(join(tmpdir(), 'openlora-claimer-'))
})
test.after(async () => {
  await chain?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const contributors = () => [
  { address: chain.accounts[6]!.address, bp: 7000 },
  { address: chain.accounts[7]!.address, bp: 3000 }
]
/** the worst case a client signs for beyond what its jobs cost; never claimed */
const MARGIN = OPEN / 2n
/** one job that brings the channel's owed total (what the receipts say) to `owedTotal` */
const pay = async (
  store: VoucherStore,
  client: LocalAccount,
  adapterId: `0x${string}`,
  owedTotal: bigint,
  jobNo: number
) => {
  const before = await store.getChannel(channelKey(client.address, nodeAcc.address, adapterId))
  const v = await signVoucher(client, node.domain, {
    node: nodeAcc.address,
    adapterId,
    cumulativeAmount: owedTotal + MARGIN
  })
  await store.recordPayment(v, {
    jobId: `0x${jobNo.toString(16).padStart(32, '0')}`,
    amountDue: owedTotal - BigInt(before?.owed ?? '0'),
    attribution: { datanets: [{ id: datanetId, bp: 10_000 }], contributors: contributors() }
  })
  return v
}

test('killed between storing and claiming: a fresh Claimer claims once after restart', async () => {
  let db = open('restart')
  let store = new VoucherStore(db)
  // three jobs on two channels; the "node" dies before any claim round
  await pay(store, clients[0]!, adapterA, 1n * OPEN, 1)
  await pay(store, clients[0]!, adapterA, 3n * OPEN, 2)
  await pay(store, clients[1]!, adapterB, 2n * OPEN, 3)
  await db.close()

  db = open('restart')
  store = new VoucherStore(db)
  const creditsBefore = await node.creditsOf(nodeAcc.address)
  const claimer = new Claimer({ chain: node, store }, { claimIntervalSec: 3600, minClaim: 10n ** 30n })
  await claimer.start() // reconciles; the first round runs on a timer
  const outcomes = await claimer.claimNow()
  assert.equal(outcomes.length, 1)
  assert.equal(outcomes[0]!.vouchers, 2)
  assert.equal(outcomes[0]!.total, 5n * OPEN)
  const expectNode = splitPayment(3n * OPEN).node + splitPayment(2n * OPEN).node
  assert.equal((await node.creditsOf(nodeAcc.address)) - creditsBefore, expectNode)
  // the receipts' 3 OPEN, not the voucher's 3.5
  assert.equal(await node.claimedOf(clients[0]!.address, nodeAcc.address, adapterA), 3n * OPEN)
  assert.deepEqual(await claimer.claimNow(), [])
  await claimer.stop()
  await db.close()

  // and again after another restart: nothing is claimed twice
  db = open('restart')
  store = new VoucherStore(db)
  const again = new Claimer({ chain: node, store }, { claimIntervalSec: 3600, minClaim: 10n ** 30n })
  await again.start()
  assert.deepEqual(await again.claimNow(), [])
  assert.equal(await again.pendingAmount(), 0n)
  assert.equal((await node.creditsOf(nodeAcc.address)) - creditsBefore, expectNode)

  // contributors withdraw with the proofs the store kept (70/30 of the pool)
  const pools = (await store.allPools()).filter((p) => p.poolId != null)
  assert.equal(pools.length, 1)
  const pool = pools[0]!
  assert.equal(BigInt(pool.total), splitPayment(3n * OPEN).pool + splitPayment(2n * OPEN).pool)
  const alice = chain.accounts[6]!.address
  const proofs = await proofsFor(store, alice)
  assert.equal(proofs.length, 1)
  const before = await node.tokenBalance(alice)
  assert.equal(await withdrawContributions(node, store, alice), (BigInt(pool.total) * 7n) / 10n)
  assert.equal((await node.tokenBalance(alice)) - before, (BigInt(pool.total) * 7n) / 10n)
  // a second pass pays nothing more
  assert.equal(await withdrawContributions(node, store, alice), 0n)
  await again.stop()
  await db.close()
})

test('killed after the claim was mined but before the store noted it: nothing is claimed twice', async () => {
  let db = open('mined')
  let store = new VoucherStore(db)
  const v = await pay(store, clients[2]!, adapterA, 4n * OPEN, 10)
  // the claim goes through outside the store (as if the node died right after sending it)
  await node.claim([{ voucher: v, amount: 4n * OPEN }])
  await db.close()
  db = open('mined')
  store = new VoucherStore(db)
  const claimer = new Claimer({ chain: node, store }, { claimIntervalSec: 3600, minClaim: 10n ** 30n })
  await claimer.start()
  const rec = await store.getChannel(channelKey(clients[2]!.address, nodeAcc.address, adapterA))
  assert.equal(rec?.claimed, (4n * OPEN).toString())
  assert.deepEqual(await claimer.claimNow(), [])
  await claimer.stop()
  await db.close()
})

test('minClaim: the claimer claims by itself once enough is unclaimed', async () => {
  const db = open('threshold')
  const store = new VoucherStore(db)
  const claimer = new Claimer({ chain: node, store }, { claimIntervalSec: 3600, minClaim: 2n * OPEN })
  await claimer.start()
  await pay(store, clients[0]!, adapterB, 1n * OPEN, 20)
  claimer.notify()
  await new Promise((r) => setTimeout(r, 300))
  assert.equal(
    await node.claimedOf(clients[0]!.address, nodeAcc.address, adapterB),
    0n,
    'below minClaim: no claim'
  )
  await pay(store, clients[0]!, adapterB, 2n * OPEN, 21)
  claimer.notify()
  const deadline = Date.now() + 30_000
  while ((await node.claimedOf(clients[0]!.address, nodeAcc.address, adapterB)) !== 2n * OPEN) {
    assert.ok(Date.now() < deadline, 'claim above minClaim did not happen')
    await new Promise((r) => setTimeout(r, 100))
  }
  await claimer.stop()
  assert.equal(await claimer.pendingAmount(), 0n)
  await db.close()
})

test('a voucher the chain refuses (escrow short) is claimed up to the escrow and does not block the rest of the batch', async () => {
  const db = open('refusal')
  const store = new VoucherStore(db)
  const poor = chain.accounts[8]!
  await new ChainClient({ ...chain, account: poor }).deposit(1n * OPEN, { node: nodeAcc.address })
  // stored without a check, as if the escrow had been emptied by another node's claim since
  await pay(store, poor, adapterA, 5n * OPEN, 30)
  await pay(store, clients[1]!, adapterA, 1n * OPEN, 31)
  const claimer = new Claimer({ chain: node, store }, { claimIntervalSec: 3600, minClaim: 10n ** 30n })
  await claimer.start()
  const out = await claimer.claimNow()
  // InsufficientEscrow: the poor client's entry is cut to what its escrow holds (1 OPEN), the
  // honest client's entry is claimed in full, in the same batch
  assert.equal(out.length, 1)
  assert.equal(out[0]!.vouchers, 2)
  assert.equal(out[0]!.total, 2n * OPEN)
  assert.equal(await node.claimedOf(clients[1]!.address, nodeAcc.address, adapterA), 1n * OPEN)
  assert.equal(await node.claimedOf(poor.address, nodeAcc.address, adapterA), 1n * OPEN)
  // every planned contributor tree that was sent has its pool id; none is left half-planned
  const pools = await store.allPools()
  assert.ok(pools.length >= 1)
  for (const pool of pools) assert.ok(pool.poolId != null)
  // the rest of the refused voucher stays owed and is claimed once the client has deposited enough
  assert.equal(await claimer.pendingAmount(), 4n * OPEN)
  await new ChainClient({ ...chain, account: poor }).deposit(10n * OPEN, { node: nodeAcc.address })
  const later = await claimer.claimNow()
  assert.equal(later[0]?.total, 4n * OPEN)
  assert.equal(await node.claimedOf(poor.address, nodeAcc.address, adapterA), 5n * OPEN)
  await claimer.stop()
  await db.close()
})

test('claimIntervalSec: a round runs on the timer without being asked', async () => {
  const db = open('interval')
  const store = new VoucherStore(db)
  const claimer = new Claimer({ chain: node, store }, { claimIntervalSec: 0.2, minClaim: 10n ** 30n })
  await claimer.start()
  await pay(store, clients[2]!, adapterB, 1n * OPEN, 40)
  const deadline = Date.now() + 30_000
  while ((await node.claimedOf(clients[2]!.address, nodeAcc.address, adapterB)) !== 1n * OPEN) {
    assert.ok(Date.now() < deadline, 'the timer never claimed')
    await new Promise((r) => setTimeout(r, 100))
  }
  await claimer.stop()
  await db.close()
})

test('an unreachable chain: rounds fail and retry with exponential backoff, and nothing is lost', async () => {
  const db = open('backoff')
  const store = new VoucherStore(db)
  // this channel was paid 2 OPEN in the first test: the voucher adds 3
  await pay(store, clients[1]!, adapterB, 5n * OPEN, 50)
  const lines: { failures?: number; backoffMs?: number }[] = []
  const logger = createLogger('test', { level: 'warn', json: true, write: (l) => lines.push(JSON.parse(l)) })
  // port 9 (discard) on loopback: nothing listens, every call is refused
  const dead = new ChainClient({ ...chain, rpcUrl: 'http://127.0.0.1:9', account: nodeAcc })
  const claimer = new Claimer(
    { chain: dead, store },
    { claimIntervalSec: 3600, retryBaseMs: 20, retryMaxMs: 160, logger }
  )
  await claimer.start()
  const deadline = Date.now() + 30_000
  while (lines.filter((l) => l.backoffMs != null).length < 6) {
    assert.ok(Date.now() < deadline, 'no retries seen')
    await new Promise((r) => setTimeout(r, 50))
  }
  await claimer.stop()
  const backoffs = lines.filter((l) => l.backoffMs != null).map((l) => l.backoffMs)
  assert.deepEqual(backoffs.slice(0, 5), [20, 40, 80, 160, 160])
  // once the chain is back (a claimer on the real endpoint), the stored voucher is claimed
  const live = new Claimer({ chain: node, store }, { claimIntervalSec: 3600, minClaim: 10n ** 30n })
  await live.start()
  const out = await live.claimNow()
  assert.equal(out[0]?.total, 3n * OPEN)
  await live.stop()
  await db.close()
})

test.run()
