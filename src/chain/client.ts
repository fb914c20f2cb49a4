// One viem client per chain endpoint and account, with one method per action: typed parameters,
// receipts awaited, and every failure wrapped in ChainCallError with the viem error as cause (its
// decoded custom error name in `.revert`). Writes are simulated first so a revert is reported
// with the contract's reason before any gas is spent.
import {
  type Account,
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  decodeEventLog,
  type Hex,
  http,
  type LocalAccount,
  type PublicClient,
  type TransactionReceipt,
  type Transport,
  type WalletClient
} from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { adapterRegistryAbi, datanetRegistryAbi, openTokenAbi, settlementAbi } from './artifacts/index.ts'
import type { ChainAddresses, ChainEndpoint } from './config.ts'
import { type ChainDomain, compactSignature, type SignedVoucher } from './eip712.ts'
import { chainFor } from './endpoint.ts'
import { ChainCallError, ChainConfigError } from './errors.ts'

export { chainFor, resolveEndpoint } from './endpoint.ts'

export interface ChainClientInit extends ChainEndpoint {
  /** the signer for writes: a viem local account or a 0x private key; reads work without one */
  account?: LocalAccount | Hex
  /** how often receipts are polled; 50 ms suits anvil's instant mining, raise it for real networks */
  pollingIntervalMs?: number
}

export interface Attribution {
  datanetId: Hex
  root: Hex
  total: bigint
}

export interface SumNode {
  hash: Hex
  sum: bigint
}

export interface TxResult {
  hash: Hex
  gasUsed: bigint
  receipt: TransactionReceipt
}

export interface ClaimResult extends TxResult {
  total: bigint
  /** pool ids created for the attributions, in the order given */
  poolIds: bigint[]
}

type Wallet = WalletClient<Transport, Chain, Account>

export class ChainClient {
  readonly publicClient: PublicClient
  readonly wallet: Wallet | undefined
  readonly account: LocalAccount | undefined
  readonly addresses: ChainAddresses
  readonly chainId: number
  readonly domain: ChainDomain

  constructor(init: ChainClientInit) {
    const chain = chainFor(init.chainId, init.rpcUrl)
    const transport = http(init.rpcUrl)
    const pollingInterval = init.pollingIntervalMs ?? 50
    this.publicClient = createPublicClient({ chain, transport, pollingInterval }) as PublicClient
    this.account = typeof init.account === 'string' ? privateKeyToAccount(init.account) : init.account
    this.wallet = this.account
      ? createWalletClient({ chain, transport, account: this.account, pollingInterval })
      : undefined
    this.addresses = init.addresses
    this.chainId = init.chainId
    this.domain = { chainId: init.chainId, settlement: init.addresses.settlement }
  }

  get address(): Address {
    if (!this.account)
      throw new ChainConfigError('this chain client has no account; pass a private key to sign transactions')
    return this.account.address
  }

  // ------------------------------------------------------------ reads

  async tokenBalance(owner: Address): Promise<bigint> {
    return this.read('token balance', () =>
      this.publicClient.readContract({
        address: this.addresses.token,
        abi: openTokenAbi,
        functionName: 'balanceOf',
        args: [owner]
      })
    )
  }

  async escrowOf(client: Address): Promise<{ balance: bigint; unlockAt: bigint }> {
    const [balance, unlockAt] = await this.read('escrow balance', () =>
      this.publicClient.readContract({
        address: this.addresses.settlement,
        abi: settlementAbi,
        functionName: 'escrowOf',
        args: [client]
      })
    )
    return { balance, unlockAt }
  }

  async claimedOf(client: Address, node: Address, adapterId: Hex): Promise<bigint> {
    return this.read('channel claimed amount', () =>
      this.publicClient.readContract({
        address: this.addresses.settlement,
        abi: settlementAbi,
        functionName: 'claimedOf',
        args: [client, node, adapterId]
      })
    )
  }

  /** Claimed amounts of many channels (keys from channelKey()) in one call. */
  async claimedOfMany(keys: readonly Hex[]): Promise<readonly bigint[]> {
    if (keys.length === 0) return []
    return this.read('channel claimed amounts', () =>
      this.publicClient.readContract({
        address: this.addresses.settlement,
        abi: settlementAbi,
        functionName: 'claimedOfMany',
        args: [keys]
      })
    )
  }

  async creditsOf(account: Address): Promise<bigint> {
    return this.read('credits', () =>
      this.publicClient.readContract({
        address: this.addresses.settlement,
        abi: settlementAbi,
        functionName: 'credits',
        args: [account]
      })
    )
  }

  /** keccak256(abi.encode(root, total)) of a funded pool; zero when there is no such pool. */
  async poolCommitment(poolId: bigint): Promise<Hex> {
    return this.read('pool', () =>
      this.publicClient.readContract({
        address: this.addresses.settlement,
        abi: settlementAbi,
        functionName: 'poolCommitment',
        args: [poolId]
      })
    )
  }

  async poolCount(): Promise<bigint> {
    return this.read('pool count', () =>
      this.publicClient.readContract({
        address: this.addresses.settlement,
        abi: settlementAbi,
        functionName: 'poolCount'
      })
    )
  }

  async isContributionWithdrawn(poolId: bigint, index: number): Promise<boolean> {
    return this.read('contribution withdrawn', () =>
      this.publicClient.readContract({
        address: this.addresses.settlement,
        abi: settlementAbi,
        functionName: 'isContributionWithdrawn',
        args: [poolId, BigInt(index)]
      })
    )
  }

  async adapterOwner(adapterId: Hex): Promise<Address> {
    return this.read('adapter owner', () =>
      this.publicClient.readContract({
        address: this.addresses.adapterRegistry,
        abi: adapterRegistryAbi,
        functionName: 'ownerOf',
        args: [adapterId]
      })
    )
  }

  async datanetExists(datanetId: Hex): Promise<boolean> {
    return this.read('datanet exists', () =>
      this.publicClient.readContract({
        address: this.addresses.datanetRegistry,
        abi: datanetRegistryAbi,
        functionName: 'exists',
        args: [datanetId]
      })
    )
  }

  async treasury(): Promise<Address> {
    return this.read('treasury', () =>
      this.publicClient.readContract({
        address: this.addresses.settlement,
        abi: settlementAbi,
        functionName: 'treasury'
      })
    )
  }

  // ------------------------------------------------------------ writes: token and escrow

  /** Mints OPEN (local OpenToken only; the caller must own the token). */
  async mint(to: Address, amount: bigint): Promise<TxResult> {
    return this.write('mint', this.addresses.token, openTokenAbi, 'mint', [to, amount])
  }

  async transferToken(to: Address, amount: bigint): Promise<TxResult> {
    return this.write('transfer', this.addresses.token, openTokenAbi, 'transfer', [to, amount])
  }

  /** Approves the Settlement contract when needed, then deposits into the caller's escrow. */
  async deposit(amount: bigint, forClient?: Address): Promise<TxResult> {
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
    if (forClient)
      return this.write('deposit', this.addresses.settlement, settlementAbi, 'depositFor', [
        forClient,
        amount
      ])
    return this.write('deposit', this.addresses.settlement, settlementAbi, 'deposit', [amount])
  }

  async requestWithdrawal(): Promise<TxResult> {
    return this.write('request withdrawal', this.addresses.settlement, settlementAbi, 'requestWithdrawal', [])
  }

  async cancelWithdrawal(): Promise<TxResult> {
    return this.write('cancel withdrawal', this.addresses.settlement, settlementAbi, 'cancelWithdrawal', [])
  }

  async withdraw(amount: bigint, to?: Address): Promise<TxResult> {
    return this.write('withdraw', this.addresses.settlement, settlementAbi, 'withdraw', [
      amount,
      to ?? this.address
    ])
  }

  // ------------------------------------------------------------ writes: registries

  async registerAdapter(p: {
    adapterId: Hex
    modelHash: Hex
    feePer1kTokens: bigint
    datanets?: { id: Hex; weightBps: number }[]
  }): Promise<TxResult> {
    const d = p.datanets ?? []
    return this.write('register adapter', this.addresses.adapterRegistry, adapterRegistryAbi, 'register', [
      p.adapterId,
      p.modelHash,
      p.feePer1kTokens,
      d.map((x) => x.id),
      d.map((x) => x.weightBps)
    ])
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

  async createDatanet(datanetId: Hex, metadataHash: Hex): Promise<TxResult> {
    return this.write('create datanet', this.addresses.datanetRegistry, datanetRegistryAbi, 'create', [
      datanetId,
      metadataHash
    ])
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

  /** Claims vouchers whose node is this client's account. Sort by adapterId for the cheapest claim. */
  async claim(
    vouchers: readonly SignedVoucher[],
    attributions: readonly Attribution[] = []
  ): Promise<ClaimResult> {
    const args = [
      vouchers.map((v) => {
        const { r, vs } = compactSignature(v.signature)
        return { client: v.client, adapterId: v.adapterId, cumulativeAmount: v.cumulativeAmount, r, vs }
      }),
      attributions.map((a) => ({ datanetId: a.datanetId, root: a.root, total: a.total }))
    ] as const
    const res = await this.write('claim', this.addresses.settlement, settlementAbi, 'claim', args, {
      vouchers: vouchers.length
    })
    let total = 0n
    const poolIds: bigint[] = []
    for (const log of res.receipt.logs) {
      if (log.address.toLowerCase() !== this.addresses.settlement.toLowerCase()) continue
      try {
        const ev = decodeEventLog({ abi: settlementAbi, data: log.data, topics: log.topics })
        if (ev.eventName === 'Claimed') total = ev.args.total
        if (ev.eventName === 'PoolFunded') poolIds.push(ev.args.poolId)
      } catch {}
    }
    return { ...res, total, poolIds }
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

  // ------------------------------------------------------------ plumbing

  private async read<T>(action: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      throw new ChainCallError(action, err)
    }
  }

  private async write(
    action: string,
    address: Address,
    abi: readonly unknown[],
    functionName: string,
    args: readonly unknown[],
    details: Record<string, unknown> = {}
  ): Promise<TxResult> {
    const wallet = this.wallet
    if (!wallet)
      throw new ChainConfigError(`${action} needs an account; pass a private key to the chain client`)
    try {
      const { request } = await this.publicClient.simulateContract({
        address,
        abi,
        functionName,
        args,
        account: wallet.account
      } as Parameters<PublicClient['simulateContract']>[0])
      const hash = await wallet.writeContract(request as Parameters<Wallet['writeContract']>[0])
      const receipt = await this.publicClient.waitForTransactionReceipt({ hash })
      if (receipt.status !== 'success') throw new Error(`transaction ${hash} reverted`)
      return { hash, gasUsed: receipt.gasUsed, receipt }
    } catch (err) {
      throw new ChainCallError(action, err, details)
    }
  }
}

export function createChainClient(init: ChainClientInit): ChainClient {
  return new ChainClient(init)
}
