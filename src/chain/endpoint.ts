// Chain endpoints: a viem Chain for any chain id, and an endpoint completed from an RPC URL and
// the Settlement address alone (chain id from the RPC, the other addresses from Settlement).
import { type Address, type Chain, createPublicClient, defineChain, http } from 'viem'
import { settlementAbi } from './artifacts/index.ts'
import type { ChainEndpoint } from './config.ts'
import { ChainCallError, ChainConfigError, redactUrl } from './errors.ts'

export function chainFor(chainId: number, rpcUrl: string): Chain {
  return defineChain({
    id: chainId,
    name: `chain-${chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } }
  })
}

/** Completes an endpoint from an RPC URL and the Settlement address alone: the chain id from the
 * node, the other addresses from Settlement's immutables. */
export async function resolveEndpoint(
  rpcUrl: string,
  settlement: Address,
  chainId?: number
): Promise<ChainEndpoint> {
  try {
    const probe = createPublicClient({ transport: http(rpcUrl) })
    const id = await probe.getChainId()
    if (chainId != null && chainId !== id)
      throw new ChainConfigError(
        `the RPC at ${redactUrl(rpcUrl)} serves chain ${id}, not the configured ${chainId}`
      )
    const read = (functionName: 'token' | 'adapterRegistry' | 'datanetRegistry') =>
      probe.readContract({ address: settlement, abi: settlementAbi, functionName })
    const [token, adapterRegistry, datanetRegistry] = await Promise.all([
      read('token'),
      read('adapterRegistry'),
      read('datanetRegistry')
    ])
    return { rpcUrl, chainId: id, addresses: { token, adapterRegistry, datanetRegistry, settlement } }
  } catch (err) {
    if (err instanceof ChainConfigError) throw err
    throw new ChainCallError('resolve chain endpoint', err, { rpcUrl: redactUrl(rpcUrl), settlement })
  }
}
