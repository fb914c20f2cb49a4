// Published contributor pools (M1, docs/THREATS.md): every pool a node funded, with its leaves, as
// one JSON file (`<dataDir>/pools.json`, rewritten after each claim that funds pools), so that a
// contributor can withdraw without the node's cooperation: anyone holding the file rebuilds each
// tree, checks it against the pool's on-chain commitment and submits the proofs.
import { rename, writeFile } from 'node:fs/promises'
import { type Address, encodeAbiParameters, getAddress, type Hex, keccak256 } from 'viem'
import { anyAddress, decimalString, messageOf, parseWith, z } from '../common/schema.ts'
import type { ChainClient } from './client.ts'
import type { ContributionProof } from './contributions.ts'
import type { ChainDomain } from './eip712.ts'
import { ChainConfigError } from './errors.ts'
import { buildSumTree } from './merkle.ts'
import type { PoolRun, VoucherStore } from './store.ts'

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
    /** H5: what the root is bound to, and the runs and signed receipts the leaves follow from */
    binding?: Hex
    runs?: PoolRun[]
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
      leaves: p.leaves,
      ...(p.binding ? { binding: p.binding } : {}),
      ...(p.runs ? { runs: p.runs } : {})
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

/** a pools file holds at most this many pools and leaves in all (what a contributor reads) */
export const MAX_PUBLISHED_LEAVES = 1_000_000
/** ~200 bytes a leaf in JSON: a larger file is not a pools file */
export const MAX_PUBLISHED_FILE_BYTES = MAX_PUBLISHED_LEAVES * 200

const hex32 = z
  .string()
  .regex(/^0x[0-9a-fA-F]{64}$/)
  .describe('0x + 64 hex')
  .transform((h) => h.toLowerCase() as Hex)

export const PublishedPoolSchema = z.strictObject({
  poolId: decimalString,
  datanetId: hex32,
  root: hex32,
  total: decimalString,
  leaves: z
    .array(
      z.strictObject({
        account: anyAddress.transform((a) => getAddress(a)),
        amount: decimalString
      })
    )
    .max(MAX_PUBLISHED_LEAVES),
  binding: hex32.optional(),
  runs: z
    .array(
      z.strictObject({
        adapterId: hex32,
        budget: decimalString,
        // a receipt is checked in full (schema, signature) by src/protocols/infer/pool-binding.ts
        receipts: z
          .array(z.strictObject({ digest: hex32, receipt: z.unknown().optional() }))
          .max(MAX_PUBLISHED_LEAVES)
      })
    )
    .max(64)
    .optional()
})

/** A pools file (or one page of one served over the datanet protocol), read from anywhere; the
 * leaf limit counts published receipts too. */
export const PublishedPoolsSchema = z
  .strictObject({
    v: z.literal(1),
    chainId: z.int().min(1).max(Number.MAX_SAFE_INTEGER),
    settlement: anyAddress.transform((a) => getAddress(a)),
    pools: z.array(PublishedPoolSchema)
  })
  .superRefine((o, ctx) => {
    const leaves = o.pools.reduce(
      (n, p) => n + p.leaves.length + (p.runs ?? []).reduce((k, r) => k + r.receipts.length, 0),
      0
    )
    if (leaves > MAX_PUBLISHED_LEAVES)
      ctx.addIssue({ code: 'custom', path: ['pools'], message: `more than ${MAX_PUBLISHED_LEAVES} leaves` })
  })

/** Schema check of a pools file read from anywhere: throws ChainConfigError naming the field. */
export function parsePublishedPools(x: unknown): PublishedPools {
  return parseWith(PublishedPoolsSchema, x, {
    at: 'pools file',
    error: (i) => new ChainConfigError(`pools file: ${messageOf(i)}`)
  })
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
    const tree = buildSumTree(
      p.leaves.map((l) => ({ account: l.account, amount: BigInt(l.amount) })),
      p.binding
    )
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
