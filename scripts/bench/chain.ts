import type { Hex, LocalAccount } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { startLocalChain } from '../../src/chain/anvil.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { type SignedVoucher, signVoucher } from '../../src/chain/eip712.ts'
import { buildSumTree } from '../../src/chain/merkle.ts'

/** a pool tree's binding (H5): any hash; a node's is that of the pool's runs and receipts */
const BINDING = `0x${'b5'.repeat(32)}` as const

import { splitPayment } from '../../src/chain/shares.ts'
import { benchArgs } from './args.ts'
import { benchMachine } from './machine.ts'

const values = benchArgs('npm run bench:chain -- [--quick] [--json]', {
  quick: { type: 'boolean' },
  json: { type: 'boolean' }
})
const OPEN = 10n ** 18n
const SIZES = [1, 10, 100]
const log = (s: string) => {
  if (!values.json) console.log(s)
}

const chain = await startLocalChain({ accounts: 4, withdrawalDelaySec: 3600, logger: undefined })
const results: Record<string, number> = {}
try {
  const [funderAcc, nodeAcc, ownerAcc] = chain.accounts
  const funder = new ChainClient({ ...chain, account: funderAcc! })
  const node = new ChainClient({ ...chain, account: nodeAcc! })
  const owner = new ChainClient({ ...chain, account: ownerAcc! })
  const adapterId: Hex = `0x${'ab'.repeat(32)}`
  const datanetId: Hex = `0x${'dd'.repeat(32)}`
  await owner.createDatanet(datanetId, `0x${'00'.repeat(32)}`)
  // the adapter declares the datanet its contributor pool may go to (H5)
  await owner.registerAdapter({
    adapterId,
    modelHash: `0x${'01'.repeat(32)}`,
    feePer1kTokens: 1000n,
    datanets: [{ id: datanetId, weightBps: 10_000 }]
  })
  const contributors = Array.from({ length: 16 }, () => privateKeyToAccount(generatePrivateKey()).address)

  // clients only sign; the funder deposits for them, so they need no gas money
  const total = SIZES.reduce((a, b) => a + b, 0)
  const clients: LocalAccount[] = Array.from({ length: total }, () =>
    privateKeyToAccount(generatePrivateKey())
  )
  await funder.deposit(BigInt(total) * 100n * OPEN, {
    node: nodeAcc!.address,
    forClient: clients[0]!.address
  })
  for (const c of clients.slice(1))
    await funder.deposit(100n * OPEN, { node: nodeAcc!.address, forClient: c.address })

  const claimGas = async (group: LocalAccount[], cumulative: bigint): Promise<bigint> => {
    const entries: { voucher: SignedVoucher; amount: bigint }[] = []
    for (const c of group)
      entries.push({
        voucher: await signVoucher(c, node.domain, {
          node: nodeAcc!.address,
          adapterId,
          cumulativeAmount: cumulative + OPEN / 2n
        }),
        amount: cumulative
      })
    const increase = cumulative - (cumulative === OPEN ? 0n : OPEN)
    const pool = splitPayment(increase).pool * BigInt(group.length)
    const per = pool / BigInt(contributors.length)
    const tree = buildSumTree(
      contributors.map((account, i) => ({
        account,
        amount: i === 0 ? pool - per * BigInt(contributors.length - 1) : per
      })),
      BINDING
    )
    pool100 = tree.total
    const res = await node.claim(entries, [{ datanetId, root: tree.root, total: tree.total }])
    return res.gasUsed
  }

  let offset = 0
  let lastPool: { poolId: bigint; total: bigint } | undefined
  let pool100 = 0n
  for (const n of SIZES) {
    const group = clients.slice(offset, offset + n)
    offset += n
    const first = await claimGas(group, OPEN)
    const steady = await claimGas(group, 2n * OPEN)
    results[`claim${n}_firstClaim_gasPerVoucher`] = Math.round(Number(first) / n)
    results[`claim${n}_steady_gasPerVoucher`] = Math.round(Number(steady) / n)
    results[`claim${n}_steady_gasTotal`] = Number(steady)
    log(
      `claim of ${n}: first ${Math.round(Number(first) / n)} gas/voucher, steady ${Math.round(Number(steady) / n)} gas/voucher`
    )
    lastPool = { poolId: (await node.poolCount()) - 1n, total: pool100 }
  }

  // one contributor withdrawal from a 16-leaf pool bound to its receipts as a node binds it (H5:
  // proof depth 4 + 1), to an account with no OPEN yet
  const pool = { total: lastPool!.total }
  const per = pool.total / 16n
  const tree = buildSumTree(
    contributors.map((account, i) => ({ account, amount: i === 0 ? pool.total - per * 15n : per })),
    BINDING
  )
  const i = tree.indexOf(contributors[3]!)
  const w = await node.withdrawContribution({
    poolId: lastPool!.poolId,
    index: i,
    account: tree.leaves[i]!.account,
    amount: tree.leaves[i]!.amount,
    proof: tree.proof(i)
  })
  results.contributorWithdrawal_gas = Number(w.gasUsed)
  log(`contributor withdrawal (16 leaves): ${w.gasUsed} gas`)
} finally {
  await chain.stop()
}

const target = 25_000
const v = results.claim100_steady_gasPerVoucher!
const out = {
  bench: 'chain',
  machine: benchMachine({ ort: false, extra: { anvil: '1.7.1' } }),
  config: {
    sizes: SIZES,
    vouchersPerClaim:
      'N distinct clients, one adapter, one datanet attribution of 16 contributors; each entry claims its owed amount under a voucher signed for 0.5 OPEN more',
    cases: 'firstClaim = channel slot zero to non-zero; steady = the same channels claimed again',
    quick: values.quick === true,
    note: 'gas is deterministic; --quick runs the same cases'
  },
  results,
  goals: [{ name: 'gas_per_voucher_claim100', value: v, target: `<= ${target}`, met: v <= target }]
}
if (values.json) console.log(JSON.stringify(out))
else {
  console.table(results)
  console.table(out.goals)
}
