// Property test on a real anvil: random sequences of deposits, jobs (each adding its amountDue to
// the channel's owed total under a voucher that signs a maximum with a random margin above it),
// claims of the owed total (some of which the contract must refuse: above the escrow, or a
// claimed amount above the signed maximum), client withdrawals, credit withdrawals and
// contributor withdrawals never create or destroy OPEN; the margins are never paid out. After every step the contract holds exactly the escrows plus
// the credits plus the unpaid contributor pools, every account's balance matches a model of
// the rules, and the token's total supply is unchanged.
import assert from 'node:assert/strict'
import { test } from 'uvu'
import type { Address, Hex, LocalAccount } from 'viem'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { openTokenAbi } from '../../src/chain/artifacts/index.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { type SignedVoucher, signVoucher } from '../../src/chain/eip712.ts'
import { buildSumTree, type SumTree } from '../../src/chain/merkle.ts'
import { splitPayment } from '../../src/chain/shares.ts'
import { seededRng } from '../../src/common/random.ts'

const OPEN = 10n ** 18n
const STEPS = Number(process.env.CHAIN_PROPERTY_STEPS ?? 120)
const SEEDS = [1, 2, 3]
const adapters: Hex[] = [`0x${'a1'.repeat(32)}`, `0x${'a2'.repeat(32)}`]
const datanetId: Hex = `0x${'dd'.repeat(32)}`

const rng = seededRng

let chain: LocalChain
// a fresh chain per seed, so that each sequence starts from known state
test.before.each(async () => {
  chain = await startLocalChain({ accounts: 10, withdrawalDelaySec: 3600, mintPerAccount: 1000n * OPEN })
})
test.after.each(async () => {
  await chain?.stop()
})

for (const seed of SEEDS) {
  test(`seed ${seed}: ${STEPS} random steps conserve every token`, async () => {
    const r = rng(seed)
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!
    const amount = (max: bigint) => (BigInt(Math.floor(r() * 1e9)) * max) / 1_000_000_000n + 1n
    const acc = chain.accounts
    const treasury = acc[0]!.address
    const owner = acc[1]!
    const nodes = [acc[2]!, acc[3]!]
    const clients = [acc[4]!, acc[5]!, acc[6]!]
    const contributors = [acc[7]!, acc[8]!, acc[9]!]
    const cl = new Map<Address, ChainClient>(
      acc.map((a) => [a.address, new ChainClient({ ...chain, account: a })])
    )
    const as = (a: LocalAccount) => cl.get(a.address)!
    const reader = as(acc[0]!)
    const supply = await reader.publicClient.readContract({
      address: chain.addresses.token,
      abi: openTokenAbi,
      functionName: 'totalSupply'
    })
    await as(owner).createDatanet(datanetId, `0x${'00'.repeat(32)}`)
    for (const a of adapters)
      await as(owner).registerAdapter({
        adapterId: a,
        modelHash: `0x${'01'.repeat(32)}`,
        feePer1kTokens: 1n,
        // the datanet its contributor pool may go to (H5)
        datanets: [{ id: datanetId, weightBps: 10_000 }]
      })

    // the model: what the rules say each balance must be
    // escrow is per (client, node): keyed `${client}|${node}`
    const escrow = new Map<string, bigint>()
    const ek = (c: Address, n: Address) => `${c}|${n}`
    const credits = new Map<Address, bigint>()
    const tokens = new Map<Address, bigint>()
    for (const c of clients)
      for (const n of nodes)
        escrow.set(ek(c.address, n.address), (await reader.escrowOf(c.address, n.address)).balance)
    for (const a of acc) {
      const [c, t] = await Promise.all([reader.creditsOf(a.address), reader.tokenBalance(a.address)])
      credits.set(a.address, c)
      tokens.set(a.address, t)
    }
    const add = <K>(m: Map<K, bigint>, k: K, d: bigint) => m.set(k, (m.get(k) ?? 0n) + d)
    const held = await reader.tokenBalance(chain.addresses.settlement)
    const startHeld = held - [...escrow.values(), ...credits.values()].reduce((s, x) => s + x, 0n)
    let poolsUnpaid = startHeld // pools of earlier seeds that were never fully withdrawn
    const channels = new Map<string, { latest?: SignedVoucher; owed: bigint; claimed: bigint }>()
    const pools: { id: bigint; tree: SumTree; paid: Set<number> }[] = []
    const counts: Record<string, number> = {}

    for (let step = 0; step < STEPS; step++) {
      const action = pick([
        'deposit',
        'voucher',
        'voucher',
        'claim',
        'claim',
        'withdraw',
        'credits',
        'contribution'
      ])
      counts[action] = (counts[action] ?? 0) + 1
      if (action === 'deposit') {
        const c = pick(clients)
        const n = pick(nodes)
        const a = amount(5n * OPEN)
        await as(c).deposit(a, { node: n.address })
        add(escrow, ek(c.address, n.address), a)
        add(tokens, c.address, -a)
      } else if (action === 'voucher') {
        const c = pick(clients)
        const n = pick(nodes)
        const adapterId = pick(adapters)
        const key = `${c.address}|${n.address}|${adapterId}`
        const ch = channels.get(key) ?? { owed: 0n, claimed: 0n }
        const prev = ch.latest?.cumulativeAmount ?? 0n
        // a job: the receipt's amountDue (sometimes more than the escrow holds, so that claims get
        // refused too) under a voucher signed for what was owed plus a worst case above it
        ch.owed += amount(2n * OPEN)
        const max = ch.owed + amount(OPEN)
        ch.latest = await signVoucher(c, reader.domain, {
          node: n.address,
          adapterId,
          cumulativeAmount: max > prev ? max : prev
        })
        channels.set(key, ch)
      } else if (action === 'claim') {
        const n = pick(nodes)
        const mine = [...channels.entries()].filter(
          ([k, ch]) => k.includes(n.address) && ch.latest && ch.owed > ch.claimed
        )
        if (mine.length === 0) continue
        const batch = mine
          .filter(() => r() < 0.7)
          .sort(([, a], [, b]) => (a.latest!.adapterId < b.latest!.adapterId ? -1 : 1))
        if (batch.length === 0) continue
        // what each entry claims: the owed total, or now and then (a faulty or greedy node) more
        // than the client signed for
        const claims = batch.map(([, ch]) => ({
          ch,
          amount: r() < 0.2 ? ch.latest!.cumulativeAmount + 1n : ch.owed
        }))
        // the expected outcome, entry by entry, as the contract applies them: a bad entry is
        // refused (with its reason) and the others are paid
        const esc = new Map(escrow)
        const expectRejected: { index: number; reason: string }[] = []
        let pool = 0n
        const splits = []
        for (const [index, { ch, amount: a }] of claims.entries()) {
          const inc = a - ch.claimed
          const key = ek(ch.latest!.client, n.address)
          const bal = esc.get(key) ?? 0n
          if (a > ch.latest!.cumulativeAmount) expectRejected.push({ index, reason: 'AboveSignedMaximum' })
          else if (inc > bal) expectRejected.push({ index, reason: 'InsufficientEscrow' })
          else {
            esc.set(key, bal - inc)
            const s = splitPayment(inc)
            pool += s.pool
            splits.push({ ch, inc, amount: a, s })
          }
        }
        const attribute = pool > 0n && r() < 0.8
        const leaves = contributors.map((c, i) => ({
          account: c.address,
          amount: i === 0 ? pool - (pool / 3n) * 2n : pool / 3n
        }))
        const tree = attribute ? buildSumTree(leaves.filter((l) => l.amount > 0n)) : undefined
        {
          const res = await as(n).claim(
            claims.map((x) => ({ voucher: x.ch.latest!, amount: x.amount })),
            tree ? [{ datanetId, root: tree.root, total: tree.total }] : []
          )
          assert.deepEqual(res.rejected, expectRejected, 'the refused entries, by index and reason')
          for (const x of expectRejected)
            counts[`refused ${x.reason}`] = (counts[`refused ${x.reason}`] ?? 0) + 1
          for (const { ch, inc, amount: a, s } of splits) {
            add(escrow, ek(ch.latest!.client, n.address), -inc)
            ch.claimed = a
            add(credits, n.address, s.node)
            add(credits, owner.address, s.owner)
            add(credits, treasury, s.protocol)
          }
          if (tree) {
            pools.push({ id: res.poolIds[0]!, tree, paid: new Set() })
            poolsUnpaid += pool
          } else add(credits, treasury, pool)
        }
      } else if (action === 'withdraw') {
        const c = pick(clients)
        const n = pick(nodes)
        const bal = escrow.get(ek(c.address, n.address)) ?? 0n
        if (bal === 0n) continue
        await as(c).requestWithdrawal(n.address)
        await chain.increaseTime(3601)
        let a = amount(bal)
        if (a > bal) a = bal
        await as(c).withdraw(n.address, a)
        await as(c).cancelWithdrawal(n.address)
        add(escrow, ek(c.address, n.address), -a)
        add(tokens, c.address, a)
      } else if (action === 'credits') {
        const who = pick([...nodes, owner, acc[0]!])
        const c = credits.get(who.address)!
        if (c === 0n) continue
        await as(who).withdrawCredits()
        credits.set(who.address, 0n)
        add(tokens, who.address, c)
      } else if (action === 'contribution') {
        const open = pools.filter((p) => p.paid.size < p.tree.leaves.length)
        if (open.length === 0) continue
        const p = pick(open)
        const i = pick(p.tree.leaves.map((_, j) => j).filter((j) => !p.paid.has(j)))
        const leaf = p.tree.leaves[i]!
        await as(pick(nodes)).withdrawContribution({
          poolId: p.id,
          index: i,
          account: leaf.account,
          amount: leaf.amount,
          proof: p.tree.proof(i)
        })
        p.paid.add(i)
        poolsUnpaid -= leaf.amount
        add(tokens, leaf.account, leaf.amount)
      }

      const settlementHeld = await reader.tokenBalance(chain.addresses.settlement)
      const owed = [...escrow.values(), ...credits.values()].reduce((s, x) => s + x, 0n) + poolsUnpaid
      assert.equal(
        settlementHeld,
        owed,
        `step ${step} (${action}): contract holds ${settlementHeld}, owes ${owed}`
      )
      for (const c of clients)
        for (const n of nodes)
          assert.equal(
            (await reader.escrowOf(c.address, n.address)).balance,
            escrow.get(ek(c.address, n.address)),
            `escrow of ${c.address} at ${n.address} after ${action}`
          )
      for (const a of acc) {
        assert.equal(
          await reader.creditsOf(a.address),
          credits.get(a.address),
          `credits of ${a.address} after ${action}`
        )
        assert.equal(
          await reader.tokenBalance(a.address),
          tokens.get(a.address),
          `tokens of ${a.address} after ${action}`
        )
      }
    }
    const total =
      [...tokens.values()].reduce((s, x) => s + x, 0n) +
      (await reader.tokenBalance(chain.addresses.settlement))
    assert.equal(total, supply)
    assert.equal(
      await reader.publicClient.readContract({
        address: chain.addresses.token,
        abi: openTokenAbi,
        functionName: 'totalSupply'
      }),
      supply
    )
    assert.ok((counts.claim ?? 0) > 5, 'enough claims ran')
    assert.ok(
      (counts['refused InsufficientEscrow'] ?? 0) > 0,
      `some claims were refused for the escrow: ${JSON.stringify(counts)}`
    )
    assert.ok(
      (counts['refused AboveSignedMaximum'] ?? 0) > 0,
      `some claims were refused above the signed maximum: ${JSON.stringify(counts)}`
    )
    // the margins signed above what jobs cost stayed in the escrows: nothing claimed exceeds owed
    for (const ch of channels.values()) assert.ok(ch.claimed <= ch.owed)
  })
}

test.run()
