// Contributors' side of the datanet pools: the node keeps every pool it funded (leaves included)
// in its VoucherStore; proofsFor() turns them into the (poolId, index, amount, proof) a contributor
// submits to Settlement.withdrawContribution. The node can serve these (admin endpoint, a file) or
// anyone holding the leaves can rebuild them: the tree is deterministic (src/chain/merkle.ts).
import { type Address, getAddress } from 'viem'
import type { ChainClient, SumNode } from './client.ts'
import { buildSumTree } from './merkle.ts'
import type { VoucherStore } from './store.ts'

export interface ContributionProof {
  poolId: bigint
  datanetId: `0x${string}`
  index: number
  account: Address
  amount: bigint
  proof: SumNode[]
}

/** Every funded pool (with a known pool id) in which `account` has a leaf. */
export async function proofsFor(store: VoucherStore, account: Address): Promise<ContributionProof[]> {
  const who = getAddress(account)
  const out: ContributionProof[] = []
  for (const p of await store.allPools()) {
    if (p.poolId == null || !p.leaves.some((l) => getAddress(l.account) === who)) continue
    const tree = buildSumTree(
      p.leaves.map((l) => ({ account: l.account, amount: BigInt(l.amount) })),
      p.binding
    )
    if (tree.root !== p.root) continue // a record that does not rebuild to its root is never sent
    const index = tree.indexOf(who)
    out.push({
      poolId: BigInt(p.poolId),
      datanetId: p.datanetId,
      index,
      account: who,
      amount: tree.leaves[index]!.amount,
      proof: tree.proof(index)
    })
  }
  return out.sort((a, b) => (a.poolId < b.poolId ? -1 : 1))
}

/** Submits every proof of `account` not yet withdrawn; returns the total paid. */
export async function withdrawContributions(
  chain: ChainClient,
  store: VoucherStore,
  account: Address
): Promise<bigint> {
  let paid = 0n
  for (const p of await proofsFor(store, account)) {
    if (await chain.isContributionWithdrawn(p.poolId, p.index)) continue
    await chain.withdrawContribution(p)
    paid += p.amount
  }
  return paid
}
