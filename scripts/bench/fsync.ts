// What `chain.syncWrites` costs per paid job: the VoucherStore's two batches of a job (reserve
// before any work, settle before the result goes out) on a real LevelDB on disk, with and without
// `sync: true`, in alternating blocks so the disk's mood hits both alike. A paid job on the node
// does exactly these two batches (plus per-token `delivered` puts, which are never synced: a lost
// count only under-charges the client).
//
//   npm run bench:fsync -- [--quick] [--jobs N] [--dir DIR] [--json]
//
// DIR must be on the disk the node's data dir will use (default: the OS temp dir); a tmpfs makes
// fsync free and the figure meaningless.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { privateKeyToAccount } from 'viem/accounts'
import { signVoucher } from '../../src/chain/eip712.ts'
import { VoucherStore } from '../../src/chain/store.ts'
import { channelKey } from '../../src/chain/vouchers.ts'
import { benchArgs } from './args.ts'
import { benchMachine } from './machine.ts'

const args = benchArgs('npm run bench:fsync -- [--quick] [--jobs N] [--dir DIR] [--json]', {
  quick: { type: 'boolean' },
  jobs: { type: 'string' },
  dir: { type: 'string' },
  json: { type: 'boolean' }
})
const perBlock = Number(args.jobs ?? (args.quick ? 100 : 400))
const blocks = args.quick ? 4 : 8
const base = mkdtempSync(join(args.dir ?? tmpdir(), 'openlora-bench-fsync-'))
const client = privateKeyToAccount(`0x${'11'.repeat(32)}`)
const node = privateKeyToAccount(`0x${'22'.repeat(32)}`).address
const adapterId = `0x${'33'.repeat(32)}` as const
const domain = { chainId: 31337, settlement: `0x${'44'.repeat(20)}` as const }
const channel = channelKey(client.address, node, adapterId)

async function block(store: VoucherStore, from: number, n: number): Promise<number[]> {
  const out: number[] = []
  for (let j = from; j < from + n; j++) {
    // vouchers are signed outside the timed part: the bench measures the store
    const owed = BigInt((await store.getChannel(channel))?.owed ?? '0')
    const v = await signVoucher(client, domain, { node, adapterId, cumulativeAmount: owed + 10n ** 15n })
    const jobId = `0x${j.toString(16).padStart(64, '0')}` as const
    const t0 = performance.now()
    await store.reserve(
      v,
      { jobId, maxAmountDue: 10n ** 15n, promptTokens: 8, pricePer1kTokens: 1000n },
      { onChainClaimed: 0n, escrow: 10n ** 30n }
    )
    await store.settle(channel, jobId, { amountDue: 1000n })
    out.push(performance.now() - t0)
  }
  return out
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

try {
  const dbs = {
    off: new Level<string, string>(join(base, 'off')),
    on: new Level<string, string>(join(base, 'on'))
  }
  const stores = {
    off: new VoucherStore(dbs.off),
    on: new VoucherStore(dbs.on, { sync: true })
  }
  const times: Record<'off' | 'on', number[]> = { off: [], on: [] }
  await block(stores.off, 1_000_000, 20) // warm up both (LevelDB files, JIT)
  await block(stores.on, 1_000_000, 20)
  for (let b = 0; b < blocks; b++)
    for (const mode of b % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const))
      times[mode].push(...(await block(stores[mode], b * perBlock, perBlock)))
  await dbs.off.close()
  await dbs.on.close()
  const stat = (xs: number[]) => ({
    p50Ms: pct(xs, 50),
    p99Ms: pct(xs, 99),
    meanMs: xs.reduce((a, x) => a + x, 0) / xs.length
  })
  const off = stat(times.off)
  const on = stat(times.on)
  const report = {
    bench: 'fsync',
    machine: benchMachine({ ort: false }),
    config: { dir: base, jobsPerMode: times.off.length, blocks, batchesPerJob: 2 },
    results: {
      syncOff: off,
      syncOn: on,
      addedPerJobP50Ms: on.p50Ms - off.p50Ms,
      addedPerJobMeanMs: on.meanMs - off.meanMs,
      ratioP50: on.p50Ms / off.p50Ms
    },
    goals: []
  }
  if (args.json) console.log(JSON.stringify(report))
  else {
    console.log(`paid job's store writes (reserve + settle), ${times.off.length} jobs each, dir ${base}`)
    console.log(`  sync off: p50 ${off.p50Ms.toFixed(3)} ms  p99 ${off.p99Ms.toFixed(3)} ms`)
    console.log(`  sync on:  p50 ${on.p50Ms.toFixed(3)} ms  p99 ${on.p99Ms.toFixed(3)} ms`)
    console.log(`  added per job: p50 ${report.results.addedPerJobP50Ms.toFixed(3)} ms`)
  }
} finally {
  rmSync(base, { recursive: true, force: true })
}
