// M1 (docs/THREATS.md), served over the network: a node serves the contributor pools it publishes
// (<dataDir>/pools.json) over the datanet protocol, and so does any node holding a copy. After the
// funding node is gone, a contributor runs `openlora rewards withdraw-contribution ACCOUNT
// --from-peer MULTIADDR` against a mirror: the pages are size-limited and schema-checked, each
// rebuilt tree is checked against the pool's on-chain commitment, so a mirror serving a tampered
// copy pays nothing and an honest one pays the leaf exactly. Real nodes, real anvil, the real CLI.
import assert from 'node:assert/strict'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Stream } from '@libp2p/interface'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { test } from 'uvu'
import type { Address } from 'viem'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { chainExtension, POOLS_FILE } from '../../src/chain/extension.ts'
import { createClientHost } from '../../src/client/host.ts'
import { requireService } from '../../src/common/service.ts'
import { decodeCanonical, encodeCanonical } from '../../src/crypto/cbor.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { DATANET_PROTOCOL } from '../../src/protocols/datanet-exchange/constants.ts'
import { DatanetFetchError } from '../../src/protocols/datanet-exchange/errors.ts'
import { datanetExchangeExtension } from '../../src/protocols/datanet-exchange/extension.ts'
import { fetchPublishedPools, MAX_POOLS_FRAME_BYTES } from '../../src/protocols/datanet-exchange/pools.ts'
import { runCli } from '../helpers/cli.ts'
import { rawProtocolOverrides } from '../helpers/raw-peer.ts'
import { addrOf, type Fixtures, startNode } from './infer-fixture.ts'
import { paidAttributedJob, poolParties } from './pools-fixture.ts'

const OPEN = 10n ** 18n
let root: string
let chain: LocalChain
const nodes: OpenLoraNode[] = []

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'pools-from-peer-'))
  chain = await startLocalChain({ accounts: 5 })
})
test.after(async () => {
  for (const n of nodes.reverse()) await n.stop().catch(() => {})
  await chain?.stop()
  await rm(root, { recursive: true, force: true })
})

const fx = () => ({ modelDir: '', cacheDir: join(root, 'cache'), adapterDirs: [] }) as unknown as Fixtures
const start = async (name: string, withChain: boolean) => {
  const n = await startNode(root, name, fx(), {
    serve: false,
    overrides: {
      extensions: withChain ? [chainExtension, datanetExchangeExtension] : [datanetExchangeExtension]
    },
    ...(withChain
      ? {
          config: {
            chain: {
              preset: 'local',
              rpcUrl: chain.rpcUrl,
              addresses: chain.addresses,
              claimIntervalSec: 600,
              minClaim: (10n ** 30n).toString()
            }
          }
        }
      : {})
  })
  nodes.push(n)
  return n
}

test('a contributor withdraws with the pools fetched from a mirror node, after the funder is gone', async () => {
  const { owner, client, clientAcc, ids, bob, alice } = await poolParties(chain)

  // the funding node: one paid job whose receipt credits Bob 3/4 and Alice 1/4, claimed
  const funder = await start('funder', true)
  const svc = requireService(funder.services, 'chain')
  const operator = funder.identity.operator.address as Address
  await chain.setEthBalance(operator, 10n ** 20n)
  await client.deposit(10n * OPEN, { node: operator })
  await paidAttributedJob(svc, clientAcc, operator, ids, [
    { address: bob, bp: 7_500 },
    { address: alice, bp: 2_500 }
  ])
  const [claim] = await svc.claimer.claimNow()
  assert.equal(claim?.poolIds.length, 1, 'the claim funded one pool')
  const file = join(root, 'funder', POOLS_FILE)
  const published = JSON.parse(readFileSync(file, 'utf8'))
  const leaf = published.pools[0].leaves.find((l: { account: Address }) => l.account === bob)
  assert.ok(leaf, "Bob's leaf is published")

  // the funder serves exactly what it published
  const host = await createClientHost({ holePunch: false })
  try {
    assert.deepEqual(await fetchPublishedPools(host.node, multiaddr(addrOf(funder))), published)
  } finally {
    await host.stop()
  }

  // a mirror holds a copy; the funder goes away
  const mirror = await start('mirror', false)
  await funder.stop()
  const key = join(root, 'payer.key')
  writeFileSync(key, `${chain.privateKeys[3]}\n`, { mode: 0o600 })
  const withdraw = () =>
    runCli(
      'rewards',
      'withdraw-contribution',
      bob,
      '--from-peer',
      addrOf(mirror),
      '--rpc',
      chain.rpcUrl,
      '--settlement',
      chain.addresses.settlement,
      '--key-file',
      key,
      '--json'
    )
  // nothing served yet: a clear refusal, not a crash
  const none = await withdraw()
  assert.notEqual(none.code, 0)
  assert.match(none.err, /publishes no contributor pools/)

  // a tampered copy (Bob's leaf doubled) does not match the on-chain commitment: nothing paid
  const tampered = structuredClone(published)
  for (const l of tampered.pools[0].leaves) if (l.account === bob) l.amount = String(BigInt(l.amount) * 2n)
  writeFileSync(join(root, 'mirror', POOLS_FILE), JSON.stringify(tampered))
  const t = await withdraw()
  assert.equal(t.code, 0, t.err)
  assert.equal(JSON.parse(t.out).mismatched, 1)
  assert.equal(await owner.tokenBalance(bob), 0n)

  // the genuine copy pays Bob's leaf, once
  copyFileSync(file, join(root, 'mirror', POOLS_FILE))
  const r = await withdraw()
  assert.equal(r.code, 0, r.err)
  assert.equal(JSON.parse(r.out).paid, leaf.amount)
  assert.equal(await owner.tokenBalance(bob), BigInt(leaf.amount))
  const again = await withdraw()
  assert.equal(JSON.parse(again.out).paid, '0')
})

test('a hostile peer serving pools: every bad page is refused by name, nothing trusted', async () => {
  const settlement = chain.addresses.settlement
  const pool = (id: number, amount = '5') => ({
    poolId: String(id),
    datanetId: `0x${'d1'.repeat(32)}`,
    root: `0x${'00'.repeat(32)}`,
    total: amount,
    leaves: [{ account: settlement, amount }]
  })
  const page = (pools: unknown[], more: boolean) => ({
    t: 'pools',
    file: { v: 1, chainId: 31337, settlement, pools },
    more
  })
  // what the adversary answers to each mode
  const answers: Record<string, (after: string | null) => Uint8Array> = {
    garbage: () => new Uint8Array([0xff, 0x00, 0x13]),
    'bad-schema': () => encodeCanonical(page([pool(1, '-1')], false)),
    'no-progress': () => encodeCanonical(page([], true)),
    'out-of-order': (after) => encodeCanonical(page([pool(after === null ? 5 : 2)], true)),
    oversize: () => new Uint8Array(MAX_POOLS_FRAME_BYTES + 1024)
  }
  let mode = 'garbage'
  const evil = await startNode(root, 'evil-pools', fx(), {
    serve: false,
    overrides: rawProtocolOverrides(DATANET_PROTOCOL, async (stream: Stream) => {
      const lp = lpStream(stream, { maxDataLength: 1 << 16, maxBufferSize: 1 << 24 })
      const req = decodeCanonical<{ after: string | null }>((await lp.read()).subarray())
      await lp.write(answers[mode]!(req.after))
      await stream.close()
    })
  })
  nodes.push(evil)
  const host = await createClientHost({ holePunch: false })
  try {
    for (const [m, why] of [
      ['garbage', /not canonical CBOR|no pools page/],
      ['bad-schema', /bad pools page/],
      ['no-progress', /said more pools follow but sent none/],
      ['out-of-order', /out of order/],
      ['oversize', /no pools page/]
    ] as const) {
      mode = m
      const err = await fetchPublishedPools(host.node, multiaddr(addrOf(evil)), { timeoutMs: 10_000 }).then(
        () => undefined,
        (e: unknown) => e
      )
      assert.ok(err instanceof DatanetFetchError, `${m}: refused with a typed error, got ${String(err)}`)
      assert.equal(err.code, 'DATANET_VERIFY_FAILED', m)
      assert.match(err.message, why)
    }
  } finally {
    await host.stop()
  }
})

test.run()
