// The child process the crash tests kill with SIGKILL. It does the node's real durable work on a
// real LevelDB and prints `ACK ...` at the moment the node would tell the outside world the work
// is done (send a job's result, report a claim), so the parent knows exactly what was acknowledged.
//   worker.ts vouchers DB_DIR      record paid jobs forever: ACK <jobNo> <owedAfter>
//   worker.ts claim DB_DIR         reconcile with the chain and claim: ACK claimed <n>
//   worker.ts adapters DIR         import adapters into a cold store forever: ACK <cid>
//   worker.ts datanet DIR          copy a datanet version from a peer: ACK chunk <n> per chunk
//                                  stored, ACK done <root> when the version is in the store
// Chain and key settings come from CRASH_* environment variables (set by the tests).
import { randomBytes } from 'node:crypto'
import { Level } from 'level'
import { privateKeyToAccount } from 'viem/accounts'
import { Claimer } from '../../../src/chain/claimer.ts'
import { ChainClient } from '../../../src/chain/client.ts'
import { signVoucher } from '../../../src/chain/eip712.ts'
import { VoucherStore } from '../../../src/chain/store.ts'
import { channelKey } from '../../../src/chain/vouchers.ts'
import { silentLogger } from '../../../src/common/log.ts'
import { adapterCid, ColdIndex } from '../../../src/runtime/adapters/cold.ts'

const [mode, dbDir] = process.argv.slice(2)
if (mode === 'adapters') {
  // the durable step of adapter import: stage the files, rename to the CID, index (cold.ts)
  const cold = new ColdIndex(dbDir as string)
  await cold.open(60_000)
  for (let i = Number(process.env.CRASH_FROM ?? 0); ; i++) {
    const files = {
      'adapter_config.json': new TextEncoder().encode(JSON.stringify({ r: 4, n: i })),
      'adapter_model.safetensors': randomBytes(256 * 1024)
    }
    const cid = adapterCid(files)
    const staged = await cold.stage(files)
    const entry = {
      cid,
      baseModel: 'tiny',
      rank: 4,
      targets: ['q_proj'],
      sizeBytes: 0,
      fp32Bytes: 0,
      addedAt: i
    }
    await cold.commit(entry, staged)
    process.stdout.write(`ACK ${cid}\n`)
  }
}
if (mode === 'datanet') {
  // the datanet exchange's durable steps on a real host and LevelDB: chunks stored one by one
  // (temp file, rename), then the contributions and versions in one batch (replicate.ts)
  const { runDatanetCopy } = await import('./datanet-copy.ts')
  await runDatanetCopy(dbDir as string)
  process.exit(0)
}
const env = (k: string) => {
  const v = process.env[k]
  if (v === undefined) throw new Error(`${k} is not set`)
  return v
}
const db = new Level<string, string>(dbDir as string)
await db.open()
const store = new VoucherStore(db)

if (mode === 'vouchers') {
  const client = privateKeyToAccount(env('CRASH_CLIENT_KEY') as `0x${string}`)
  const node = env('CRASH_NODE') as `0x${string}`
  const adapterId = env('CRASH_ADAPTER') as `0x${string}`
  const domain = { chainId: 31337, settlement: env('CRASH_SETTLEMENT') as `0x${string}` }
  const channel = channelKey(client.address, node, adapterId)
  // continue from what is stored: jobs the last run wrote but never acknowledged are redone
  for (let n = Number(env('CRASH_FROM')); ; n++) {
    const before = BigInt((await store.getChannel(channel))?.owed ?? '0')
    const due = BigInt(n) * 1000n + 7n
    const v = await signVoucher(client, domain, {
      node,
      adapterId,
      cumulativeAmount: before + due + 10n ** 15n
    })
    const r = await store.recordPayment(v, { jobId: `0x${n.toString(16).padStart(64, '0')}`, amountDue: due })
    process.stdout.write(`ACK ${n} ${r.owed}\n`)
  }
} else if (mode === 'claim') {
  const chain = new ChainClient({
    rpcUrl: env('CRASH_RPC'),
    chainId: Number(env('CRASH_CHAIN_ID')),
    addresses: JSON.parse(env('CRASH_ADDRESSES')),
    account: privateKeyToAccount(env('CRASH_NODE_KEY') as `0x${string}`)
  })
  const claimer = new Claimer({ chain, store }, { logger: silentLogger, retryBaseMs: 100, retryMaxMs: 500 })
  await claimer.reconcile()
  const out = await claimer.claimNow()
  process.stdout.write(`ACK claimed ${out.length}\n`)
  await db.close()
  process.exit(0)
} else {
  throw new Error(`unknown mode ${mode}`)
}
