// Merkle sum tree of contributor amounts, the attribution a node reports with a claim. Every node
// carries the sum of the leaves under it and the hash commits to it, so the root fixes the total
// and Settlement.withdrawContribution can check a proof ends at the pool's root AND total.
//   leaf   = (keccak256(abi.encode(account, amount)), amount)
//   parent = (keccak256(abi.encode(lHash, lSum, rHash, rSum)), lSum + rSum)
// Leaves are one per account, sorted by address; the tree is padded to a power of two with
// (0x0…0, 0) nodes. A proof lists the siblings bottom-up; the leaf index gives the sides.
// A pool's tree may be bound to a commitment (H5: the receipts it was planned from): the root is
// then parent(top, (binding, 0)), one more level whose right side holds no tokens, so the contract
// checks proofs as before (one sibling more) and the on-chain commitment fixes the binding too.
import { type Address, encodeAbiParameters, getAddress, type Hex, keccak256 } from 'viem'
import { InvalidParametersError } from '../common/errors.ts'
import type { SumNode } from './client.ts'

export interface Leaf {
  account: Address
  amount: bigint
}

export interface SumTree {
  root: Hex
  total: bigint
  leaves: Leaf[]
  proof(index: number): SumNode[]
  indexOf(account: Address): number
}

const ZERO: SumNode = { hash: `0x${'00'.repeat(32)}`, sum: 0n }
/** the contract accepts proofs up to 32 deep */
export const MAX_LEAVES = 2 ** 32

export function leafHash(account: Address, amount: bigint): Hex {
  return keccak256(encodeAbiParameters([{ type: 'address' }, { type: 'uint256' }], [account, amount]))
}

function parent(l: SumNode, r: SumNode): SumNode {
  return {
    hash: keccak256(
      encodeAbiParameters(
        [{ type: 'bytes32' }, { type: 'uint256' }, { type: 'bytes32' }, { type: 'uint256' }],
        [l.hash, l.sum, r.hash, r.sum]
      )
    ),
    sum: l.sum + r.sum
  }
}

/**
 * Builds the tree over amounts per account (duplicates are added up, zero amounts dropped);
 * `binding`: a hash the root commits to (a right sibling of the top with sum 0).
 */
export function buildSumTree(amounts: Iterable<Leaf>, binding?: Hex): SumTree {
  const byAccount = new Map<Address, bigint>()
  for (const { account, amount } of amounts) {
    if (amount < 0n) throw new InvalidParametersError('leaf amounts must not be negative', { account })
    const a = getAddress(account)
    byAccount.set(a, (byAccount.get(a) ?? 0n) + amount)
  }
  const leaves = [...byAccount.entries()]
    .filter(([, amount]) => amount > 0n)
    .sort(([a], [b]) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1))
    .map(([account, amount]) => ({ account, amount }))
  if (leaves.length === 0) throw new InvalidParametersError('a sum tree needs at least one non-zero leaf')
  let width = 1
  while (width < leaves.length) width *= 2
  const levels: SumNode[][] = [leaves.map((l) => ({ hash: leafHash(l.account, l.amount), sum: l.amount }))]
  while (levels[0]!.length < width) levels[0]!.push(ZERO)
  while (levels[levels.length - 1]!.length > 1) {
    const below = levels[levels.length - 1]!
    const up: SumNode[] = []
    for (let i = 0; i < below.length; i += 2) up.push(parent(below[i]!, below[i + 1]!))
    levels.push(up)
  }
  if (binding !== undefined) levels.push([parent(levels[levels.length - 1]![0]!, { hash: binding, sum: 0n })])
  const top = levels[levels.length - 1]![0]!
  const index = new Map(leaves.map((l, i) => [l.account, i]))
  return {
    root: top.hash,
    total: top.sum,
    leaves,
    indexOf: (account) => index.get(getAddress(account)) ?? -1,
    proof(i) {
      if (!Number.isInteger(i) || i < 0 || i >= leaves.length)
        throw new InvalidParametersError(`leaf index ${i} out of range 0..${leaves.length - 1}`)
      const out: SumNode[] = []
      let idx = i
      for (let level = 0; level < levels.length - 1; level++) {
        // the binding level has one node: its sibling is the binding
        out.push(levels[level]![idx ^ 1] ?? { hash: binding!, sum: 0n })
        idx >>= 1
      }
      return out
    }
  }
}

/** Recomputes what the contract checks; true when the proof ends at (root, total). */
export function verifySumProof(
  root: Hex,
  total: bigint,
  index: number,
  leaf: Leaf,
  proof: readonly SumNode[]
): boolean {
  let node: SumNode = { hash: leafHash(getAddress(leaf.account), leaf.amount), sum: leaf.amount }
  let idx = index
  for (const sib of proof) {
    node = (idx & 1) === 0 ? parent(node, sib) : parent(sib, node)
    idx >>= 1
  }
  return idx === 0 && node.hash === root && node.sum === total
}
