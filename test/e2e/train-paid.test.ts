// Paid remote training end to end on the node's own chain (anvil): trainer A offers training at a
// price per 1k trained tokens and advertises it (the `train` capability); node B only relays and
// shares A's chain. A client joins through B, reads the adverts B holds, picks A, and sends a job
// whose budget covers fewer tokens than its steps: A trains the steps that fit, the client pays
// ceil(trained tokens × price / 1000) to the wei with a voucher on its escrow at A, A's Claimer
// claims exactly that, and every balance is right to the wei (operator, protocol treasury, the
// client's escrow keeping the margin). The CLI does the same with --bootstrap --pay.
import { readFileSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type Address, type Hex, zeroHash } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { ChainClient } from '../../src/chain/client.ts'
import { amountDue } from '../../src/chain/eip712.ts'
import { splitPayment } from '../../src/chain/shares.ts'
import { VoucherWallet } from '../../src/chain/wallet.ts'
import { findTrainers, reachTrainer } from '../../src/client/find-trainer.ts'
import { createClientHost } from '../../src/client/host.ts'
import { JobPayer } from '../../src/client/payer.ts'
import { trainingPayer } from '../../src/client/train-payer.ts'
import { requireService } from '../../src/common/service.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { stepTokens } from '../../src/protocols/training/provider.ts'
import { requestTraining } from '../../src/protocols/training/train-protocol.ts'
import { modelIdOf } from '../../src/runtime/model/config.ts'
import { readModelConfig } from '../../src/runtime/model/index.ts'
import { Tokenizer } from '../../src/runtime/tokenizer.ts'
import { encodeRows } from '../../src/runtime/training/data.ts'
import { planData } from '../../src/runtime/training/plan.ts'
import { addrOf, type Fixtures, makeFixtures, runCli, startNode, until } from './infer-fixture.ts'

const OPEN = 10n ** 18n
/** an odd price, so the rounding up to the wei is exercised */
const PRICE = 1_234_567_891_234_567n
const TEXTS = ['a stitch in time saves nine', 'knowledge is power', 'better late than never']
const root = await mkdtemp(join(tmpdir(), 'train-paid-'))
let fx: Fixtures
let a: OpenLoraNode
let b: OpenLoraNode
let modelId: string
let datanet: string
/** tokens one step trains (no --batch: every step trains every row) */
let perStep: number
let ep: {
  rpcUrl: string
  chainId: number
  addresses: { token: Address; adapterRegistry: Address; datanetRegistry: Address; settlement: Address }
  devAccounts: { privateKey: Hex }[]
}

test.before(async () => {
  fx = await makeFixtures(root, 0)
  modelId = modelIdOf(await readModelConfig(fx.modelDir), fx.modelDir)
  a = await startNode(root, 'a', fx, {
    config: {
      chain: { preset: 'local', claimIntervalSec: 3600, minClaim: (1000n * OPEN).toString() },
      training: { offer: true, pricePer1kTokens: PRICE.toString() }
    }
  })
  ep = JSON.parse(readFileSync(join(root, 'a', 'chain.json'), 'utf8'))
  b = await startNode(root, 'b', fx, {
    serve: false,
    bootstrap: [addrOf(a)],
    config: { chain: { rpcUrl: ep.rpcUrl, chainId: ep.chainId, addresses: ep.addresses } }
  })
  const store = requireService(a.services, 'attribution').store
  const dn = await store.createDatanet({
    name: 'proverbs',
    owner: '0x00000000000000000000000000000000000a11ce'
  })
  for (const text of TEXTS)
    await store.contribute(dn.id, { text, contributor: '0x00000000000000000000000000000000000a11ce' })
  await store.publish(dn.id)
  datanet = dn.id
  const tok = await Tokenizer.fromDir(fx.modelDir)
  perStep = stepTokens(
    planData(
      encodeRows(
        tok,
        TEXTS.map((text) => ({ text }))
      ),
      { seed: 1 }
    ).batchOf(0)
  )
})
test.after(async () => {
  await b?.stop().catch(() => {})
  await a?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

const as = (i: number) =>
  new ChainClient({ ...ep, account: privateKeyToAccount(ep.devAccounts[i]!.privateKey) })

test('A advertises training; a client finds it through B, pays for the tokens its budget covers, A claims them', async () => {
  const operator = a.identity.operator.address as Address
  await until('B holds A’s advert with the train capability', () =>
    b.peerTable.entries().some((e) => e.peerId === a.peerId && e.advert.body.train !== undefined)
  )
  const advert = b.peerTable.entries().find((e) => e.peerId === a.peerId)!.advert.body
  assert.equal(advert.train, { pricePer1kTokens: PRICE.toString(), models: [modelId] })
  assert.is(
    b.peerTable.entries().find((e) => e.peerId === b.peerId),
    undefined
  )

  const client = as(3)
  const deposit = 2n * OPEN
  await client.deposit(deposit, { node: operator })
  const payer = new JobPayer(
    new VoucherWallet(privateKeyToAccount(ep.devAccounts[3]!.privateKey), client.domain),
    client.domain
  )
  const { node, stop } = await createClientHost()
  try {
    const offers = await findTrainers(node, [addrOf(b)], { model: modelId })
    assert.equal(
      offers.map((o) => [o.peerId, o.pricePer1kTokens]),
      [[a.peerId, PRICE]],
      'the one trainer, found in B’s adverts'
    )
    assert.equal(await findTrainers(node, [addrOf(b)], { model: modelId, maxPrice: PRICE - 1n }), [])
    await reachTrainer(node, offers[0]!, [addrOf(b)])
    const budget = 2 * perStep + Math.floor(perStep / 2)
    const progress: number[] = []
    const r = await requestTraining(
      node,
      peerIdFromString(a.peerId),
      { model: modelId, datanet: { id: datanet, version: 1 }, steps: 5, lr: 0.01, optimizer: 'sgd', seed: 1 },
      {
        budget: { maxTokens: budget },
        payer: trainingPayer(payer),
        onProgress: (p) => progress.push(p.tokens!)
      }
    )
    assert.is(r.record.body.hyper.steps, 2, 'the trainer stops at the budget: 2 of the 5 steps fit')
    assert.is(r.record.body.data.trainedTokens, 2 * perStep)
    assert.equal(progress, [perStep, 2 * perStep], 'progress reports the trained tokens')
    const due = amountDue(0, 2 * perStep, PRICE)
    assert.is(r.payment!.body.amountDue, due.toString(), 'ceil(trained × price / 1000)')
    assert.is(r.payment!.body.operator, operator)
    assert.is(await payer.spent(), due, 'the client spent exactly that')

    const chainA = requireService(a.services, 'chain')
    assert.is((await chainA.rewards()).totals.pending, due, 'A is owed the statement, not the budget')
    const outcomes = await chainA.claimer.claimNow()
    assert.is(outcomes.length, 1)
    assert.is(outcomes[0]!.total, due, 'claimed on-chain = trained tokens × price, to the wei')
    assert.is(await client.claimedOf(client.address, operator, zeroHash), due)
    assert.is((await client.escrowOf(client.address, operator)).balance, deposit - due, 'the margin stays')
    const split = splitPayment(due)
    assert.is(await client.creditsOf(operator), split.node, 'operator: the node share')
    const treasury = privateKeyToAccount(ep.devAccounts[0]!.privateKey).address
    assert.is(
      await client.creditsOf(treasury),
      split.owner + split.pool + split.protocol,
      'no adapter and no datanet on the channel: the rest goes to the protocol treasury'
    )
  } finally {
    await stop()
  }
})

test('openlora train --bootstrap B --pay: finds A in the adverts and pays the trained tokens', async () => {
  const operator = a.identity.operator.address as Address
  const client = as(4)
  await client.deposit(OPEN, { node: operator })
  const keyFile = join(root, 'client4.key')
  writeFileSync(keyFile, `${ep.devAccounts[4]!.privateKey}\n`, { mode: 0o600 })
  const chainFile = join(root, 'a', 'chain.json')
  const out = join(root, 'cli-out')
  const args = [
    '--model',
    modelId,
    '--datanet',
    `${datanet}@1`,
    '--steps',
    '3',
    '--lr',
    '0.01',
    '--optimizer',
    'sgd'
  ]
  const pay = ['--pay', '--chain', chainFile, '--key-file', keyFile, '--data-dir', join(root, 'cli-wallet')]
  const r = await runCli(
    'train',
    '--bootstrap',
    addrOf(b),
    ...args,
    ...pay,
    '--max-tokens',
    String(perStep),
    '--out',
    out,
    '--json'
  )
  assert.is(r.code, 0, r.err)
  const lines = r.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  assert.is(lines[0].event, 'trainer')
  assert.is(lines[0].peerId, a.peerId)
  const done = lines.at(-1)
  assert.is(done.trainer, a.peerId)
  assert.is(done.steps, 1, 'a budget of one step’s tokens trains one step')
  assert.is(done.amountDue, amountDue(0, perStep, PRICE).toString())
  const statement = JSON.parse(readFileSync(join(out, 'training-payment.json'), 'utf8'))
  assert.is(statement.body.amountDue, done.amountDue)
  // without --pay the trainer asks for payment and the CLI says so
  const unpaid = await runCli('train', '--bootstrap', addrOf(b), ...args, '--max-tokens', String(perStep))
  assert.is.not(unpaid.code, 0)
  assert.match(unpaid.err, /PAYMENT_REQUIRED/)
  // a budget below one step's tokens is refused, and costs nothing
  const tiny = await runCli('train', '--bootstrap', addrOf(b), ...args, ...pay, '--max-tokens', '1')
  assert.is.not(tiny.code, 0)
  assert.match(tiny.err, /does not cover the first step/)
  const chainA = requireService(a.services, 'chain')
  await chainA.claimer.claimNow()
  assert.is(await client.claimedOf(client.address, operator, zeroHash), BigInt(done.amountDue))
})

test.run()
