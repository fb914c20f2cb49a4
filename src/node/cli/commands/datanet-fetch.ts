// `openlora datanet fetch ID@VERSION --from PEER…`: the running node of the data dir copies a
// published datanet version from a peer over /openlora/datanet/1.0.0 (docs/ATTRIBUTION.md),
// checking every contribution, root and chunk, and against trusted roots (--root, or the chain
// with --chain/--rpc) where given. Progress: a bar with the chunk bytes copied, rate and ETA on a
// terminal (src/node/cli/progress.ts); with --json, progress lines and then the result.
import type { Hex } from '../../../crypto/hash.ts'
import { adminRequest } from '../../admin.ts'
import { type Command, UsageError } from '../../cli/command.ts'
import { formatBytes, withFetchProgress } from '../../cli/progress.ts'
import { chainOptions, clientFromFlags } from './chain-options.ts'
import { rootsFromChain } from './datanet-chain.ts'
import { configFromFlags, configOptions } from './shared.ts'

const TARGET = /^(0x[0-9a-fA-F]{64})@(\d+)$/
const ROOT = /^(\d+)=(0x[0-9a-fA-F]{64})$/

export const datanetFetchCommand: Command = {
  name: 'datanet fetch',
  summary:
    'copy a published datanet version from a peer into the running node (checked against trusted roots)',
  positionals: 'ID@VERSION',
  options: {
    ...configOptions,
    from: {
      type: 'string',
      multiple: true,
      description:
        'a peer to copy from: multiaddr with /p2p/ID, or a peer id the node knows (none: holders found through the DHT)',
      valueName: 'PEER'
    },
    root: {
      type: 'string',
      multiple: true,
      description:
        'trusted root VERSION=ROOT, one per version 1..V; default: the roots on-chain with --chain/--rpc, else the node reads its own chain; without any the node refuses unless --unverified',
      valueName: 'ROOT'
    },
    unverified: {
      type: 'boolean',
      description: 'copy without a trusted root: the peer decides what the datanet contains'
    },
    ...chainOptions,
    json: {
      type: 'boolean',
      description: 'print JSON: {"event":"progress",…} lines, then one {"event":"done",…} line'
    }
  },
  async run({ values, positionals }) {
    const m = positionals.length === 1 ? TARGET.exec(positionals[0]!) : null
    if (!m) throw new UsageError('give one datanet as ID@VERSION (ID: 0x + 64 hex)')
    const id = m[1]!.toLowerCase() as Hex
    const version = Number(m[2])
    const from = (values.from as string[] | undefined) ?? []
    // no --from: the node asks the DHT who provides that version
    const roots: Record<number, Hex> = {}
    for (const r of (values.root as string[] | undefined) ?? []) {
      const rm = ROOT.exec(r)
      if (!rm) throw new UsageError(`--root takes VERSION=ROOT, got "${r}"`)
      roots[Number(rm[1])] = rm[2]!.toLowerCase() as Hex
    }
    if (
      Object.keys(roots).length === 0 &&
      (typeof values.chain === 'string' || typeof values.rpc === 'string')
    ) {
      const client = await clientFromFlags(values, false)
      const wanted = Array.from({ length: version }, (_, i) => ({ id, version: i + 1 }))
      for (const r of await rootsFromChain(client, wanted)) roots[r.version] = r.root
      if (roots[version] === undefined)
        throw new UsageError(`datanet ${id} has no version ${version} on-chain; nothing to trust`)
    }
    const config = configFromFlags(values)
    const json = values.json === true
    const res = await withFetchProgress(`datanet ${id.slice(0, 10)}…@${version}`, { json }, (onProgress) =>
      adminRequest<{
        id: Hex
        version: number
        root: Hex
        contributions: number
        trustedRoots: number
        rootsFrom: 'request' | 'chain' | 'none'
        /** chunk bytes copied (0: this node held them all) */
        bytes: number
      }>(
        config.dataDir,
        '/datanets/fetch',
        600_000,
        { id, version, from, roots, unverified: values.unverified === true },
        onProgress
      )
    )
    if (json) {
      console.log(JSON.stringify({ event: 'done', ...res }))
      return 0
    }
    console.log(
      `fetched datanet ${res.id} version ${res.version}: ${res.contributions} contributions (${formatBytes(res.bytes)} copied), root ${res.root}` +
        (res.rootsFrom === 'none'
          ? ' (UNVERIFIED: the peer chose what it contains; checked for consistency only)'
          : ` (matches ${res.trustedRoots} trusted roots from the ${res.rootsFrom === 'chain' ? "node's chain" : 'command line'})`)
    )
    return 0
  }
}
