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
    const connected = new Map<string, string>()
    // a peer with both keeps the direct one (hole punching upgraded the relayed connection)
    for (const c of ans.connections) if (connected.get(c.peerId) !== 'direct') connected.set(c.peerId, c.type)
    console.log(
      `self ${ans.self} (${ans.reachability}): ${ans.connections.length} connections, ${ans.table.length} adverts`
    )
    for (const c of ans.connections) console.log(`  ${c.type.padEnd(7)} ${c.direction.padEnd(8)} ${c.addr}`)
    const rows = [
      ['peer', 'conn', 'reach', 'hardware', 'models', 'hot/warm/cold', 'queue', 'free', 'price/1k']
    ]
    for (const p of ans.table) {
      const hw =
        p.hardware.gpus.length > 0
          ? p.hardware.gpus.map((g) => g.name).join('+')
          : `${p.hardware.cpu.cores} cpu`
      rows.push([
        p.peerId,
        connected.get(p.peerId) ?? 'no',
        p.reachability ?? '-',
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
