// `POST /adapters/fetch` on the admin endpoint: what `openlora adapter fetch CID` asks a running
// node (its adapter stores are the node's; their LevelDB is locked). The node fetches the adapter
// from the peers named, else from those whose adverts list it, else from the DHT's providers,
// into the store of the model named (default the first served), through the same AdapterExchange
// that fetches for jobs (CID checks, peer scores, metrics). Progress (bytes received of the
// adapter's size, per peer) streams to a caller that asked for it (src/node/admin.ts).
import { OpenLoraError } from '../../common/errors.ts'
import { messageOf, parseWith, z } from '../../common/schema.ts'
import type { NodeComponents } from '../../common/service.ts'
import { cidString, parseCid } from '../../crypto/cid.ts'
import type { ServingStack } from '../../serving/stack.ts'
import { peerIdsOf } from '../shared/peer-list.ts'
import { AdapterFetchError } from './errors.ts'
import type { AdapterExchange, FetchProgress } from './exchange.ts'

class AdapterFetchRequestError extends OpenLoraError<'BAD_REQUEST'> {}
const bad = (message: string) => new AdapterFetchRequestError('BAD_REQUEST', message)

/** How long the node looks for providers in the DHT when no peer was named and none advertises it. */
const PROVIDER_LOOKUP_MS = 10_000
/** Peers tried at most (as many as a request may name). */
const MAX_PEERS = 16

/** The body of POST /adapters/fetch. */
export const FetchAdapterBodySchema = z.strictObject({
  cid: cidString(128),
  /** peer ids or multiaddrs with /p2p/ID; absent or empty: advert holders, else DHT providers */
  from: z.array(z.string().min(1).max(512)).max(MAX_PEERS).optional(),
  /** a served model's id or checkpoint directory (default the first) */
  model: z.string().min(1).max(4096).optional()
})

/** The answer: `added` false when the store already held it (nothing fetched, `bytes` its size). */
export interface AdapterFetchResult {
  cid: string
  model: string
  added: boolean
  /** the peer that sent it, null when it was already here or another fetch of it was running */
  peer: string | null
  bytes: number
  seconds: number
}

/** Holders of `cid`: peers whose adverts list it, else the DHT's provider records. */
async function holdersOf(components: NodeComponents, cid: string): Promise<string[]> {
  const advertised = components.peerTable.query({ adapter: cid }).map((m) => m.peerId)
  if (advertised.length > 0) return advertised.slice(0, MAX_PEERS)
  const out: string[] = []
  try {
    for await (const p of components.libp2p.contentRouting.findProviders(parseCid(cid), {
      signal: AbortSignal.timeout(PROVIDER_LOOKUP_MS)
    })) {
      if (p.id.equals(components.identity.peerId)) continue
      out.push(p.id.toString())
      if (out.length >= MAX_PEERS) break
    }
  } catch (err) {
    if (out.length === 0)
      throw new AdapterFetchError(
        'ADAPTER_NOT_FOUND',
        `no peer named, none advertises adapter ${cid}, and the DHT found no provider: ${(err as Error).message}`
      )
  }
  if (out.length === 0)
    throw new AdapterFetchError(
      'ADAPTER_NOT_FOUND',
      `no peer named, none advertises adapter ${cid}, and the DHT found no provider; name one with --from`
    )
  return out
}

/** Registers POST /adapters/fetch on the node's admin endpoint. */
export function addAdapterFetchAction(
  components: NodeComponents,
  exchange: AdapterExchange,
  serving: () => ServingStack | undefined
): void {
  components.admin.action('/adapters/fetch', async (body, ctx) => {
    const b = parseWith(FetchAdapterBodySchema, body, { at: 'body', error: (i) => bad(messageOf(i)) })
    const stack = serving()
    if (!stack) throw new AdapterFetchError('ADAPTER_NOT_FOUND', 'this node has no adapter store')
    const model = stack.modelIdFor(b.model)
    const store = stack.store(model)!
    const t0 = performance.now()
    const seconds = () => Math.round(performance.now() - t0) / 1000
    const here = await store.entry(b.cid)
    if (here)
      return { cid: b.cid, model, added: false, peer: null, bytes: here.sizeBytes, seconds: seconds() }
    const from =
      b.from === undefined || b.from.length === 0
        ? await holdersOf(components, b.cid)
        : await peerIdsOf(components.libp2p, b.from, {
            bad,
            // a typed refusal (the caller named a peer that does not answer), not a node failure
            unreachable: (m) => new AdapterFetchError('ADAPTER_NOT_FOUND', m)
          })
    let last: FetchProgress | undefined
    await exchange.fetch(b.cid, from, {
      model,
      onProgress: (p) => {
        last = p
        ctx.progress({ ...p })
      }
    })
    const bytes = last?.total ?? (await store.entry(b.cid))?.sizeBytes ?? 0
    const result: AdapterFetchResult = {
      cid: b.cid,
      model,
      added: true,
      peer: last?.peer ?? null,
      bytes,
      seconds: seconds()
    }
    return result
  })
}
