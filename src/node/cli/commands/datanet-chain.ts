// Datanets on the chain: `openlora datanet register` records a datanet and every published
// version root in the DatanetRegistry contract (in order, so on-chain version N is local version
// N), and `rootsFromChain` reads the roots a proof is checked against.
import { getAddress } from 'viem'
import type { VersionRoot } from '../../../attribution/types.ts'
import { datanetRegistryAbi } from '../../../chain/artifacts/index.ts'
import type { ChainClient } from '../../../chain/client.ts'
import { encodeCanonical } from '../../../crypto/cbor.ts'
import { type Hex, sha256Hex } from '../../../crypto/hash.ts'
import { type Command, requireString, UsageError } from '../../cli/command.ts'
import { chainOptions, clientFromFlags } from './chain-options.ts'
import { openDatanetStore, print } from './datanet-shared.ts'
import { configFromFlags, configOptions } from './shared.ts'

/** The registry's record of `id` (owner, versions recorded), undefined when it has none. */
export async function datanetOnChain(
  client: ChainClient,
  id: Hex
): Promise<{ owner: string; versions: number } | undefined> {
  if (!(await client.datanetExists(id))) return undefined
  const d = (await client.publicClient.readContract({
    address: client.addresses.datanetRegistry,
    abi: datanetRegistryAbi,
    functionName: 'getDatanet',
    args: [id]
  })) as { owner: string; versions: number }
  return { owner: d.owner, versions: Number(d.versions) }
}

async function rootOnChain(client: ChainClient, id: Hex, version: number): Promise<Hex> {
  return (
    (await client.publicClient.readContract({
      address: client.addresses.datanetRegistry,
      abi: datanetRegistryAbi,
      functionName: 'versionRoot',
      args: [id, version]
    })) as Hex
  ).toLowerCase() as Hex
}

/** Roots recorded on-chain for the (datanet, version) pairs a proof names; unknown ones are left out. */
export async function rootsFromChain(
  client: ChainClient,
  wanted: { id: Hex; version: number }[]
): Promise<VersionRoot[]> {
  const out: VersionRoot[] = []
  for (const w of wanted) {
    const d = await datanetOnChain(client, w.id)
    if (d && w.version >= 1 && w.version <= d.versions)
      out.push({ datanetId: w.id, version: w.version, root: await rootOnChain(client, w.id, w.version) })
  }
  return out
}

const register: Command = {
  name: 'datanet register',
  summary: 'record a datanet and its published version roots in the DatanetRegistry contract',
  options: {
    ...configOptions,
    ...chainOptions,
    datanet: { type: 'string', description: 'datanet id (0x…)', valueName: 'ID' }
  },
  async run({ values }) {
    const id = requireString(values, 'datanet') as Hex
    const client = await clientFromFlags(values, true)
    const s = await openDatanetStore(configFromFlags(values))
    try {
      const dn = await s.store.getDatanet(id)
      const versions = await s.store.versions(dn.id)
      const signer = client.account!.address
      if (getAddress(dn.owner) !== getAddress(signer))
        throw new UsageError(`datanet ${dn.id} is owned by ${dn.owner}; the signing key is ${signer}`)
      let chain = await datanetOnChain(client, dn.id)
      const txs: string[] = []
      if (!chain) {
        // The metadata hash commits to everything describing the datanet, not just its id's inputs.
        const meta = sha256Hex(
          encodeCanonical({
            name: dn.name,
            description: dn.description,
            tags: dn.tags,
            owner: dn.owner,
            createdAt: dn.createdAt
          })
        )
        txs.push((await client.createDatanet(dn.id, meta)).hash)
        chain = { owner: signer, versions: 0 }
      }
      for (const v of versions.slice(0, chain.versions)) {
        const r = await rootOnChain(client, dn.id, v.version)
        if (r !== v.root)
          throw new UsageError(
            `on-chain version ${v.version} has root ${r}, but the local one is ${v.root}; the histories differ`
          )
      }
      for (const v of versions.slice(chain.versions))
        txs.push((await client.appendDatanetVersion(dn.id, v.root)).hash)
      const out = {
        datanet: dn.id,
        versionsOnChain: versions.length,
        appended: versions.length - chain.versions,
        txs
      }
      print(
        values.json === true,
        out,
        () => `datanet ${dn.id}: ${out.versionsOnChain} versions on-chain (${out.appended} appended now)`
      )
      return 0
    } finally {
      await s.close()
    }
  }
}

export const datanetChainCommands: Command[] = [register]
