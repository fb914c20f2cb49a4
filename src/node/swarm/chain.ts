// The swarm's shared chain: one anvil with the contracts deployed, then everything the demo needs
// on it: the demo datanet and its version root (DatanetRegistry), the K demo adapters with that
// datanet as provenance (AdapterRegistry), gas for every node operator and the client's escrow.
// Roles are fixed dev accounts: 0 deploys and is the treasury, 1 is the client, 2 and 3 own the
// adapters (alternating), 4 owns the datanet. Contributors are fresh addresses that hold nothing,
// so their final token balance is exactly what the pools paid them.
import { type Address, getAddress, type Hex } from 'viem'
import { type LocalChain, startLocalChain } from '../../chain/anvil.ts'
import { ChainClient } from '../../chain/client.ts'
import type { ChainEndpoint } from '../../chain/config.ts'
import type { Logger } from '../../common/log.ts'
import { cidDigest } from '../../crypto/cid.ts'
import { sha256Hex, toHex } from '../../crypto/hash.ts'

const OPEN = 10n ** 18n

export interface SwarmChain {
  local: LocalChain
  endpoint: ChainEndpoint
  treasury: Address
  client: ChainClient
  adapterOwners: Address[]
  datanetOwner: Address
  /** the owner of each demo adapter, by CID */
  ownerOf: Map<string, Address>
  deposit: bigint
  stop(): Promise<void>
}

/** Roles by dev account index. */
export const ROLE = { treasury: 0, client: 1, owners: [2, 3], datanetOwner: 4 } as const

/** `host`: where anvil listens (default loopback; the NAT tier's swarm gives its namespaces one) */
export function startAnvil(logger?: Logger, host?: string): Promise<LocalChain> {
  return startLocalChain({ accounts: 5, withdrawalDelaySec: 3600, logger, host })
}

export interface SwarmChainInput {
  adapterCids: string[]
  modelHash: Hex
  datanetId: Hex
  datanetRoot: Hex
  /** informational fee recorded with each adapter (wei per 1k tokens) */
  feePer1kTokens: bigint
  operators: Address[]
  deposit?: bigint
}

/** Registers the demo datanet and adapters, funds the operators and the client's escrow. */
export async function setUpSwarmChain(local: LocalChain, input: SwarmChainInput): Promise<SwarmChain> {
  const endpoint: ChainEndpoint = {
    rpcUrl: local.rpcUrl,
    chainId: local.chainId,
    addresses: local.addresses
  }
  const as = (i: number) => new ChainClient({ ...endpoint, account: local.accounts[i]! })
  const datanetOwner = as(ROLE.datanetOwner)
  await datanetOwner.createDatanet(
    input.datanetId,
    sha256Hex(new TextEncoder().encode('openlora swarm demo datanet'))
  )
  await datanetOwner.appendDatanetVersion(input.datanetId, input.datanetRoot)
  const owners = ROLE.owners.map(as)
  const ownerOf = new Map<string, Address>()
  for (const [k, cid] of input.adapterCids.entries()) {
    const owner = owners[k % owners.length]!
    await owner.registerAdapter({
      adapterId: toHex(cidDigest(cid)),
      modelHash: input.modelHash,
      feePer1kTokens: input.feePer1kTokens,
      datanets: [{ id: input.datanetId, weightBps: 10_000 }]
    })
    ownerOf.set(cid, owner.address)
  }
  for (const op of input.operators) await local.setEthBalance(op, 10n ** 20n)
  const client = as(ROLE.client)
  // escrow is per (client, node): the client funds each operator with the same amount
  const perNode = input.deposit ?? 1_000n * OPEN
  for (const op of input.operators) await client.deposit(perNode, { node: op })
  const deposit = perNode * BigInt(input.operators.length)
  return {
    local,
    endpoint,
    treasury: getAddress(local.accounts[ROLE.treasury]!.address),
    client,
    adapterOwners: owners.map((o) => o.address),
    datanetOwner: datanetOwner.address,
    ownerOf,
    deposit,
    stop: () => local.stop()
  }
}
