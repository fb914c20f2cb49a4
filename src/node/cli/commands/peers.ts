// `openlora peers`: asks the running node (through its admin endpoint) for its connections and
// the adverts in its PeerTable.

import { adminRequest } from '../../admin.ts'
import type { PeersAnswer } from '../../admin-routes.ts'
import type { Command } from '../../cli/command.ts'
import { configFromFlags, configOptions } from './shared.ts'

export const peersCommand: Command = {
  name: 'peers',
  summary: 'list the connected peers and the adverts a running node holds',
  options: { ...configOptions, json: { type: 'boolean', description: 'print JSON' } },
  async run({ values }) {
    const config = configFromFlags(values)
    const ans = await adminRequest<PeersAnswer>(config.dataDir, '/peers')
    if (values.json === true) {
      console.log(JSON.stringify(ans))
      return 0
    }
    const connected = new Set(ans.connections.map((c) => c.peerId))
    console.log(`self ${ans.self}: ${ans.connections.length} connections, ${ans.table.length} adverts`)
    const rows = [['peer', 'conn', 'hardware', 'models', 'hot/warm/cold', 'queue', 'free', 'price/1k']]
    for (const p of ans.table) {
      const hw =
        p.hardware.gpus.length > 0
          ? p.hardware.gpus.map((g) => g.name).join('+')
          : `${p.hardware.cpu.cores} cpu`
      rows.push([
        p.peerId,
        connected.has(p.peerId) ? 'yes' : 'no',
        hw,
        p.models.map((m) => m.id).join(',') || '-',
        `${p.adapters.hot}/${p.adapters.warm}/${p.adapters.cold}`,
        String(p.queueDepth),
        String(p.freeSlots),
        p.pricePer1kTokens
      ])
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
    for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '))
    return 0
  }
}
