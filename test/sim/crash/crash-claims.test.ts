// kill -9 of a real claiming process (real LevelDB, real anvil with the compiled contracts) at
// the two dangerous moments of a claim: after the transaction is sent but before it is mined
// (then mined anyway, or dropped from the pool), and after it is mined but before the process
// notes it. After a restart the node is paid exactly what its receipts say, to the wei: nothing
// lost, nothing claimed twice.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import type { LocalAccount } from 'viem'
import { type LocalChain, startLocalChain } from '../../../src/chain/anvil.ts'
import { ChainClient } from '../../../src/chain/client.ts'
import { signVoucher } from '../../../src/chain/eip712.ts'
import { splitPayment } from '../../../src/chain/shares.ts'
import { VoucherStore } from '../../../src/chain/store.ts'
import { startWorker } from '../../helpers/crash.ts'

const OPEN = 10n ** 18n
const adapterId = `0x${'aa'.repeat(32)}` as const
let chain: LocalChain
let dir: string
let node: ChainClient
let nodeAcc: LocalAccount
let client: LocalAccount
let jobNo = 0

const rpc = async (method: string, params: unknown[] = []) => {
  const r = await fetch(chain.rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params })
  })
  const j = (await r.json()) as { result?: unknown; error?: { message: string } }
  if (j.error) throw new Error(`${method}: ${j.error.message}`)
  return j.result
}
const pendingTxs = async () => {
  const pool = (await rpc('txpool_content')) as { pending: Record<string, Record<string, unknown>> }
  return Object.values(pool.pending).reduce((n, byNonce) => n + Object.keys(byNonce).length, 0)
}

test.before(async () => {
  chain = await startLocalChain({ accounts: 4 })
  nodeAcc = chain.accounts[1]!
  node = new ChainClient({ ...chain, account: nodeAcc })
  const owner = new ChainClient({ ...chain, account: chain.accounts[2]! })
  await owner.registerAdapter({ adapterId, modelHash: `0x${'01'.repeat(32)}`, feePer1kTokens: 1n })
  client = chain.accounts[3]!
  await new ChainClient({ ...chain, account: client }).deposit(1000n * OPEN, { node: nodeAcc.address })
  dir = mkdtempSync(join(tmpdir(), 'crash-claims-'))
})
test.after(async () => {
  await chain?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const dbDir = () => join(dir, 'db')
/** records `jobs` paid jobs of 1 OPEN each in the node's store (as the infer service does) */
async function earn(jobs: number): Promise<void> {
  const db = new Level<string, string>(dbDir())
  await db.open()
  const store = new VoucherStore(db)
  for (let i = 0; i < jobs; i++) {
    jobNo++
    const v = await signVoucher(client, node.domain, {
      node: nodeAcc.address,
      adapterId,
      cumulativeAmount: BigInt(jobNo) * OPEN + OPEN / 2n
    })
    await store.recordPayment(v, { jobId: `0x${jobNo.toString(16).padStart(64, '0')}`, amountDue: OPEN })
  }
  await db.close()
}
const claimer = () =>
  startWorker(['claim', dbDir()], {
    CRASH_RPC: chain.rpcUrl,
    CRASH_CHAIN_ID: String(chain.chainId),
    CRASH_ADDRESSES: JSON.stringify(chain.addresses),
    CRASH_NODE_KEY: chain.privateKeys[1]!
  })
const claimed = () => node.claimedOf(client.address, nodeAcc.address, adapterId)
async function waitFor(pred: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 25))
  }
}
/** a clean run to completion: claims whatever is left; returns how many claims it sent */
async function finish(): Promise<number> {
  const w = claimer()
  assert.equal(await w.exited, 0, w.stderr())
  return Number(w.acks.at(-1)?.[1])
}

test('killed after sending, before mining; the transaction is mined later: paid once', async () => {
  await earn(3)
  const credits0 = await node.creditsOf(nodeAcc.address)
  await rpc('evm_setAutomine', [false])
  const w = claimer()
  await waitFor(async () => (await pendingTxs()) > 0)
  await w.kill9()
  await rpc('evm_setAutomine', [true])
  await rpc('evm_mine')
  assert.equal(await claimed(), 3n * OPEN)
  // the restarted node reconciles with the chain and claims nothing more
  assert.equal(await finish(), 0)
  assert.equal(await claimed(), 3n * OPEN)
  assert.equal((await node.creditsOf(nodeAcc.address)) - credits0, splitPayment(3n * OPEN).node)
})

test('killed after sending, before mining; the transaction is dropped: claimed after restart', async () => {
  await earn(2)
  const credits0 = await node.creditsOf(nodeAcc.address)
  await rpc('evm_setAutomine', [false])
  const w = claimer()
  await waitFor(async () => (await pendingTxs()) > 0)
  await w.kill9()
  await rpc('anvil_dropAllTransactions')
  await rpc('evm_setAutomine', [true])
  assert.equal(await claimed(), 3n * OPEN, 'nothing of the lost transaction reached the chain')
  assert.equal(await finish(), 1)
  assert.equal(await claimed(), 5n * OPEN)
  assert.equal((await node.creditsOf(nodeAcc.address)) - credits0, splitPayment(2n * OPEN).node)
})

test('killed after mining, before the node notes it: nothing claimed twice', async () => {
  await earn(4)
  const credits0 = await node.creditsOf(nodeAcc.address)
  const w = claimer()
  await waitFor(async () => (await claimed()) > 5n * OPEN, 60_000)
  await w.kill9()
  assert.equal(await finish(), 0)
  assert.equal(await claimed(), 9n * OPEN)
  assert.equal((await node.creditsOf(nodeAcc.address)) - credits0, splitPayment(4n * OPEN).node)
})

test.run()
