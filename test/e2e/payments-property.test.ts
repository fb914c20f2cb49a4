// Property (fast-check): random interleavings of deposits, paid jobs on two nodes (finished,
// aborted mid-stream, or cut off by a node crash), claims and withdrawals, driven through the
// real contracts on anvil and each node's own VoucherStore, voucher check and Claimer, with
// honest clients (VoucherWallet). After every step: tokens are conserved to the wei (the
// Settlement contract holds exactly the escrows and credits it owes), and after every claim every
// token each node delivered is paid to it and no honest entry was refused.
// PAYMENTS_PROPERTY_RUNS sets the number of runs (default 20).
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { Level } from 'level'
import { test } from 'uvu'
import { type Address, type Hex, type LocalAccount, parseEther } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { channelKey } from '../../src/chain/channel.ts'
import { Claimer } from '../../src/chain/claimer.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { amountDue } from '../../src/chain/eip712.ts'
import { VoucherRejectedError } from '../../src/chain/errors.ts'
import { VoucherStore } from '../../src/chain/store.ts'
import { checkVoucher } from '../../src/chain/vouchers.ts'
import { VoucherWallet } from '../../src/chain/wallet.ts'

const RUNS = Number(process.env.PAYMENTS_PROPERTY_RUNS ?? 20)
const OPEN = 10n ** 18n
const PRICE = 10n ** 15n // 0.001 OPEN per 1k tokens
const PROMPT = 10
const DELAY = 3600
const adapterId = `0x${'7a'.repeat(32)}` as Hex

let chain: LocalChain
let funder: ChainClient
let reader: ChainClient
let owner: Address
let treasury: Address
const root = mkdtempSync(join(tmpdir(), 'payments-property-'))

test.before(async () => {
  chain = await startLocalChain({ accounts: 3, withdrawalDelaySec: DELAY, mintPerAccount: 10n ** 9n * OPEN })
  treasury = chain.accounts[0]!.address
  funder = new ChainClient({ ...chain, account: chain.accounts[1]! })
  const ownerC = new ChainClient({ ...chain, account: chain.accounts[2]! })
  owner = ownerC.address
  reader = funder
  await ownerC.registerAdapter({ adapterId, modelHash: `0x${'01'.repeat(32)}`, feePer1kTokens: PRICE })
})
test.after(async () => {
  await chain?.stop()
  rmSync(root, { recursive: true, force: true })
})

type End = 'done' | 'abort' | 'crash'
type Step =
  | { t: 'deposit'; c: number; n: number; amount: number }
  | { t: 'job'; c: number; n: number; maxNew: number; delivered: number; end: End }
  | { t: 'claim'; n: number }
  | { t: 'withdraw'; c: number; n: number }

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    t: fc.constant('deposit' as const),
    c: fc.nat(1),
    n: fc.nat(1),
    amount: fc.integer({ min: 1, max: 400 })
  }),
  fc
    .record({
      t: fc.constant('job' as const),
      c: fc.nat(1),
      n: fc.nat(1),
      maxNew: fc.integer({ min: 1, max: 20_000 }),
      delivered: fc.nat(20_000),
      end: fc.constantFrom<End>('done', 'abort', 'crash')
    })
    .map((j) => ({ ...j, delivered: j.delivered % (j.maxNew + 1) })),
  fc.record({ t: fc.constant('claim' as const), n: fc.nat(1) }),
  fc.record({ t: fc.constant('withdraw' as const), c: fc.nat(1), n: fc.nat(1) })
)

interface Node {
  account: LocalAccount
  chain: ChainClient
  db: Level<string, string>
  store: VoucherStore
  claimer: Claimer
}

let run = 0

async function scenario(steps: Step[]): Promise<void> {
  const id = run++
  const nodes: Node[] = []
  for (let i = 0; i < 2; i++) {
    const account = privateKeyToAccount(generatePrivateKey())
    await chain.setEthBalance(account.address, parseEther('10'))
    const c = new ChainClient({ ...chain, account })
    const db = new Level<string, string>(join(root, `${id}-${i}`))
    const store = new VoucherStore(db)
    nodes.push({
      account,
      chain: c,
      db,
      store,
      claimer: new Claimer({ chain: c, store }, { claimIntervalSec: 3600 })
    })
  }
  const clients = await Promise.all(
    [0, 1].map(async () => {
      const account = privateKeyToAccount(generatePrivateKey())
      await chain.setEthBalance(account.address, parseEther('10'))
      return {
        account,
        chain: new ChainClient({ ...chain, account }),
        wallet: new VoucherWallet(account, reader.domain)
      }
    })
  )
  const parties = [
    funder.address,
    owner,
    treasury,
    ...nodes.map((n) => n.account.address),
    ...clients.map((c) => c.account.address)
  ]
  const held = async () => {
    let escrows = 0n
    for (const c of clients)
      for (const n of nodes) escrows += (await reader.escrowOf(c.account.address, n.account.address)).balance
    let credits = 0n
    for (const p of [owner, treasury, ...nodes.map((n) => n.account.address)])
      credits += await reader.creditsOf(p)
    let tokens = await reader.tokenBalance(chain.addresses.settlement)
    for (const p of parties) tokens += await reader.tokenBalance(p)
    return { escrows, credits, settlement: await reader.tokenBalance(chain.addresses.settlement), tokens }
  }
  const start = await held()
  // the model: what each node delivered to each client (wei), and what left the contract
  const delivered = new Map<string, bigint>()
  const key = (c: number, n: number) => `${c}|${n}`
  let paidOut = 0n
  let jobs = id * 1000
  try {
    for (const s of steps) {
      if (s.t === 'deposit') {
        await funder.deposit(BigInt(s.amount) * (OPEN / 1000n), {
          node: nodes[s.n]!.account.address,
          forClient: clients[s.c]!.account.address
        })
      } else if (s.t === 'job') {
        const n = nodes[s.n]!
        const c = clients[s.c]!
        const maxAmountDue = amountDue(PROMPT, s.maxNew, PRICE)
        const job = { node: n.account.address, adapterId, maxAmountDue }
        const voucher = await c.wallet.voucherFor(job)
        const jobId = `0x${(++jobs).toString(16).padStart(32, '0')}` as Hex
        try {
          const checked = await checkVoucher(n.chain, n.store, {
            voucher,
            node: n.account.address,
            adapterId,
            maxAmountDue
          })
          await n.store.reserve(
            voucher,
            { jobId, maxAmountDue, promptTokens: PROMPT, pricePer1kTokens: PRICE },
            { onChainClaimed: checked.onChainClaimed, escrow: checked.escrowBalance }
          )
        } catch (err) {
          // an honest client is refused only for its escrow (or a pending withdrawal), never paid
          assert.ok(err instanceof VoucherRejectedError, String(err))
          assert.ok(['INSUFFICIENT_ESCROW', 'WITHDRAWAL_PENDING'].includes(err.code), err.message)
          c.wallet.release(job)
          continue
        }
        const channel = channelKey(c.account.address, n.account.address, adapterId)
        // tokens go out in a few writes, as the node records them before sending
        for (const k of new Set([Math.ceil(s.delivered / 2), s.delivered]))
          if (k > 0) await n.store.delivered(channel, jobId, k)
        const worth = s.end === 'done' || s.delivered > 0 ? amountDue(PROMPT, s.delivered, PRICE) : 0n
        if (s.end === 'done') {
          await n.store.settle(channel, jobId, { amountDue: worth })
          await c.wallet.settle({ ...job, amountDue: worth })
        } else {
          if (s.end === 'crash') {
            // the node dies mid-job: a new store on the same LevelDB settles what was cut off
            n.store = new VoucherStore(n.db)
            n.claimer = new Claimer({ chain: n.chain, store: n.store }, { claimIntervalSec: 3600 })
            await n.store.settleAbandoned()
          } else await n.store.settle(channel, jobId)
          // the client cannot know how much the node recorded: it counts the worst case
          await c.wallet.settle({ ...job, amountDue: maxAmountDue })
        }
        c.wallet.release(job)
        delivered.set(key(s.c, s.n), (delivered.get(key(s.c, s.n)) ?? 0n) + worth)
      } else if (s.t === 'claim') {
        await claimAndCheck(s.n)
      } else {
        // a withdrawal: requested, the node claims within the delay, then the client takes the rest
        const c = clients[s.c]!
        const n = nodes[s.n]!
        await c.chain.requestWithdrawal(n.account.address)
        await claimAndCheck(s.n)
        await chain.increaseTime(DELAY + 1)
        const { balance } = await reader.escrowOf(c.account.address, n.account.address)
        if (balance > 0n) {
          await c.chain.withdraw(n.account.address, balance)
          paidOut += balance
        }
        await c.chain.cancelWithdrawal(n.account.address)
      }
      const now = await held()
      assert.equal(now.tokens, start.tokens, 'tokens are conserved to the wei')
      assert.equal(
        now.settlement - start.settlement,
        now.escrows - start.escrows + (now.credits - start.credits),
        'the contract holds exactly the escrows and credits it owes'
      )
    }
    for (let n = 0; n < 2; n++) await claimAndCheck(n)
  } finally {
    for (const n of nodes) await n.db.close()
  }

  async function claimAndCheck(n: number): Promise<void> {
    const node = nodes[n]!
    await node.claimer.claimNow()
    for (let c = 0; c < 2; c++) {
      const paid = await reader.claimedOf(clients[c]!.account.address, node.account.address, adapterId)
      assert.equal(
        paid,
        delivered.get(key(c, n)) ?? 0n,
        `node ${n} is paid every token it delivered to client ${c}`
      )
    }
    for (const ch of await node.store.allChannels())
      assert.equal(ch.quarantined, undefined, 'no honest entry refused')
    void paidOut
  }
}

test('random deposits, jobs, aborts, crashes, claims and withdrawals: every delivered token paid', async () => {
  await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 14 }), scenario), {
    numRuns: RUNS,
    verbose: 1
  })
})

test.run()
