// Admin `POST /training/datanet`: what `openlora train --datanet ID[@V]` asks the running node of
// its data dir for. The node's LevelDB is locked by the node, so the command cannot read the
// datanet itself: the node makes sure it holds the version (copied from peers when missing:
// the datanet exchange's `ensure`, progress streamed to the command's bar) and answers the rows a
// training run takes and the provenance its record names (datanet-data.ts).
import { OpenLoraError } from '../../common/errors.ts'
import { messageOf, parseWith, z } from '../../common/schema.ts'
import type { NodeComponents } from '../../common/service.ts'
import type { Hex } from '../../crypto/hash.ts'
import { DatanetFetchError } from '../datanet-exchange/errors.ts'
import { peerIdsOf } from '../shared/peer-list.ts'
import { datanetRows } from './datanet-data.ts'

class TrainingDataError extends OpenLoraError<'BAD_REQUEST' | 'LIMIT_EXCEEDED' | 'DATANET_NOT_FOUND'> {}

/** Answers are one admin line (≤ 16 MiB, src/node/admin.ts); the rows must leave room for the rest. */
export const MAX_ADMIN_ROWS_BYTES = 15 * 2 ** 20

const DatanetBodySchema = z.strictObject({
  id: z.string().regex(/^0x[0-9a-f]{64}$/, 'a datanet id (0x + 64 lowercase hex)'),
  /** absent: the latest version held, else the latest on the node's chain */
  version: z.int().min(1).max(0xffffffff).optional(),
  /** peers to copy from (peer ids or multiaddrs); absent: the requester's usual candidates */
  from: z.array(z.string().max(512)).max(16).optional(),
  roots: z
    .record(
      z.string().regex(/^\d+$/, 'a version number'),
      z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'a root (0x + 64 hex)')
    )
    .optional(),
  unverified: z.boolean().optional()
})

export function addTrainingDatanetAction(components: NodeComponents): void {
  components.admin.action('/training/datanet', async (body, ctx) => {
    const b = parseWith(DatanetBodySchema, body, {
      at: 'body',
      error: (i) => new TrainingDataError('BAD_REQUEST', messageOf(i))
    })
    const store = components.services.attribution?.store
    if (!store)
      throw new TrainingDataError(
        'DATANET_NOT_FOUND',
        'this node runs no attribution service, so it holds no datanets'
      )
    const id = b.id as Hex
    let version = b.version
    let fetched = { fetched: false, rootsFrom: 'held', bytes: 0 }
    const exchange = components.services.datanetExchange
    if (exchange) {
      const from = b.from?.length
        ? await peerIdsOf(components.libp2p, b.from, {
            bad: (m) => new TrainingDataError('BAD_REQUEST', m),
            unreachable: (m) => new DatanetFetchError('DATANET_NOT_FOUND', m)
          })
        : undefined
      const roots: Record<number, Hex> = {}
      for (const [v, r] of Object.entries(b.roots ?? {})) roots[Number(v)] = r.toLowerCase() as Hex
      const e = await exchange.ensure(id, version, {
        ...(from ? { from } : {}),
        roots,
        unverified: b.unverified === true,
        onProgress: (p) => ctx.progress({ ...p })
      })
      version = e.version
      fetched = { fetched: e.fetched, rootsFrom: e.rootsFrom, bytes: e.bytes }
    }
    const { rows, source } = await datanetRows(store, id, version)
    const size = Buffer.byteLength(JSON.stringify(rows))
    if (size > MAX_ADMIN_ROWS_BYTES)
      throw new TrainingDataError(
        'LIMIT_EXCEEDED',
        `datanet ${id}@${source.version} is ${(size / 2 ** 20).toFixed(1)} MiB of text, over the ${MAX_ADMIN_ROWS_BYTES / 2 ** 20} MiB a running node hands to \`openlora train\`; stop the node and run the command again (it then reads the data dir itself)`
      )
    return { rows, source, ...fetched }
  })
}
