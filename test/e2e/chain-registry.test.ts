// The registries on a real anvil: adapter ownership is recorded and moves only by the owner's
// call (and the owner share follows it), fees and versions are the owner's, datanet versions are
// append-only and the owner's; deposits work with an EIP-2612 permit instead of an approve.
import assert from 'node:assert/strict'
import { test } from 'uvu'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { signVoucher } from '../../src/chain/eip712.ts'
import { splitPayment } from '../../src/chain/shares.ts'
import { reverts } from '../helpers/chain.ts'

const OPEN = 10n ** 18n
let chain: LocalChain
let c: ChainClient[]
test.before(async () => {
  chain = await startLocalChain({ accounts: 5 })
  c = chain.accounts.map((a) => new ChainClient({ ...chain, account: a }))
})
test.after(async () => {
  await chain?.stop()
})

test('adapters: register once, owner-only fee/version/transfer, and the owner share follows the owner', async () => {
  const [, owner, stranger, node, client] = c as [
    ChainClient,
    ChainClient,
    ChainClient,
    ChainClient,
    ChainClient
  ]
  const a1 = `0x${'a1'.repeat(32)}` as const
  const a2 = `0x${'a2'.repeat(32)}` as const
  const dn = `0x${'dd'.repeat(32)}` as const
  await owner.createDatanet(dn, `0x${'00'.repeat(32)}`)
  await reverts(
    owner.registerAdapter({
      adapterId: a1,
      modelHash: `0x${'01'.repeat(32)}`,
      feePer1kTokens: 5n,
      datanets: [{ id: dn, weightBps: 9000 }]
    }),
    'BadProvenance'
  )
  await reverts(
    owner.registerAdapter({
      adapterId: `0x${'00'.repeat(32)}`,
      modelHash: `0x${'01'.repeat(32)}`,
      feePer1kTokens: 5n
    }),
    'UnknownAdapter'
  )
  await owner.registerAdapter({
    adapterId: a1,
    modelHash: `0x${'01'.repeat(32)}`,
    feePer1kTokens: 5n,
    datanets: [{ id: dn, weightBps: 10_000 }]
  })
  await reverts(
    stranger.registerAdapter({ adapterId: a1, modelHash: `0x${'01'.repeat(32)}`, feePer1kTokens: 1n }),
    'AdapterExists'
  )
  await reverts(stranger.setAdapterFee(a1, 1n), 'NotAdapterOwner')
  await reverts(stranger.transferAdapter(a1, stranger.address), 'NotAdapterOwner')
  await reverts(
    stranger.publishAdapterVersion({
      previous: a1,
      adapterId: a2,
      modelHash: `0x${'01'.repeat(32)}`,
      feePer1kTokens: 1n
    }),
    'NotAdapterOwner'
  )
  await owner.setAdapterFee(a1, 7n)
  await owner.publishAdapterVersion({
    previous: a1,
    adapterId: a2,
    modelHash: `0x${'02'.repeat(32)}`,
    feePer1kTokens: 9n
  })
  const v1 = await owner.getAdapter(a1)
  const v2 = await owner.getAdapter(a2)
  assert.equal(v1.feePer1kTokens, 7n)
  assert.deepEqual(v1.datanets, [dn])
  assert.deepEqual(v1.weightsBps, [10_000])
  assert.equal(v2.previous, a1)
  assert.equal(v2.owner, owner.address)

  await owner.transferAdapter(a1, stranger.address)
  assert.equal(await node.adapterOwner(a1), stranger.address)
  await reverts(owner.setAdapterFee(a1, 1n), 'NotAdapterOwner')

  await client.deposit(10n * OPEN, { node: node.address })
  const v = await signVoucher(chain.accounts[4]!, node.domain, {
    node: node.address,
    adapterId: a1,
    cumulativeAmount: OPEN
  })
  const before = await node.creditsOf(stranger.address)
  await node.claim([v])
  assert.equal((await node.creditsOf(stranger.address)) - before, splitPayment(OPEN).owner)
})

test('datanets: owner-only, versions append-only and numbered from 1', async () => {
  const [, owner, stranger] = c as [ChainClient, ChainClient, ChainClient]
  const dn = `0x${'de'.repeat(32)}` as const
  await owner.createDatanet(dn, `0x${'00'.repeat(32)}`)
  await reverts(stranger.createDatanet(dn, `0x${'00'.repeat(32)}`), 'DatanetExists')
  await reverts(stranger.appendDatanetVersion(dn, `0x${'11'.repeat(32)}`), 'NotDatanetOwner')
  await owner.appendDatanetVersion(dn, `0x${'11'.repeat(32)}`)
  await owner.appendDatanetVersion(dn, `0x${'22'.repeat(32)}`)
  assert.equal(await owner.datanetVersionRoot(dn, 1), `0x${'11'.repeat(32)}`)
  assert.equal(await owner.datanetVersionRoot(dn, 2), `0x${'22'.repeat(32)}`)
  await reverts(owner.datanetVersionRoot(dn, 3), 'UnknownVersion')
  await reverts(owner.appendDatanetVersion(dn, `0x${'00'.repeat(32)}`), 'ZeroValue')
  await owner.transferDatanet(dn, stranger.address)
  await reverts(owner.appendDatanetVersion(dn, `0x${'33'.repeat(32)}`), 'NotDatanetOwner')
  await stranger.appendDatanetVersion(dn, `0x${'33'.repeat(32)}`)
  assert.equal(await owner.datanetVersionRoot(dn, 3), `0x${'33'.repeat(32)}`)
})

test('deposit with an EIP-2612 permit, no approve transaction', async () => {
  const client = c[2]!
  const before = (await client.escrowOf(client.address, c[3]!.address)).balance
  const res = await client.depositWithPermit(3n * OPEN, c[3]!.address)
  assert.equal((await client.escrowOf(client.address, c[3]!.address)).balance - before, 3n * OPEN)
  // one transaction: the receipt holds the token transfer and the Deposited event
  assert.ok(res.receipt.logs.length >= 2)
})

test.run()
