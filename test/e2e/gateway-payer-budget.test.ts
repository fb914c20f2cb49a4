// gateway.maxSpend holds across restarts (docs/THREATS.md): the gateway's payer persists what it
// deposited and what it signed in the node's LevelDB, so a restarted gateway cannot deposit the
// budget again; and it tops up only what the serving node can still claim (signed maxima less
// what the chain paid), not the cumulative maxima against a balance that claims have reduced.
// Real anvil, the compiled Settlement, a real LevelDB; terms signed by a real operator key.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import type { Hex } from 'viem'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { signTerms, termsJobId, voucherFromJson } from '../../src/chain/eip712.ts'
import { VoucherWallet } from '../../src/chain/wallet.ts'
import { BudgetExhaustedError, BudgetedPayer } from '../../src/gateway/payer.ts'
import type { PaymentTerms } from '../../src/protocols/infer/codec.ts'

const OPEN = 10n ** 18n
const PRICE = OPEN // per 1k tokens: a job of 3 + 597 tokens costs 0.6 OPEN at most
const job = { model: 'm', adapter: null, promptIds: [1, 2, 3], params: { maxNewTokens: 597 } }
let chain: LocalChain
let dir: string
let db: Level<string, string>
let node: ChainClient
let payerChain: ChainClient

test.before(async () => {
  chain = await startLocalChain({ accounts: 4, withdrawalDelaySec: 3600 })
  node = new ChainClient({ ...chain, account: chain.accounts[1]! })
  payerChain = new ChainClient({ ...chain, account: chain.accounts[2]! })
  dir = mkdtempSync(join(tmpdir(), 'openlora-gw-budget-'))
  db = new Level(dir)
})
test.after(async () => {
  await db?.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
  await chain?.stop()
})

/** The gateway's payer as a (re)started node opens it: the same key and LevelDB. */
const open = (account = 2, maxSpend = OPEN, prefix = 'a') => {
  const key = chain.accounts[account]!
  const c = new ChainClient({ ...chain, account: key })
  const wallet = new VoucherWallet(key, c.domain, { db: db.sublevel(`${prefix}-gateway-wallet`) })
  return new BudgetedPayer(wallet, c.domain, c, {
    maxSpend,
    db: db.sublevel<string, string>(`${prefix}-gateway-budget`, { valueEncoding: 'utf8' })
  })
}

let n = 0
async function terms(): Promise<{ terms: PaymentTerms; jobId: string }> {
  const jobId = `0x${(++n).toString(16).padStart(32, '0')}`
  const t = {
    reason: 'VOUCHER_MISSING' as const,
    operator: node.address,
    pricePer1kTokens: PRICE.toString(),
    maxAmountDue: ((600n * PRICE) / 1000n).toString(),
    chainId: chain.chainId,
    settlement: chain.addresses.settlement,
    jobId: jobId as Hex
  }
  const signature = await signTerms(chain.accounts[1]!, node.domain, {
    operator: t.operator,
    jobId: termsJobId(jobId),
    pricePer1kTokens: PRICE,
    maxAmountDue: BigInt(t.maxAmountDue)
  })
  return { terms: { ...t, signature }, jobId }
}

const escrow = async () => (await node.escrowOf(payerChain.address, node.address)).balance

test('a restarted gateway keeps its budget: it cannot deposit maxSpend again', async () => {
  const first = open()
  const a = await terms()
  const v = await first.voucherForTerms('/s', job, a.terms, a.jobId)
  await first.ended(v, { started: true }) // cut off: its worst case counts as owed
  assert.equal(await escrow(), (6n * OPEN) / 10n)
  // restart: a new process over the same LevelDB
  const second = open()
  assert.equal(await second.committed(), (6n * OPEN) / 10n)
  const b = await terms()
  await assert.rejects(second.voucherForTerms('/s', job, b.terms, b.jobId), BudgetExhaustedError)
  assert.equal(await escrow(), (6n * OPEN) / 10n, 'nothing more deposited: 1.2 OPEN would exceed maxSpend')
  assert.equal(await second.committed(), (6n * OPEN) / 10n)
})

test('the top-up covers what the node can still claim, not what it already claimed', async () => {
  const payer = open(3, 2n * OPEN, 'b')
  const a = await terms()
  const wire = await payer.voucherForTerms('/s', job, a.terms, a.jobId)
  await payer.ended(wire, { started: true })
  const at = (i: number) => node.escrowOf(chain.accounts[i]!.address, node.address).then((e) => e.balance)
  assert.equal(await at(3), (6n * OPEN) / 10n)
  // the node claims the 0.6 OPEN the job owes: the escrow is empty, the chain paid 0.6
  await node.claim([{ voucher: voucherFromJson(wire), amount: (6n * OPEN) / 10n }])
  assert.equal(await at(3), 0n)
  // after a restart the next job's voucher signs 0.6 owed + 0.6 worst case = 1.2 OPEN, of which the
  // node can still claim 0.6: that is the deposit (not 1.2 against the empty balance)
  const again = open(3, 2n * OPEN, 'b')
  const b = await terms()
  const next = voucherFromJson(await again.voucherForTerms('/s', job, b.terms, b.jobId))
  assert.equal(next.cumulativeAmount, (12n * OPEN) / 10n)
  assert.equal(await at(3), (6n * OPEN) / 10n)
  assert.equal(await again.committed(), (12n * OPEN) / 10n)
})

test.run()
