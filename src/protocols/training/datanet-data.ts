// The rows a training run takes from a datanet version this node holds: one text row per
// contribution (its chunks' bytes joined), and the provenance the training record names (id,
// version, Merkle root, sorted contributor addresses). Shared by `openlora train --datanet` and
// the /openlora/train protocol.
import type { DatanetStore } from '../../attribution/datanet-store.ts'
import type { DatanetSource } from '../../runtime/training/record.ts'

export async function datanetRows(
  store: DatanetStore,
  id: string,
  version?: number
): Promise<{ rows: { text: string }[]; source: DatanetSource }> {
  const dn = await store.getDatanet(id)
  const v = await store.getVersion(dn.id, version ?? dn.latestVersion)
  const contributions = await store.contributions(dn.id, v.count)
  const rows: { text: string }[] = []
  for (const c of contributions) {
    const parts: Uint8Array[] = []
    for (const ref of c.chunks) parts.push(await store.readChunk(ref))
    const text = Buffer.concat(parts).toString('utf8')
    if (text.length > 0) rows.push({ text })
  }
  return {
    rows,
    source: {
      id: dn.id,
      version: v.version,
      root: v.root,
      contributors: [...new Set(contributions.map((c) => c.contributor.toLowerCase()))].sort()
    }
  }
}
