// Reads of Settlement's event history: which pools a node's claims funded (to recover pool ids
// after a crash) and what the chain paid a node per voucher (rewards). `fromBlock` bounds the
// search on long-lived networks; 0 suits local chains.
import type { Address, Hex } from 'viem'
import { settlementAbi } from './artifacts/index.ts'
import type { ChainClient } from './client.ts'
import { ChainCallError } from './errors.ts'

export interface PoolFundedEvent {
  poolId: bigint
  datanetId: Hex
  root: Hex
  total: bigint
  txHash: Hex
}

export interface VoucherClaimedEvent {
  client: Address
  adapterId: Hex
  /** the channel's cumulative amount paid after this claim (what the node claimed, ≤ the voucher) */
  claimed: bigint
  paid: bigint
}

export async function poolsFundedBy(
  chain: ChainClient,
  node: Address,
  fromBlock = 0n
): Promise<PoolFundedEvent[]> {
  try {
    const logs = await chain.publicClient.getContractEvents({
      address: chain.addresses.settlement,
      abi: settlementAbi,
      eventName: 'PoolFunded',
      args: { node },
      fromBlock
    })
    return logs.map((l) => ({
      poolId: l.args.poolId!,
      datanetId: l.args.datanetId!,
      root: l.args.root!,
      total: l.args.total!,
      txHash: l.transactionHash
    }))
  } catch (err) {
    throw new ChainCallError('pool events', err)
  }
}

export async function vouchersClaimedBy(
  chain: ChainClient,
  node: Address,
  fromBlock = 0n
): Promise<VoucherClaimedEvent[]> {
  try {
    const logs = await chain.publicClient.getContractEvents({
      address: chain.addresses.settlement,
      abi: settlementAbi,
      eventName: 'VoucherClaimed',
      args: { node },
      fromBlock
    })
    return logs.map((l) => ({
      client: l.args.client!,
      adapterId: l.args.adapterId!,
      claimed: l.args.claimed!,
      paid: l.args.paid!
    }))
  } catch (err) {
    throw new ChainCallError('voucher events', err)
  }
}
