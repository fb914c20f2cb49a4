// The read half of ChainClient and its plumbing: one viem public client (and wallet client when
// an account is given) per endpoint; reads wrapped in ChainCallError; writes simulated first, so a
// revert is reported with the contract's reason before any gas is spent, then awaited.
import {
  type Account,
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
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
import type { ChainDomain } from './eip712.ts'
import { chainFor } from './endpoint.ts'
import { ChainCallError, ChainConfigError } from './errors.ts'

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
  /** entries the contract refused (VoucherRejected), unpaid; the others were paid */
  rejected: { index: number; reason: string }[]
}

export type Wallet = WalletClient<Transport, Chain, Account>

export class ChainClientBase {
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

  /** The latest block's number: pin reads that must agree with each other to it. */
  async blockNumber(): Promise<bigint> {
    return this.read('block number', () => this.publicClient.getBlockNumber({ cacheTime: 0 }))
  }

  /** The client's escrow at `node` (only that node's claims spend it), at `blockNumber` if given. */
  async escrowOf(
    client: Address,
    node: Address,
    blockNumber?: bigint
  ): Promise<{ balance: bigint; unlockAt: bigint }> {
    const [balance, unlockAt] = await this.read('escrow balance', () =>
      this.publicClient.readContract({
        address: this.addresses.settlement,
        abi: settlementAbi,
        functionName: 'escrowOf',
        args: [client, node],
        ...(blockNumber === undefined ? {} : { blockNumber })
      })
    )
    return { balance, unlockAt }
  }

  async claimedOf(client: Address, node: Address, adapterId: Hex, blockNumber?: bigint): Promise<bigint> {
    return this.read('channel claimed amount', () =>
      this.publicClient.readContract({
        address: this.addresses.settlement,
        abi: settlementAbi,
        functionName: 'claimedOf',
        args: [client, node, adapterId],
        ...(blockNumber === undefined ? {} : { blockNumber })
      })
    )
  }

  /**
   * A channel's claimed amount and the client's escrow at its node, both at one block: read
   * apart, a claim mined between them makes the pair describe no state the chain was ever in.
   */
  async channelState(
    client: Address,
    node: Address,
    adapterId: Hex
  ): Promise<{ block: bigint; claimed: bigint; escrow: { balance: bigint; unlockAt: bigint } }> {
    const block = await this.blockNumber()
    const [claimed, escrow] = await Promise.all([
      this.claimedOf(client, node, adapterId, block),
      this.escrowOf(client, node, block)
    ])
    return { block, claimed, escrow }
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

  /** Seconds between a client's withdrawal request and its withdrawal (Settlement, immutable). */
  async withdrawalDelay(): Promise<bigint> {
    return this.read('withdrawal delay', () =>
      this.publicClient.readContract({
        address: this.addresses.settlement,
        abi: settlementAbi,
        functionName: 'withdrawalDelay'
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

  // ------------------------------------------------------------ plumbing

  protected async read<T>(action: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      throw new ChainCallError(action, err)
    }
  }

  protected async write(
    action: string,
    address: Address,
    abi: readonly unknown[],
    functionName: string,
    args: readonly unknown[],
    data: Record<string, unknown> = {},
    /** simulate against the pending block: a call that needs an earlier block's commit (H7) */
    opts: { pending?: boolean } = {}
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
        account: wallet.account,
        ...(opts.pending ? { blockTag: 'pending' } : {})
      } as Parameters<PublicClient['simulateContract']>[0])
      const hash = await wallet.writeContract(request as Parameters<Wallet['writeContract']>[0])
      const receipt = await this.publicClient.waitForTransactionReceipt({ hash })
      if (receipt.status !== 'success') throw new Error(`transaction ${hash} reverted`)
      return { hash, gasUsed: receipt.gasUsed, receipt }
    } catch (err) {
      throw new ChainCallError(action, err, data)
    }
  }
}
