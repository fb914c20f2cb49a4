// One viem client per chain endpoint and account, with one method per action: typed parameters,
// receipts awaited, and every failure wrapped in ChainCallError with the viem error as cause (its
// decoded custom error name in `.revert`). Reads and plumbing live in client-base.ts.
import { type Address, decodeEventLog, encodeAbiParameters, type Hex, keccak256, parseSignature } from 'viem'
import { adapterRegistryAbi, datanetRegistryAbi, openTokenAbi, settlementAbi } from './artifacts/index.ts'
import {
  type Attribution,
  ChainClientBase,
  type ClaimResult,
  type SumNode,
  type TxResult
} from './client-base.ts'
import { compactSignature, type SignedVoucher } from './eip712.ts'
import { ChainConfigError } from './errors.ts'

export type { Attribution, ChainClientInit, ClaimResult, SumNode, TxResult } from './client-base.ts'
export { chainFor, resolveEndpoint } from './endpoint.ts'

/** One entry of a claim: the client's voucher (a signed maximum) and the cumulative amount claimed. */
export interface ClaimEntry {
  voucher: SignedVoucher
  amount: bigint
}

export class ChainClient extends ChainClientBase {
  // ------------------------------------------------------------ writes: token and escrow

  /** Mints OPEN (local OpenToken only; the caller must own the token). */
  async mint(to: Address, amount: bigint): Promise<TxResult> {
    return this.write('mint', this.addresses.token, openTokenAbi, 'mint', [to, amount])
  }

  async transferToken(to: Address, amount: bigint): Promise<TxResult> {
    return this.write('transfer', this.addresses.token, openTokenAbi, 'transfer', [to, amount])
  }

  /**
   * Approves the Settlement contract when needed, then deposits into the caller's (or
   * `forClient`'s) escrow at `node`: only that node's claims spend it (docs/CHAIN.md).
   */
  async deposit(amount: bigint, opts: { node: Address; forClient?: Address }): Promise<TxResult> {
    const allowance = await this.read('allowance', () =>
      this.publicClient.readContract({
        address: this.addresses.token,
        abi: openTokenAbi,
        functionName: 'allowance',
        args: [this.address, this.addresses.settlement]
      })
    )
    if (allowance < amount)
      await this.write('approve', this.addresses.token, openTokenAbi, 'approve', [
        this.addresses.settlement,
        amount
      ])
    if (opts.forClient)
      return this.write('deposit', this.addresses.settlement, settlementAbi, 'depositFor', [
        opts.forClient,
        opts.node,
        amount
      ])
    return this.write('deposit', this.addresses.settlement, settlementAbi, 'deposit', [opts.node, amount])
  }

  /** Approves by EIP-2612 permit and deposits in one transaction (no separate approve). */
  async depositWithPermit(amount: bigint, node: Address, deadlineSec?: bigint): Promise<TxResult> {
    const account = this.account
    if (!account)
      throw new ChainConfigError('deposit needs an account; pass a private key to the chain client')
    const token = this.addresses.token
    const [name, nonce] = await this.read('permit data', () =>
      Promise.all([
        this.publicClient.readContract({ address: token, abi: openTokenAbi, functionName: 'name' }),
        this.publicClient.readContract({
          address: token,
          abi: openTokenAbi,
          functionName: 'nonces',
          args: [account.address]
        })
      ])
    )
    const deadline = deadlineSec ?? BigInt(Math.floor(Date.now() / 1000) + 3600)
    const signature = await account.signTypedData({
      domain: { name, version: '1', chainId: this.chainId, verifyingContract: token },
      types: {
        Permit: [
          { name: 'owner', type: 'address' },
          { name: 'spender', type: 'address' },
          { name: 'value', type: 'uint256' },
          { name: 'nonce', type: 'uint256' },
          { name: 'deadline', type: 'uint256' }
        ]
      },
      primaryType: 'Permit',
      message: { owner: account.address, spender: this.addresses.settlement, value: amount, nonce, deadline }
    })
    const { r, s, v } = parseSignature(signature)
    return this.write('deposit with permit', this.addresses.settlement, settlementAbi, 'depositWithPermit', [
      node,
      amount,
      deadline,
      Number(v ?? 27n),
      r,
      s
    ])
  }

  /** Starts the withdrawal delay of the caller's escrow at `node`. */
  async requestWithdrawal(node: Address): Promise<TxResult> {
    return this.write('request withdrawal', this.addresses.settlement, settlementAbi, 'requestWithdrawal', [
      node
    ])
  }

  async cancelWithdrawal(node: Address): Promise<TxResult> {
    return this.write('cancel withdrawal', this.addresses.settlement, settlementAbi, 'cancelWithdrawal', [
      node
    ])
  }

  async withdraw(node: Address, amount: bigint, to?: Address): Promise<TxResult> {
    return this.write('withdraw', this.addresses.settlement, settlementAbi, 'withdraw', [
      node,
      amount,
      to ?? this.address
    ])
  }

  // ------------------------------------------------------------ writes: registries

  /**
   * Commit–reveal (H7): commits (adapterId, this account) and, once that is mined, registers; a
   * registration whose id leaks from the mempool cannot be front-run. `commit: false` skips the
   * commit (already made with commitAdapter).
   */
  async registerAdapter(p: {
    adapterId: Hex
    modelHash: Hex
    feePer1kTokens: bigint
    datanets?: { id: Hex; weightBps: number }[]
    commit?: boolean
  }): Promise<TxResult> {
    const d = p.datanets ?? []
    if (p.commit !== false) await this.commitAdapter(p.adapterId)
    return this.write(
      'register adapter',
      this.addresses.adapterRegistry,
      adapterRegistryAbi,
      'register',
      [p.adapterId, p.modelHash, p.feePer1kTokens, d.map((x) => x.id), d.map((x) => x.weightBps)],
      {},
      { pending: true }
    )
  }

  async setAdapterFee(adapterId: Hex, feePer1kTokens: bigint): Promise<TxResult> {
    return this.write('set adapter fee', this.addresses.adapterRegistry, adapterRegistryAbi, 'setFee', [
      adapterId,
      feePer1kTokens
    ])
  }

  /** A new version of an adapter this account owns: commit–reveal like a first registration (H7). */
  async publishAdapterVersion(p: {
    previous: Hex
    adapterId: Hex
    modelHash: Hex
    feePer1kTokens: bigint
    datanets?: { id: Hex; weightBps: number }[]
    commit?: boolean
  }): Promise<TxResult> {
    const d = p.datanets ?? []
    if (p.commit !== false) await this.commitAdapter(p.adapterId)
    return this.write(
      'publish adapter version',
      this.addresses.adapterRegistry,
      adapterRegistryAbi,
      'publishVersion',
      [p.previous, p.adapterId, p.modelHash, p.feePer1kTokens, d.map((x) => x.id), d.map((x) => x.weightBps)],
      {},
      { pending: true }
    )
  }

  async getAdapter(adapterId: Hex) {
    const [adapter, datanets, weightsBps] = await this.read('adapter', () =>
      this.publicClient.readContract({
        address: this.addresses.adapterRegistry,
        abi: adapterRegistryAbi,
        functionName: 'getAdapter',
        args: [adapterId]
      })
    )
    return { ...adapter, datanets, weightsBps }
  }

  async transferAdapter(adapterId: Hex, newOwner: Address): Promise<TxResult> {
    return this.write(
      'transfer adapter',
      this.addresses.adapterRegistry,
      adapterRegistryAbi,
      'transferOwnership',
      [adapterId, newOwner]
    )
  }

  /** The first step of registering `adapterId` as this account's. */
  async commitAdapter(adapterId: Hex): Promise<TxResult> {
    return this.write('commit adapter', this.addresses.adapterRegistry, adapterRegistryAbi, 'commit', [
      registrationCommitment(adapterId, this.address)
    ])
  }

  /** The first step of creating `datanetId` as this account's. */
  async commitDatanet(datanetId: Hex): Promise<TxResult> {
    return this.write('commit datanet', this.addresses.datanetRegistry, datanetRegistryAbi, 'commit', [
      registrationCommitment(datanetId, this.address)
    ])
  }

  /** Commit–reveal as registerAdapter (H7). */
  async createDatanet(datanetId: Hex, metadataHash: Hex, opts: { commit?: boolean } = {}): Promise<TxResult> {
    if (opts.commit !== false) await this.commitDatanet(datanetId)
    return this.write(
      'create datanet',
      this.addresses.datanetRegistry,
      datanetRegistryAbi,
      'create',
      [datanetId, metadataHash],
      {},
      { pending: true }
    )
  }

  async transferDatanet(datanetId: Hex, newOwner: Address): Promise<TxResult> {
    return this.write(
      'transfer datanet',
      this.addresses.datanetRegistry,
      datanetRegistryAbi,
      'transferOwnership',
      [datanetId, newOwner]
    )
  }

  async datanetVersionRoot(datanetId: Hex, version: number): Promise<Hex> {
    return this.read('datanet version root', () =>
      this.publicClient.readContract({
        address: this.addresses.datanetRegistry,
        abi: datanetRegistryAbi,
        functionName: 'versionRoot',
        args: [datanetId, version]
      })
    )
  }

  async appendDatanetVersion(datanetId: Hex, root: Hex): Promise<TxResult> {
    return this.write(
      'append datanet version',
      this.addresses.datanetRegistry,
      datanetRegistryAbi,
      'appendVersion',
      [datanetId, root]
    )
  }

  // ------------------------------------------------------------ writes: settlement

  /**
   * Claims vouchers whose node is this client's account. Each entry is `{ voucher, amount }`: the
   * channel's total to be paid (what its receipts owe), at most the voucher's signed maximum; a
   * bare voucher claims its whole maximum. Sort by adapterId for the cheapest claim.
   */
  async claim(
    entries: readonly (ClaimEntry | SignedVoucher)[],
    attributions: readonly Attribution[] = []
  ): Promise<ClaimResult> {
    const args = claimArgs(entries, attributions)
    const res = await this.write('claim', this.addresses.settlement, settlementAbi, 'claim', args, {
      vouchers: entries.length
    })
    let total = 0n
    const poolIds: bigint[] = []
    const rejected: RejectedEntry[] = []
    for (const log of res.receipt.logs) {
      if (log.address.toLowerCase() !== this.addresses.settlement.toLowerCase()) continue
      try {
        const ev = decodeEventLog({ abi: settlementAbi, data: log.data, topics: log.topics })
        if (ev.eventName === 'Claimed') total = ev.args.total
        if (ev.eventName === 'PoolFunded') poolIds.push(ev.args.poolId)
        if (ev.eventName === 'VoucherRejected')
          rejected.push({ index: Number(ev.args.index), reason: rejectionName(ev.args.reason) })
      } catch {}
    }
    return { ...res, total, poolIds, rejected }
  }

  /**
   * What a claim would do now, without sending it: the entries the contract would refuse and why
   * (the Claimer drops them before sending, so the attribution is planned from the paid ones).
   */
  async simulateClaim(
    entries: readonly (ClaimEntry | SignedVoucher)[],
    attributions: readonly Attribution[] = []
  ): Promise<{ total: bigint; rejected: RejectedEntry[] }> {
    const account = this.account
    if (!account) throw new ChainConfigError('claim needs an account; pass a private key to the chain client')
    const { result } = await this.read('simulate claim', () =>
      this.publicClient.simulateContract({
        address: this.addresses.settlement,
        abi: settlementAbi,
        functionName: 'claim',
        args: claimArgs(entries, attributions),
        account
      })
    )
    const [total, reasons] = result
    const rejected: RejectedEntry[] = []
    reasons.forEach((r, index) => {
      if (r !== 0) rejected.push({ index, reason: rejectionName(r) })
    })
    return { total, rejected }
  }

  async withdrawCredits(to?: Address): Promise<TxResult> {
    return this.write('withdraw credits', this.addresses.settlement, settlementAbi, 'withdrawCredits', [
      to ?? this.address
    ])
  }

  /** Anyone may submit a contributor's proof; the tokens go to `account`. */
  async withdrawContribution(p: {
    poolId: bigint
    index: number
    account: Address
    amount: bigint
    proof: readonly SumNode[]
  }): Promise<TxResult> {
    return this.write(
      'withdraw contribution',
      this.addresses.settlement,
      settlementAbi,
      'withdrawContribution',
      [p.poolId, BigInt(p.index), p.account, p.amount, p.proof.map((n) => ({ hash: n.hash, sum: n.sum }))]
    )
  }
}

/** A claim entry the contract refused (Settlement.VoucherRejected), by reason. */
export interface RejectedEntry {
  index: number
  reason: ClaimRejection
}

export type ClaimRejection =
  | 'AboveSignedMaximum'
  | 'InvalidSignature'
  | 'NotIncreasing'
  | 'InsufficientEscrow'
  | 'UnknownAdapter'

const REJECTIONS: readonly ClaimRejection[] = [
  'AboveSignedMaximum',
  'InvalidSignature',
  'NotIncreasing',
  'InsufficientEscrow',
  'UnknownAdapter'
]

/** Settlement's reason codes 1..5 (0 = paid). */
export function rejectionName(code: number): ClaimRejection {
  const name = REJECTIONS[code - 1]
  if (!name) throw new ChainConfigError(`unknown claim rejection code ${code}`)
  return name
}

function claimArgs(entries: readonly (ClaimEntry | SignedVoucher)[], attributions: readonly Attribution[]) {
  return [
    entries.map((e) => {
      const { voucher: v, amount } = 'voucher' in e ? e : { voucher: e, amount: e.cumulativeAmount }
      const { r, vs } = compactSignature(v.signature)
      return {
        client: v.client,
        adapterId: v.adapterId,
        cumulativeAmount: v.cumulativeAmount,
        amount,
        r,
        vs
      }
    }),
    attributions.map((a) => ({ datanetId: a.datanetId, root: a.root, total: a.total }))
  ] as const
}

/** keccak256(abi.encode(id, owner)): what a registry's commit() takes before a registration. */
export function registrationCommitment(id: Hex, owner: Address): Hex {
  return keccak256(encodeAbiParameters([{ type: 'bytes32' }, { type: 'address' }], [id, owner]))
}
