// A node with a chain fetches a datanet version trusting the roots its own DatanetRegistry holds:
// `openlora datanet fetch ID@V --from PEER` needs no --root then, and a version the registry does
// not have is refused by name; and a job whose adapter names a datanet version the node lacks
// makes the node copy it in the background from its peers. Real anvil (started by the owner
// node's `local` preset), real contracts, libp2p and LevelDB.
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { attributionExtension } from '../../src/attribution/extension.ts'
import { chainExtension } from '../../src/chain/extension.ts'
import { requireService } from '../../src/common/service.ts'
import { cidForBytes } from '../../src/crypto/cid.ts'
import { sha256Hex } from '../../src/crypto/hash.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { datanetExchangeExtension } from '../../src/protocols/datanet-exchange/extension.ts'
import { addrOf, type Fixtures, runCli, startNode } from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'datanet-exchange-chain-'))
const fx = { modelDir: '', cacheDir: join(root, 'cache'), adapterDirs: [] } as Fixtures
const extensions = [chainExtension, attributionExtension, datanetExchangeExtension]
let owner: OpenLoraNode
let reader: OpenLoraNode
let auto: OpenLoraNode

test.after(async () => {
  await auto?.stop().catch(() => {})
  await reader?.stop().catch(() => {})
  await owner?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

test('a node trusts its own chain for the roots of a datanet it copies', async () => {
  owner = await startNode(root, 'owner', fx, {
    serve: false,
    overrides: { extensions },
    config: { chain: { preset: 'local', claimIntervalSec: 3600 } }
  })
  const ep = JSON.parse(readFileSync(join(root, 'owner', 'chain.json'), 'utf8'))
  reader = await startNode(root, 'reader', fx, {
    serve: false,
    admin: true,
    overrides: { extensions },
    config: { chain: { rpcUrl: ep.rpcUrl, chainId: ep.chainId, addresses: ep.addresses } }
  })

  // the owner publishes two versions and records both roots in the DatanetRegistry
  const store = requireService(owner.services, 'attribution').store
  const chain = requireService(owner.services, 'chain').client
  const dn = await store.createDatanet({ name: 'tides', owner: chain.account!.address })
  await store.contribute(dn.id, {
    text: 'High water came at six and low water at noon.',
    contributor: dn.owner
  })
  const v1 = await store.publish(dn.id)
  await store.contribute(dn.id, {
    text: 'Spring tides follow the new and the full moon.',
    contributor: dn.owner
  })
  const v2 = await store.publish(dn.id)
  await chain.createDatanet(dn.id as never, sha256Hex('tides') as never)
  await chain.appendDatanetVersion(dn.id as never, v1.root as never)
  await chain.appendDatanetVersion(dn.id as never, v2.root as never)

  const dataDir = join(root, 'reader')
  const ok = await runCli(
    'datanet',
    'fetch',
    `${dn.id}@2`,
    '--from',
    addrOf(owner),
    '--data-dir',
    dataDir,
    '--json'
  )
  assert.is(ok.code, 0, ok.err)
  // the last line is the result (progress lines come before it)
  const { bytes, ...done } = JSON.parse(ok.out.trim().split('\n').at(-1)!)
  assert.equal(done, {
    event: 'done',
    id: dn.id,
    version: 2,
    root: v2.root,
    contributions: 2,
    trustedRoots: 2,
    rootsFrom: 'chain'
  })
  assert.ok(bytes > 0, `${bytes} bytes copied`)
  assert.is((await requireService(reader.services, 'attribution').store.getVersion(dn.id, 2)).root, v2.root)

  // a third version published but never recorded on-chain: nothing to trust, so refused
  await store.contribute(dn.id, { text: 'The neap tide came in slowly.', contributor: dn.owner })
  await store.publish(dn.id)
  const v3 = await runCli('datanet', 'fetch', `${dn.id}@3`, '--from', addrOf(owner), '--data-dir', dataDir)
  assert.is(v3.code, 1)
  assert.match(v3.err, /version 3 is not recorded in the DatanetRegistry of chain 31337/)

  // attribution for an adapter trained on version 2, on a node without it: the job gets the
  // provenance commitment and the node copies the version from its peers, trusting its chain
  auto = await startNode(root, 'auto', fx, {
    serve: false,
    overrides: { extensions },
    config: { chain: { rpcUrl: ep.rpcUrl, chainId: ep.chainId, addresses: ep.addresses } }
  })
  await auto.libp2p.dial(multiaddr(addrOf(owner)))
  const attribution = requireService(auto.services, 'attribution')
  const adapter = cidForBytes(new TextEncoder().encode('an adapter trained on tides'))
  await attribution.provenance.set(adapter, { datanets: [{ id: dn.id, version: 2, bp: 10_000 }] })
  const summary = await attribution.provider({
    jobId: `0x${'07'.repeat(16)}`,
    modelHash: sha256Hex('model'),
    adapter,
    outputIds: [3, 4]
  })
  assert.is(summary.method, 'provenance')
  await requireService(auto.services, 'datanetExchange').replicator.settled()
  assert.is((await attribution.store.getVersion(dn.id, 2)).root, v2.root)
  assert.is((await attribution.store.getVersion(dn.id, 1)).root, v1.root)
})

test.run()
