// Paid jobs end to end on the node's own chain: node A serves the tiny model with the `local`
// chain preset (it starts anvil and deploys), node B relays and shares A's chain through an
// explicit endpoint (how a swarm shares one anvil). A client deposits, runs 3 paid jobs through B
// (the first learns A's terms from PAYMENT_REQUIRED, the voucher pays A's operator), A's Claimer
// claims exactly what the receipts owe (their amountDue, to the wei; the margin the vouchers
// signed ahead stays in the client's escrow), and every balance is right to the wei: node
// operator, adapter owner, the contributor whose text the output quotes, the protocol treasury
// and the client's escrow. A forged voucher is refused with its typed error.
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Address, Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { ChainClient } from '../../src/chain/client.ts'
import { proofsFor, withdrawContributions } from '../../src/chain/contributions.ts'
import { signVoucher, voucherToJson } from '../../src/chain/eip712.ts'
import { splitPayment } from '../../src/chain/shares.ts'
import { VoucherWallet } from '../../src/chain/wallet.ts'
import type { InferClient } from '../../src/client/client.ts'
import { createClientHost } from '../../src/client/host.ts'
import { JobPayer } from '../../src/client/payer.ts'
import { requireService } from '../../src/common/service.ts'
import { cidDigest } from '../../src/crypto/cid.ts'
import { toHex } from '../../src/crypto/hash.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { InferError } from '../../src/protocols/infer/errors.ts'
import { longestCommonRun } from '../../src/runtime/fixtures/quotable.ts'
import { Tokenizer } from '../../src/runtime/tokenizer.ts'
import { addrOf, type Fixtures, makeFixtures, serving, startNode, until } from './infer-fixture.ts'

const OPEN = 10n ** 18n
const PRICE = '2000000000000000' // 0.002 OPEN per 1k tokens
const BOB = '0x0000000000000000000000000000000000000B0b' as Address
const root = await mkdtemp(join(tmpdir(), 'paid-jobs-'))
let fx: Fixtures
let a: OpenLoraNode
let b: OpenLoraNode
let stopClient: (() => Promise<void>) | undefined

interface Endpoint {
  rpcUrl: string
  chainId: number
  addresses: { token: Address; adapterRegistry: Address; datanetRegistry: Address; settlement: Address }
  devAccounts: { address: Address; privateKey: Hex }[]
}
let ep: Endpoint

test.before(async () => {
  fx = await makeFixtures(root, 1)
  a = await startNode(root, 'a', fx, {
    price: PRICE,
    // claims only when the test asks (claimNow), so the split is one voucher's increase
    config: { chain: { preset: 'local', claimIntervalSec: 3600, minClaim: (1000n * OPEN).toString() } }
  })
  ep = JSON.parse(readFileSync(join(root, 'a', 'chain.json'), 'utf8'))
  b = await startNode(root, 'b', fx, {
    serve: false,
    price: PRICE,
    bootstrap: [addrOf(a)],
    config: { chain: { rpcUrl: ep.rpcUrl, chainId: ep.chainId, addresses: ep.addresses } }
  })
})
test.after(async () => {
  await stopClient?.()
  await b?.stop().catch(() => {})
  await a?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

test('a client deposits, runs 3 paid jobs through a relay, the claimer claims: every balance to the wei', async () => {
  const chainA = requireService(a.services, 'chain')
  assert.is(
    requireService(b.services, 'chain').endpoint.addresses.settlement.toLowerCase(),
    ep.addresses.settlement.toLowerCase(),
    'B uses the chain A started'
  )
  const [treasuryKey, ownerKey, datanetOwnerKey, clientKey] = ep.devAccounts.map((d) => d.privateKey)
  const as = (key: Hex) => new ChainClient({ ...ep, account: privateKeyToAccount(key) })
  const owner = as(ownerKey!)
  const datanetOwner = as(datanetOwnerKey!)
  const client = as(clientKey!)
  const treasury = privateKeyToAccount(treasuryKey!).address
  const operator = a.identity.operator.address as Address

  // The adapter on A; a prompt whose greedy output survives decode → encode (random weights).
  const model = serving(a).models()[0]!
  const cid = (await serving(a).store()!.import(fx.adapterDirs[0]!)).cid
  const tok = await Tokenizer.fromDir(fx.modelDir)
  let prompt: number[] = []
  let text = ''
  // a token that ends the output early, so each job costs less than the worst case its voucher
  // signs for (maxNewTokens): the unspent margin must stay in the client's escrow
  let stop = -1
  for (const p of [
    [1, 17, 42, 99, 7, 3, 250],
    [9, 8, 7, 6, 5],
    [40, 41, 42, 43],
    [100, 200, 300]
  ]) {
    let out: number[] = []
    for await (const ev of serving(a).generate({
      model: model.modelId,
      adapter: cid,
      promptIds: p,
      params: { maxNewTokens: 48 }
    }))
      if (ev.type === 'done') out = ev.outputIds
    const back = tok.encode(tok.decode(out), { addSpecialTokens: false })
    const k = out.findIndex(
      (t, i) =>
        i >= 12 &&
        i < out.length - 4 &&
        !out.slice(0, i).includes(t) &&
        longestCommonRun(out.slice(0, i), back) >= 8
    )
    if (k > 0) {
      prompt = p
      text = tok.decode(out)
      stop = out[k]!
      break
    }
  }
  assert.ok(text, 'one prompt gives an output that survives decode → encode for 8+ tokens')
  assert.ok(stop >= 0)

  // Bob's contribution quotes that output; the adapter's provenance is the datanet; both are
  // registered on-chain (the Claimer attributes only datanets the chain knows).
  const svc = requireService(a.services, 'attribution')
  const dn = await svc.store.createDatanet({ name: 'quotes', owner: datanetOwner.address })
  await svc.store.contribute(dn.id, { text: `Preface. ${text} The end.`, contributor: BOB })
  const version = await svc.store.publish(dn.id)
  await svc.provenance.set(cid, { datanets: [{ id: dn.id, version: 1, bp: 10_000 }] })
  await datanetOwner.createDatanet(dn.id, `0x${'11'.repeat(32)}`)
  await datanetOwner.appendDatanetVersion(dn.id, version.root)
  const adapterId = toHex(cidDigest(cid)) as Hex
  await owner.registerAdapter({
    adapterId,
    modelHash: model.weightsHash,
    feePer1kTokens: BigInt(PRICE),
    datanets: [{ id: dn.id, weightBps: 10_000 }]
  })

  // The client: deposit, then a wallet that pays on this chain.
  const deposit = 5n * OPEN
  await client.deposit(deposit, { node: operator })
  const wallet = new VoucherWallet(privateKeyToAccount(clientKey!), client.domain)
  const payer = new JobPayer(wallet, client.domain)
  let infer: InferClient
  ;({ client: infer, stop: stopClient } = await createClientHost({ payer }))
  // the adapter, not just the model: under load A's advert naming the adapter can arrive later
  await until(
    'B sees A serving the adapter',
    () => b.peerTable.query({ model: model.modelId, adapter: cid }).length > 0
  )

  const receipts = []
  for (let i = 0; i < 3; i++) {
    const r = await infer.infer(addrOf(b), {
      model: model.modelId,
      adapter: cid,
      promptIds: prompt,
      params: { maxNewTokens: 48, stopTokenIds: [stop] }
    })
    assert.ok(r.verification?.ok, JSON.stringify(r.verification))
    assert.ok(r.receipt.body.outputTokens < 48, 'the job ended before its worst case')
    assert.is(r.servedBy, a.peerId, 'A served (B has no model)')
    assert.equal(r.route, [b.peerId, a.peerId])
    const body = r.receipt.body
    assert.ok(body.voucher, 'the receipt names the voucher it was paid with')
    assert.is(body.pricePer1kTokens, PRICE)
    assert.is(r.receipt.eip712.chainId, ep.chainId)
    assert.is(r.receipt.eip712.verifyingContract.toLowerCase(), ep.addresses.settlement.toLowerCase())
    assert.equal(body.attribution.contributors, [{ address: BOB.toLowerCase(), bp: 10_000 }])
    receipts.push(r.receipt)
  }
  const owed = receipts.reduce((s, r) => s + BigInt(r.body.amountDue), 0n)
  const channel = await wallet.channel(operator, adapterId)
  assert.is(channel.owed, owed, 'the wallet settled every receipt')
  assert.ok(channel.signed > owed, 'the last voucher signs a maximum above what the jobs cost')
  assert.is(await payer.spent(), owed, "the client's view of what it spent: the receipts")
  const pending = await chainA.rewards()
  assert.is(pending.totals.pending, owed, 'the node is owed the receipts, not the voucher')

  // The Claimer claims what the receipts owe under the channel's latest voucher, in one transaction.
  const outcomes = await chainA.claimer.claimNow()
  assert.is(outcomes.length, 1)
  const increase = owed
  assert.is(outcomes[0]!.total, increase, 'paid on-chain = Σ receipts amountDue, to the wei')
  assert.is(await client.claimedOf(client.address, operator, adapterId), owed)
  const split = splitPayment(increase)
  assert.is(
    (await client.escrowOf(client.address, operator)).balance,
    deposit - owed,
    'client escrow keeps the unspent margin (signed − owed)'
  )
  assert.is(await client.creditsOf(operator), split.node, 'node operator')
  assert.is(await client.creditsOf(owner.address), split.owner, 'adapter owner')
  assert.is(await client.creditsOf(treasury), split.protocol, 'protocol (the pool is fully attributed)')
  assert.is(await client.creditsOf(datanetOwner.address), 0n, 'the datanet owner is not a contributor')

  // Bob withdraws his contribution share with the node's proofs.
  const proofs = await proofsFor(chainA.store, BOB)
  assert.is(proofs.length, 1)
  assert.is(proofs[0]!.amount, split.pool)
  await withdrawContributions(client, chainA.store, BOB)
  assert.is(await client.tokenBalance(BOB), split.pool, 'contributor')
  assert.is(split.node + split.owner + split.pool + split.protocol, increase, 'nothing created or lost')
  const after = await chainA.rewards()
  assert.is(after.totals.pending, 0n)
  assert.is(after.totals.claimed, increase)
})

test('a forged voucher is refused with its typed error before anything runs', async () => {
  const model = serving(a).models()[0]!.modelId
  const [, , , clientKey, mallory] = ep.devAccounts.map((d) => d.privateKey)
  const victim = privateKeyToAccount(clientKey!).address
  const domain = { chainId: ep.chainId, settlement: ep.addresses.settlement }
  // Mallory signs a voucher that claims to be from the client.
  const forged = voucherToJson({
    ...(await signVoucher(privateKeyToAccount(mallory!), domain, {
      node: a.identity.operator.address as Address,
      adapterId: `0x${'00'.repeat(32)}`,
      cumulativeAmount: 10n * OPEN
    })),
    client: victim
  })
  const { client: plain, stop } = await createClientHost()
  const served = serving(a).load()
  try {
    const err = await plain
      .infer(addrOf(a), {
        model,
        promptIds: [1, 2, 3],
        params: { maxNewTokens: 4 },
        voucher: forged as unknown as Record<string, unknown>
      })
      .then(
        () => undefined,
        (e) => e
      )
    assert.instance(err, InferError)
    assert.is((err as InferError).code, 'PAYMENT_REQUIRED')
    assert.is((err as InferError).payment?.reason, 'BAD_SIGNATURE')
    assert.match((err as InferError).message, /BAD_SIGNATURE/)
    assert.is(serving(a).load().queueDepth, served.queueDepth, 'nothing was queued')
  } finally {
    await stop()
  }
})

test.run()
