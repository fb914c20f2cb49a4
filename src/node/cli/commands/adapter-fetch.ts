// `openlora adapter fetch CID [--from PEER…]`: the running node of the data dir fetches an adapter
// by CID from peers into its cold store (POST /adapters/fetch, src/protocols/adapter-exchange/
// admin-fetch.ts), as it would for a job, with every byte checked against the CID. Like
// `datanet fetch` it needs the node: its stores are locked by it, and it holds the connections.
// Progress: a bar with bytes, rate and ETA on a terminal (src/node/cli/progress.ts).
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseCid } from '../../../crypto/cid.ts'
import type { AdapterFetchResult } from '../../../protocols/adapter-exchange/admin-fetch.ts'
import { adminRequest } from '../../admin.ts'
import { type Command, UsageError } from '../../cli/command.ts'
import { formatBytes, withFetchProgress } from '../../cli/progress.ts'
import { configFromFlags, configOptions } from './shared.ts'

/**
 * The node bounds the work itself (120 s per peer, at most 16 peers, 10 s of DHT lookup); the
 * command waits a little longer than all of that so it never gives up on a fetch still moving.
 */
const ADAPTER_FETCH_WAIT_MS = 35 * 60_000

export const adapterFetchCommand: Command = {
  name: 'adapter fetch',
  summary: 'fetch an adapter by CID from peers into the running node (checked against the CID)',
  positionals: 'CID',
  options: {
    ...configOptions,
    from: {
      type: 'string',
      multiple: true,
      description:
        'a peer to fetch from: multiaddr with /p2p/ID, or a peer id the node knows (none: peers whose adverts list it, else the DHT)',
      valueName: 'PEER'
    },
    model: {
      type: 'string',
      description:
        "the served base model whose store gets it: id or checkpoint directory (default: the node's first)",
      valueName: 'MODEL'
    },
    json: {
      type: 'boolean',
      description: 'print JSON: {"event":"progress",…} lines, then one {"event":"done",…} line'
    }
  },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('give exactly one adapter CID')
    const cid = positionals[0]!
    try {
      parseCid(cid)
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
    const config = configFromFlags(values)
    const json = values.json === true
    const m = values.model as string | undefined
    // a directory is sent absolute (the node's working directory may differ), else as a model id
    const model = m === undefined ? undefined : existsSync(m) ? resolve(m) : m
    const res = await withFetchProgress(
      `adapter ${cid.slice(0, 12)}…${cid.slice(-6)}`,
      { json },
      (onProgress) =>
        adminRequest<AdapterFetchResult>(
          config.dataDir,
          '/adapters/fetch',
          ADAPTER_FETCH_WAIT_MS,
          {
            cid,
            from: (values.from as string[] | undefined) ?? [],
            ...(model === undefined ? {} : { model })
          },
          onProgress
        )
    )
    if (json) console.log(JSON.stringify({ event: 'done', ...res }))
    else if (!res.added) console.log(`${res.cid} is already in the store of ${res.model}`)
    else
      console.log(
        `fetched ${res.cid} into ${res.model}: ${formatBytes(res.bytes)}${res.peer ? ` from ${res.peer}` : ''} in ${res.seconds.toFixed(1)} s`
      )
    return 0
  }
}
