// Published contributor pools (M1, docs/THREATS.md): every pool a node funded, with its leaves, as
// one JSON file (`<dataDir>/pools.json`, rewritten after each claim that funds pools), so that a
// contributor can withdraw without the node's cooperation: anyone holding the file rebuilds each
// tree, checks it against the pool's on-chain commitment and submits the proofs.
import { rename, writeFile } from 'node:fs/promises'
import { type Address, encodeAbiParameters, getAddress, type Hex, isAddress, keccak256 } from 'viem'
import type { ChainClient } from './client.ts'
import type { ContributionProof } from './contributions.ts'
import type { ChainDomain } from './eip712.ts'
import { ChainConfigError } from './errors.ts'
import { buildSumTree } from './merkle.ts'
import type { VoucherStore } from './store.ts'

export interface PublishedPools {
  v: 1
  chainId: number
  settlement: Address
  pools: {
    poolId: string
    datanetId: Hex
    root: Hex
    total: string
    leaves: { account: Address; amount: string }[]
  }[]
}

/** The funded pools (those with a pool id) of a store, as the file publishes them. */
export async function publishedPools(store: VoucherStore, domain: ChainDomain): Promise<PublishedPools> {
  const pools = (await store.allPools())
    .filter((p) => p.poolId != null)
    .map((p) => ({
      poolId: p.poolId!,
      datanetId: p.datanetId,
      root: p.root,
      total: p.total,
      leaves: p.leaves
    }))
    .sort((a, b) => (BigInt(a.poolId) < BigInt(b.poolId) ? -1 : 1))
  return { v: 1, chainId: domain.chainId, settlement: domain.settlement, pools }
}

/** Writes the file atomically (a reader never sees half of it); it holds no secret. */
export async function writePublishedPools(file: string, p: PublishedPools): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, `${JSON.stringify(p, null, 1)}\n`, { mode: 0o644 })
  await rename(tmp, file)
}

const HEX32 = /^0x[0-9a-fA-F]{64}$/
const DEC = /^(0|[1-9][0-9]{0,77})$/
/** a pools file holds at most this many pools and leaves in all (what a contributor reads) */
export const MAX_PUBLISHED_LEAVES = 1_000_000

/** Schema check of a pools file read from anywhere: throws ChainConfigError naming the field. */
export function parsePublishedPools(x: unknown): PublishedPools {
  const bad = (what: string): never => {
    throw new ChainConfigError(`pools file: ${what}`)
  }
  if (x == null || typeof x !== 'object') return bad('must be a JSON object')
  const o = x as Record<string, unknown>
  if (o.v !== 1) bad('v must be 1')
  if (!Number.isSafeInteger(o.chainId) || (o.chainId as number) <= 0)
    bad('chainId must be a positive integer')
  if (typeof o.settlement !== 'string' || !isAddress(o.settlement, { strict: false }))
    bad('settlement must be an address')
  if (!Array.isArray(o.pools)) return bad('pools must be an array')
  let leaves = 0
  const pools = o.pools.map((p: Record<string, unknown>, i: number) => {
    const at = `pools[${i}]`
    if (p == null || typeof p !== 'object') bad(`${at} must be an object`)
    if (typeof p.poolId !== 'string' || !DEC.test(p.poolId)) bad(`${at}.poolId must be a decimal string`)
    if (typeof p.datanetId !== 'string' || !HEX32.test(p.datanetId))
      bad(`${at}.datanetId must be 0x + 64 hex`)
    if (typeof p.root !== 'string' || !HEX32.test(p.root)) bad(`${at}.root must be 0x + 64 hex`)
    if (typeof p.total !== 'string' || !DEC.test(p.total)) bad(`${at}.total must be a decimal string`)
    if (!Array.isArray(p.leaves)) bad(`${at}.leaves must be an array`)
    leaves += (p.leaves as unknown[]).length
    if (leaves > MAX_PUBLISHED_LEAVES) bad(`more than ${MAX_PUBLISHED_LEAVES} leaves`)
    return {
      poolId: p.poolId as string,
      datanetId: (p.datanetId as string).toLowerCase() as Hex,
      root: (p.root as string).toLowerCase() as Hex,
      total: p.total as string,
      leaves: (p.leaves as Record<string, unknown>[]).map((l, j) => {
        if (l == null || typeof l.account !== 'string' || !isAddress(l.account, { strict: false }))
          bad(`${at}.leaves[${j}].account must be an address`)
        if (typeof l.amount !== 'string' || !DEC.test(l.amount))
          bad(`${at}.leaves[${j}].amount must be a decimal string`)
        return { account: getAddress(l.account as string), amount: l.amount as string }
      })
    }
  })
  return { v: 1, chainId: o.chainId as number, settlement: getAddress(o.settlement as string), pools }
}

/** keccak256(abi.encode(root, total)): Settlement.poolCommitment of a funded pool. */
export function poolCommitmentOf(root: Hex, total: bigint): Hex {
  return keccak256(encodeAbiParameters([{ type: 'bytes32' }, { type: 'uint256' }], [root, total]))
}

/**
 * Withdraws every leaf of `account` in the published pools that is not paid yet, after checking
 * the file is for this chain and contract and each rebuilt tree matches the pool's on-chain
 * commitment (a pool that does not is skipped and counted). Anyone may submit; tokens go to
 * `account`.
 */
export async function withdrawFromPublished(
  chain: ChainClient,
  file: PublishedPools,
  account: Address
): Promise<{ paid: bigint; withdrawals: number; mismatched: number }> {
  if (
    file.chainId !== chain.domain.chainId ||
    getAddress(file.settlement) !== getAddress(chain.domain.settlement)
  )
    throw new ChainConfigError(
      `the pools file is for chain ${file.chainId} / Settlement ${file.settlement}, not ${chain.domain.chainId} / ${chain.domain.settlement}`
    )
  const who = getAddress(account)
  let paid = 0n
  let withdrawals = 0
  let mismatched = 0
  for (const p of file.pools) {
    if (!p.leaves.some((l) => l.account === who)) continue
    const tree = buildSumTree(p.leaves.map((l) => ({ account: l.account, amount: BigInt(l.amount) })))
    const poolId = BigInt(p.poolId)
    if (
      tree.root !== p.root ||
      (await chain.poolCommitment(poolId)) !== poolCommitmentOf(tree.root, tree.total)
    ) {
      mismatched++
      continue
    }
    const index = tree.indexOf(who)
    if (await chain.isContributionWithdrawn(poolId, index)) continue
    const proof: ContributionProof = {
      poolId,
      datanetId: p.datanetId,
      index,
      account: who,
      amount: tree.leaves[index]!.amount,
      proof: tree.proof(index)
    }
    await chain.withdrawContribution(proof)
    paid += proof.amount
    withdrawals++
  }
  return { paid, withdrawals, mismatched }
}
