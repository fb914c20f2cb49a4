// H7 (docs/THREATS.md): adapter ids are public (adverts, the mempool), and registration was first
// come, first served: an attacker who saw a pending registration sent its own with a higher fee
// and owned the adapter (and its owner share). Registration is now commit–reveal: the attacker's
// commit and register land in the same block, so its register is refused; the owner's, committed
// a block earlier, goes through. Run on anvil with automine off so both race for one block.
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createTestClient, decodeFunctionData, type Hex, http, keccak256, toHex } from 'viem'
import { adapterRegistryAbi } from '../../src/chain/artifacts/index.ts'
import type { ChainClient } from '../../src/chain/client.ts'
import { tierHas } from '../../src/protocols/adverts/codec.ts'
import { attackStage, until } from './fixture.ts'

const t = attackStage('h7', { register: false })

test('a registration seen in the mempool cannot be front-run', async () => {
  const { s } = t
  const owner = s.as(2)
  const attacker = s.as(6)
  const id = keccak256(toHex('an adapter about to be registered')) as Hex
  const anvil = createTestClient({ mode: 'anvil', transport: http(s.ep.rpcUrl) })
  // the owner commits first (a block of its own), where the registry has a commit step
  const commit = (owner as unknown as { commitAdapter?: (id: Hex) => Promise<unknown> }).commitAdapter
  if (commit) await commit.call(owner, id)
  const registry = s.ep.addresses.adapterRegistry!
  const args = [id, `0x${'01'.repeat(32)}` as Hex, OPEN_FEE, [] as Hex[], [] as number[]] as const
  await anvil.setAutomine(false)
  try {
    const fees = { maxFeePerGas: 10n ** 11n, maxPriorityFeePerGas: 10n ** 9n, gas: 500_000n }
    const victimTx = await owner.wallet!.writeContract({
      address: registry,
      abi: adapterRegistryAbi,
      functionName: 'register',
      args,
      chain: null,
      ...fees
    } as never)
    // the attacker reads the id from the pending transaction and outbids it
    const pending = await owner.publicClient.getTransaction({ hash: victimTx })
    const seen = decodeFunctionData({ abi: adapterRegistryAbi, data: pending.input })
    assert.is(seen.args![0], id)
    const rich = { maxFeePerGas: 10n ** 12n, maxPriorityFeePerGas: 10n ** 11n, gas: 500_000n }
    const hasCommit = adapterRegistryAbi.some((x) => x.type === 'function' && x.name === 'commit')
    const nonce = await attacker.publicClient.getTransactionCount({ address: attacker.address })
    if (hasCommit)
      await attacker.wallet!.writeContract({
        address: registry,
        abi: adapterRegistryAbi,
        functionName: 'commit' as never,
        args: [
          keccak256(`0x${id.slice(2)}${attacker.address.slice(2).toLowerCase().padStart(64, '0')}`)
        ] as never,
        chain: null,
        nonce,
        ...rich
      } as never)
    const attackTx = await attacker.wallet!.writeContract({
      address: registry,
      abi: adapterRegistryAbi,
      functionName: 'register',
      args,
      chain: null,
      nonce: hasCommit ? nonce + 1 : nonce,
      ...rich
    } as never)
    await mineRace(anvil, owner, victimTx, attackTx, 'registration')
  } finally {
    await anvil.setAutomine(true)
  }
  assert.is(await owner.adapterOwner(id), owner.address, 'the adapter is its owner’s')
})

test('owning some adapter does not let an attacker publish a pending id as its "next version"', async () => {
  const { s } = t
  // review finding: publishVersion skipped the commitment, so any adapter owner could take a
  // victim's id seen in the mempool (or an advert) in one transaction
  const owner = s.as(3)
  const attacker = s.as(7)
  const own = keccak256(toHex("the attacker's own adapter")) as Hex
  const modelHash = `0x${'01'.repeat(32)}` as Hex
  await attacker.registerAdapter({ adapterId: own, modelHash, feePer1kTokens: OPEN_FEE })
  const id = keccak256(toHex('another adapter about to be registered')) as Hex
  await owner.commitAdapter(id)
  const registry = s.ep.addresses.adapterRegistry!
  const anvil = createTestClient({ mode: 'anvil', transport: http(s.ep.rpcUrl) })
  await anvil.setAutomine(false)
  try {
    const victimTx = await owner.wallet!.writeContract({
      address: registry,
      abi: adapterRegistryAbi,
      functionName: 'register',
      args: [id, modelHash, OPEN_FEE, [], []],
      chain: null,
      maxFeePerGas: 10n ** 11n,
      maxPriorityFeePerGas: 10n ** 9n,
      gas: 500_000n
    } as never)
    const attackTx = await attacker.wallet!.writeContract({
      address: registry,
      abi: adapterRegistryAbi,
      functionName: 'publishVersion',
      args: [own, id, modelHash, OPEN_FEE, [], []],
      chain: null,
      maxFeePerGas: 10n ** 12n,
      maxPriorityFeePerGas: 10n ** 11n,
      gas: 500_000n
    } as never)
    await mineRace(anvil, owner, victimTx, attackTx, 'version')
  } finally {
    await anvil.setAutomine(true)
  }
  assert.is(await owner.adapterOwner(id), owner.address, 'the adapter is its owner’s')
  // the honest path still works: a committed new version of an adapter one owns
  const next = keccak256(toHex("the attacker's own adapter, version 2")) as Hex
  await attacker.publishAdapterVersion({
    previous: own,
    adapterId: next,
    modelHash,
    feePer1kTokens: OPEN_FEE
  })
  assert.is(await attacker.adapterOwner(next), attacker.address)
})

test('an adapter is not advertised before its owner registers it, so its id cannot be squatted first', async () => {
  const { s } = t
  // the stage's node holds the adapter (imported), and its owner has not registered it yet
  const tiers = (adv: Awaited<ReturnType<typeof s.a.adverts.publish>>) =>
    (['hot', 'warm', 'cold'] as const).map((t) => tierHas(adv.body.adapters[t], s.cid))
  const before = await s.a.adverts.publish()
  assert.equal(tiers(before), [null, null, null], 'the unregistered adapter is in no tier of the advert')
  const caps = await s.a.capabilities.capabilities()
  assert.not.ok(
    [...caps.adapters.hot, ...caps.adapters.warm, ...caps.adapters.cold].includes(s.cid),
    'nor in what the DHT provider records are made from'
  )
  // an attacker watching adverts has nothing to commit to; the owner commits and registers
  // the registration declares a datanet not created yet: advertising the adapter (whose files
  // name it) would make that id public, so it stays unadvertised
  const owner = s.as(4)
  const datanet = keccak256(toHex('the datanet the adapter was trained on')) as Hex
  await owner.registerAdapter({
    adapterId: s.adapterId,
    modelHash: `0x${'01'.repeat(32)}`,
    feePer1kTokens: OPEN_FEE,
    datanets: [{ id: datanet, weightBps: 10_000 }]
  })
  await sleep(6_000) // past the gate's 5 s re-check
  assert.equal(
    tiers(await s.a.adverts.publish()),
    [null, null, null],
    'not while a declared datanet is missing'
  )
  await owner.createDatanet(datanet, `0x${'00'.repeat(32)}`)
  // from then on the node advertises it (the gate re-checks pending adapters every few seconds)
  await until(
    'the node advertises the adapter once it is registered',
    async () => tiers(await s.a.adverts.publish()).some((t) => t !== null),
    20_000
  )
  assert.is(await owner.adapterOwner(s.adapterId), owner.address)
})

const OPEN_FEE = 10n ** 18n

/** Mines the block both transactions race for: the front-runner's is refused, the owner's lands. */
async function mineRace(
  anvil: ReturnType<typeof createTestClient>,
  owner: ChainClient,
  victimTx: Hex,
  attackTx: Hex,
  what: string
): Promise<void> {
  await anvil.mine({ blocks: 1 })
  const [a, v] = await Promise.all([
    owner.publicClient.getTransactionReceipt({ hash: attackTx }),
    owner.publicClient.getTransactionReceipt({ hash: victimTx })
  ])
  assert.is(a.blockNumber, v.blockNumber, 'both raced for the same block')
  assert.is(a.status, 'reverted', `the front-runner's ${what} is refused`)
  assert.is(v.status, 'success')
}

test.run()
