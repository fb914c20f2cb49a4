// `openlora rewards [ADDRESS]`: a node operator's rewards per adapter: pending (vouchers the node
// holds, read from its data directory when the node is not running), claimed and earned (from the
// chain), and what can be withdrawn now; --withdraw moves the credits to the wallet.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { Level } from 'level'
import { getAddress } from 'viem'
import { rewardsSummary } from '../../../chain/rewards.ts'
import { VoucherStore } from '../../../chain/store.ts'
import { adminRequest } from '../../admin.ts'
import type { Command } from '../../cli/command.ts'
import {
  chainOptions,
  clientFromFlags,
  dataDirOf,
  formatOpen,
  jsonLine,
  subjectAddress
} from './chain-options.ts'

/** Admin answers carry amounts as decimal strings; the summary's amount fields are bigints. */
function reviveBigints(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(reviveBigints)
  if (x && typeof x === 'object')
    return Object.fromEntries(
      Object.entries(x).map(([k, v]) => [
        k,
        typeof v === 'string' && /^\d+$/.test(v) && AMOUNT_KEYS.has(k) ? BigInt(v) : reviveBigints(v)
      ])
    )
  return x
}
const AMOUNT_KEYS = new Set(['pending', 'claimed', 'earned', 'withdrawable'])

/** Opens the node's LevelDB read-side when it is free; a running node holds its lock. */
async function openStore(
  dataDir: string
): Promise<{ store?: VoucherStore; close(): Promise<void>; note?: string }> {
  const dbDir = join(dataDir, 'db')
  if (!existsSync(dbDir)) return { close: async () => {}, note: `no node database in ${dataDir}` }
  const db = new Level<string, Uint8Array>(dbDir, { valueEncoding: 'view' })
  try {
    await db.open()
  } catch {
    return {
      close: async () => {},
      note: 'the node is running (its database is locked): pending amounts not shown'
    }
  }
  return { store: new VoucherStore(db.sublevel('chain')), close: () => db.close() }
}

export const rewardsCommand: Command = {
  name: 'rewards',
  summary: "show a node operator's rewards per adapter: pending, claimed, earned, withdrawable",
  positionals: '[ADDRESS]',
  options: {
    ...chainOptions,
    withdraw: { type: 'boolean', description: 'withdraw the credited rewards to the wallet' }
  },
  async run({ values, positionals }) {
    const client = await clientFromFlags(values, values.withdraw === true)
    const who = subjectAddress(client, positionals[0])
    const s = await openStore(dataDirOf(values))
    try {
      let r = await rewardsSummary(client, who, { store: s.store })
      // A running node holds its database: ask it (admin endpoint) for its own pending amounts.
      if (!s.store && positionals[0] === undefined) {
        const live = await adminRequest<Record<string, unknown>>(dataDirOf(values), '/rewards').catch(
          () => undefined
        )
        if (live && typeof live.node === 'string' && getAddress(live.node) === who) {
          r = reviveBigints(live) as unknown as typeof r
          s.note = undefined
        }
      }
      let withdrawn: bigint | undefined
      if (values.withdraw === true && r.withdrawable > 0n) {
        await client.withdrawCredits()
        withdrawn = r.withdrawable
      }
      if (values.json === true) {
        console.log(jsonLine({ ...r, withdrawn, note: s.note }))
        return 0
      }
      console.log(`node ${r.node} (chain ${client.chainId})${s.note ? `\n(${s.note})` : ''}`)
      console.log(
        `${'adapter'.padEnd(68)} ${'pending'.padStart(24)} ${'claimed'.padStart(24)} ${'earned'.padStart(24)}`
      )
      for (const a of r.perAdapter)
        console.log(
          `${a.adapterId.padEnd(68)} ${formatOpen(a.pending).padStart(24)} ${formatOpen(a.claimed).padStart(24)} ${formatOpen(a.earned).padStart(24)}`
        )
      console.log(
        `${'total'.padEnd(68)} ${formatOpen(r.totals.pending).padStart(24)} ${formatOpen(r.totals.claimed).padStart(24)} ${formatOpen(r.totals.earned).padStart(24)}`
      )
      console.log(
        `withdrawable now: ${formatOpen(r.withdrawable)}${withdrawn != null ? ` (withdrawn ${formatOpen(withdrawn)})` : ''}`
      )
      return 0
    } finally {
      await s.close()
    }
  }
}
