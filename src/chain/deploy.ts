// Deploys the four contracts in dependency order and returns their addresses. Used by the local
// chain launcher, the tests and the benchmark; on a real network the token already exists.
import type { Account, Address, Chain, PublicClient, Transport, WalletClient } from 'viem'
import {
  adapterRegistryAbi,
  adapterRegistryBytecode,
  datanetRegistryAbi,
  datanetRegistryBytecode,
  openTokenAbi,
  openTokenBytecode,
  settlementAbi,
  settlementBytecode
} from './artifacts/index.ts'
import type { ChainAddresses } from './config.ts'
import { ChainCallError } from './errors.ts'

export interface DeployOptions {
  /** receives the protocol share; the deployer when absent */
  treasury?: Address
  withdrawalDelaySec?: number
  /** an existing OPEN token; a fresh OpenToken owned by the deployer when absent */
  token?: Address
}

export const DEFAULT_WITHDRAWAL_DELAY_SEC = 86_400

export async function deployContracts(
  publicClient: PublicClient,
  wallet: WalletClient<Transport, Chain, Account>,
  opts: DeployOptions = {}
): Promise<ChainAddresses> {
  const deployer = wallet.account.address
  const deploy = async (name: string, abi: readonly unknown[], bytecode: `0x${string}`, args: unknown[]) => {
    try {
      const hash = await wallet.deployContract({ abi, bytecode, args } as Parameters<
        typeof wallet.deployContract
      >[0])
      const r = await publicClient.waitForTransactionReceipt({ hash })
      if (r.status !== 'success' || !r.contractAddress)
        throw new Error(`deployment transaction ${hash} reverted`)
      return r.contractAddress
    } catch (err) {
      throw new ChainCallError(`deploy ${name}`, err)
    }
  }
  const token = opts.token ?? (await deploy('OpenToken', openTokenAbi, openTokenBytecode, [deployer]))
  const adapterRegistry = await deploy('AdapterRegistry', adapterRegistryAbi, adapterRegistryBytecode, [])
  const datanetRegistry = await deploy('DatanetRegistry', datanetRegistryAbi, datanetRegistryBytecode, [])
  const settlement = await deploy('Settlement', settlementAbi, settlementBytecode, [
    token,
    adapterRegistry,
    datanetRegistry,
    opts.treasury ?? deployer,
    BigInt(opts.withdrawalDelaySec ?? DEFAULT_WITHDRAWAL_DELAY_SEC)
  ])
  return { token, adapterRegistry, datanetRegistry, settlement }
}
