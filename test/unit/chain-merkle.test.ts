// Merkle sum trees, payment splits and the attribution plan a claim reports.
import assert from 'node:assert/strict'
import { test } from 'uvu'
import type { Address, Hex } from 'viem'
import { buildSumTree, verifySumProof } from '../../src/chain/merkle.ts'
import { planAttribution } from '../../src/chain/pool-attribution.ts'
import { splitPayment } from '../../src/chain/shares.ts'

const addr = (i: number) => `0x${i.toString(16).padStart(40, '0')}` as Address

test('every leaf of trees of 1..17 leaves proves against (root, total); tampering fails', () => {
  for (let n = 1; n <= 17; n++) {
    const leaves = Array.from({ length: n }, (_, i) => ({
      account: addr(i + 1),
      amount: BigInt(i * 1000 + 7)
    }))
    const tree = buildSumTree(leaves)
    assert.equal(
      tree.total,
      leaves.reduce((s, l) => s + l.amount, 0n)
    )
    for (let i = 0; i < n; i++) {
      const leaf = tree.leaves[i]!
      const proof = tree.proof(i)
      assert.ok(verifySumProof(tree.root, tree.total, i, leaf, proof), `n=${n} i=${i}`)
      assert.ok(!verifySumProof(tree.root, tree.total, i, { ...leaf, amount: leaf.amount + 1n }, proof))
      assert.ok(!verifySumProof(tree.root, tree.total + 1n, i, leaf, proof))
      if (n > 1) assert.ok(!verifySumProof(tree.root, tree.total, i ^ 1, leaf, proof))
    }
  }
})

test('duplicate accounts are merged, zero amounts dropped, empty trees refused', () => {
  const t = buildSumTree([
    { account: addr(2), amount: 5n },
    { account: addr(1), amount: 0n },
    { account: addr(2), amount: 6n }
  ])
  assert.deepEqual(t.leaves, [{ account: addr(2), amount: 11n }])
  assert.equal(t.indexOf(addr(1)), -1)
  assert.throws(() => buildSumTree([{ account: addr(1), amount: 0n }]), /at least one/)
  assert.throws(() => t.proof(1), /out of range/)
})

test('splitPayment matches the contract’s integer shares and adds up', () => {
  for (const inc of [1n, 19n, 20n, 10_000n, 123_456_789_012_345_678_901n]) {
    const s = splitPayment(inc)
    assert.equal(s.node + s.owner + s.pool + s.protocol, inc)
    assert.equal(s.owner, (inc * 1500n) / 10_000n)
  }
  assert.deepEqual(splitPayment(6n), { node: 6n, owner: 0n, pool: 0n, protocol: 0n })
  assert.deepEqual(splitPayment(19n), { node: 16n, owner: 2n, pool: 1n, protocol: 0n })
})

test('planAttribution: per-datanet trees from receipts, unknown datanets and bare jobs unattributed', () => {
  const d1 = `0x${'d1'.repeat(32)}` as Hex
  const d2 = `0x${'d2'.repeat(32)}` as Hex
  const d3 = `0x${'d3'.repeat(32)}` as Hex
  const receipt = (
    amountDue: bigint,
    datanets: { id: Hex; bp: number }[],
    contributors: { address: Address; bp: number }[]
  ) => ({
    jobId: '0x00' as Hex,
    amountDue: amountDue.toString(),
    owed: '0',
    cumulativeAmount: '0',
    attribution: { datanets, contributors }
  })
  const adapter = `0x${'aa'.repeat(32)}` as Hex
  // the registration declares d1 and d2 at half each, and d3 (unknown on-chain)
  const declared = () => [
    { id: d1, bps: 5000 },
    { id: d2, bps: 5000 },
    { id: d3, bps: 10_000 }
  ]
  const plan = planAttribution(
    [
      {
        adapterId: adapter,
        increase: 1_000_000n,
        receipts: [
          receipt(
            600_000n,
            [
              { id: d1, bp: 5000 },
              { id: d2, bp: 5000 }
            ],
            [
              { address: addr(1), bp: 8000 },
              { address: addr(2), bp: 2000 }
            ]
          ),
          receipt(400_000n, [{ id: d3, bp: 10_000 }], [{ address: addr(3), bp: 10_000 }])
        ]
      },
      { adapterId: adapter, increase: 500_000n, receipts: [] }
    ],
    declared,
    (id) => id !== d3
  )
  assert.equal(plan.poolTotal, 100_000n + 50_000n)
  const attributed = plan.attributions.reduce((s, a) => s + a.total, 0n)
  // one run: its pool (150,000) has budgets of 75,000 for d1 and d2; d3 is unknown on-chain
  assert.equal(attributed, 150_000n)
  assert.deepEqual(
    plan.attributions.map((a) => a.datanetId),
    [d1, d2]
  )
  const d1Tree = plan.pools[0]!.tree
  assert.equal(d1Tree.leaves.find((l) => l.account === addr(1))?.amount, 60_000n)
  assert.equal(d1Tree.leaves.find((l) => l.account === addr(2))?.amount, 15_000n)
  assert.ok(plan.attributions.every((a) => a.total <= plan.poolTotal))
})

test('planAttribution never goes above the contract cap: floors per contributor, dust left out', () => {
  const d1 = `0x${'d1'.repeat(32)}` as Hex
  const d2 = `0x${'d2'.repeat(32)}` as Hex
  const adapter = `0x${'aa'.repeat(32)}` as Hex
  const receipt = (amountDue: bigint) => ({
    jobId: '0x00' as Hex,
    amountDue: amountDue.toString(),
    owed: '0',
    cumulativeAmount: '0',
    attribution: {
      datanets: [
        { id: d1, bp: 5000 },
        { id: d2, bp: 5000 }
      ],
      contributors: [
        { address: addr(1), bp: 7000 },
        { address: addr(2), bp: 3000 }
      ]
    }
  })
  // pool 101: caps 50 and 50; largest remainders used to give d1 51
  const plan = planAttribution(
    [{ adapterId: adapter, increase: 1010n, receipts: [receipt(1010n)] }],
    () => [
      { id: d1, bps: 5000 },
      { id: d2, bps: 5000 }
    ],
    () => true
  )
  assert.equal(plan.poolTotal, 101n)
  assert.deepEqual(
    plan.attributions.map((a) => a.total),
    [50n, 50n]
  )
  // no registration (or the base model): nothing attributed
  const bare = planAttribution(
    [{ adapterId: `0x${'00'.repeat(32)}` as Hex, increase: 1010n, receipts: [receipt(1010n)] }],
    () => [{ id: d1, bps: 10_000 }],
    () => true
  )
  assert.equal(bare.attributions.length, 0)
})

test('a bound tree: its root commits to the binding, every proof still checks, no tokens in the binding', () => {
  const leaves = [1, 2, 3].map((i) => ({ account: addr(i), amount: BigInt(i) * 10n }))
  const binding = `0x${'be'.repeat(32)}` as Hex
  const plain = buildSumTree(leaves)
  const bound = buildSumTree(leaves, binding)
  assert.notEqual(bound.root, plain.root)
  assert.notEqual(bound.root, buildSumTree(leaves, `0x${'bf'.repeat(32)}` as Hex).root)
  assert.equal(bound.total, plain.total)
  for (const [i, l] of bound.leaves.entries()) {
    const proof = bound.proof(i)
    assert.equal(proof.length, plain.proof(i).length + 1)
    assert.ok(verifySumProof(bound.root, bound.total, i, l, proof))
  }
  // one leaf alone: the binding is its only sibling
  const one = buildSumTree([leaves[0]!], binding)
  assert.deepEqual(one.proof(0), [{ hash: binding, sum: 0n }])
  assert.ok(verifySumProof(one.root, one.total, 0, one.leaves[0]!, one.proof(0)))
})

test('planAttribution funds at most 64 datanets a claim, the largest; the rest to the protocol', () => {
  const adapters = Array.from({ length: 5 }, (_, a) => `0x${(a + 1).toString(16).padStart(64, '0')}` as Hex)
  // 5 adapters × 14 datanets = 70 pools; adapter a's run is larger the later it comes
  const ids = (a: number) =>
    Array.from({ length: 14 }, (_, d) => `0x${(100 + a * 14 + d).toString(16).padStart(64, '0')}` as Hex)
  const plan = planAttribution(
    adapters.map((adapterId, a) => ({
      adapterId,
      increase: BigInt(a + 1) * 1_000_000n,
      receipts: [
        {
          jobId: '0x00' as Hex,
          amountDue: '1',
          owed: '0',
          cumulativeAmount: '0',
          attribution: {
            datanets: ids(a).map((id) => ({ id, bp: 1 })),
            contributors: [{ address: addr(1), bp: 10_000 }]
          }
        }
      ]
    })),
    (adapterId) =>
      ids(adapters.indexOf(adapterId)).map((id, d) => ({ id, bps: d === 0 ? 10_000 - 13 * 714 : 714 })),
    () => true
  )
  assert.equal(plan.attributions.length, 64)
  // the 6 dropped are the smallest: adapter 0's (the smallest run)
  const dropped = ids(0).filter((id) => !plan.attributions.some((x) => x.datanetId === id))
  assert.equal(dropped.length, 6)
})

test.run()
