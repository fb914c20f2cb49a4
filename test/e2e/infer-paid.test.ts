// A paid job end to end: a node running the chain layer (local anvil, deployed contracts) charges
// for jobs; a client with escrow pays with a voucher from its VoucherWallet; the node checks it
// before serving, stores it with the receipt before replying, and claims it on-chain. Refusals
// arrive as PAYMENT_REQUIRED with the chain's reason.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Hex } from 'viem'
import { ChainClient } from '../../src/chain/client.ts'
import { amountDue, type SignedVoucher, voucherHash } from '../../src/chain/eip712.ts'
import { VoucherWallet } from '../../src/chain/wallet.ts'
import type { InferClient } from '../../src/client/client.ts'
import { createClientHost } from '../../src/client/host.ts'
import { requireService } from '../../src/common/service.ts'
import { cidDigest } from '../../src/crypto/cid.ts'
import { toHex } from '../../src/crypto/hash.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { InferError } from '../../src/protocols/infer/errors.ts'
import { addrOf, makeFixtures, runCli, serving, startNode } from './infer-fixture.ts'

const OPEN = 10n ** 18n
const PRICE = OPEN // per 1k tokens
const root = await mkdtemp(join(tmpdir(), 'infer-paid-'))
let node: OpenLoraNode
let client: InferClient
let stopClient: () => Promise<void>

test.before(async () => {
  const fx = await makeFixtures(root, 1)
  node = await startNode(root, 'paid', fx, {
    price: PRICE.toString(),
    config: { chain: { preset: 'local', withdrawalDelaySec: 3600 } }
  })
  ;({ client, stop: stopClient } = await createClientHost())
})

test.after(async () => {
  await stopClient?.()
  await node?.stop().catch(() => {})
  await rm(root, { recursive: true, force: true })
})

const wire = (v: SignedVoucher) => ({ ...v, cumulativeAmount: v.cumulativeAmount.toString() })

async function refusal(p: Promise<unknown>): Promise<InferError> {
  try {
    await p
  } catch (err) {
    assert.instance(err, InferError, String(err))
    return err as InferError
  }
  throw new Error('expected an InferError')
}

test('a voucher pays for a job: checked, recorded with the receipt, claimed on-chain', async () => {
  const chain = requireService(node.services, 'chain')
  const [, ownerAcc, clientAcc] = chain.localChain!.accounts
  const stack = serving(node)
  const model = stack.models()[0]!
  const fx = join(root, 'adapter-0')
  const { cid } = await stack.store()!.import(fx)
  const adapterId = toHex(cidDigest(cid)) as Hex
  await new ChainClient({ ...chain.endpoint, account: ownerAcc! }).registerAdapter({
    adapterId,
    modelHash: model.weightsHash,
    feePer1kTokens: PRICE
  })
  await new ChainClient({ ...chain.endpoint, account: clientAcc! }).deposit(10n * OPEN, {
    node: node.identity.operator.address as `0x${string}`
  })
  const operator = node.identity.operator.address
  const job = {
    model: model.modelId,
    adapter: cid,
    promptIds: [1, 2, 3, 4, 5, 6, 7, 8],
    params: { maxNewTokens: 8 }
  }

  const none = await refusal(client.infer(addrOf(node), job))
  assert.is(none.code, 'PAYMENT_REQUIRED')

  const wallet = new VoucherWallet(clientAcc!, chain.domain)
  const maxAmountDue = amountDue(8, 8, PRICE)
  const v = await wallet.voucherFor({ node: operator, adapterId, maxAmountDue })
  const r = await client.infer(addrOf(node), { ...job, voucher: wire(v) })
  assert.ok(r.verification?.ok, JSON.stringify(r.verification))
  const b = r.receipt.body
  assert.is(b.voucher, voucherHash(chain.domain, v))
  assert.equal(r.receipt.eip712, {
    chainId: chain.domain.chainId,
    verifyingContract: chain.domain.settlement
  })
  assert.is(BigInt(b.amountDue), amountDue(b.promptTokens, b.outputTokens, PRICE))
  await wallet.settle({ node: operator, adapterId, amountDue: BigInt(b.amountDue) })
  assert.is((await chain.rewards()).totals.pending, BigInt(b.amountDue))

  // the same voucher again covers nothing new: the chain layer's reason reaches the client
  const replay = await refusal(client.infer(addrOf(node), { ...job, voucher: wire(v) }))
  assert.is(replay.code, 'PAYMENT_REQUIRED')
  assert.match(replay.message, /^UNDERPAID/)

  const claimed = await chain.claimer.claimNow()
  assert.is(claimed[0]?.total, BigInt(b.amountDue))
})

test('openlora infer --pay: the CLI pays from a persisted wallet, job after job', async () => {
  const chain = requireService(node.services, 'chain')
  const local = chain.localChain!
  const payer = local.accounts[3]!
  await new ChainClient({ ...chain.endpoint, account: payer }).deposit(5n * OPEN, {
    node: node.identity.operator.address as `0x${string}`
  })
  const keyFile = join(root, 'payer.key')
  await writeFile(keyFile, local.privateKeys[3]!, { mode: 0o600 })
  const stack = serving(node)
  const model = stack.models()[0]!.modelId
  const cid = (await stack.store()!.import(join(root, 'adapter-0'))).cid
  const args = ['infer', '--via', addrOf(node), '--model', model, '--adapter', cid, '--prompt-ids', '1,2,3,4']
  const pay = ['--pay', '--chain', join(root, 'paid', 'chain.json'), '--key-file', keyFile]
  pay.push('--data-dir', join(root, 'cli-client'), '--json')
  const hashes: string[] = []
  for (const n of [4, 6]) {
    const run = await runCli(...args, '--max-tokens', String(n), ...pay)
    assert.is(run.code, 0, run.err)
    const r = JSON.parse(run.out)
    assert.ok(r.verification.ok)
    assert.ok(r.receipt.body.voucher, 'paid with a voucher')
    hashes.push(r.receipt.body.voucher)
  }
  assert.is.not(hashes[0], hashes[1], 'the second job signed a larger cumulative voucher')
  const capped = await runCli(...args, '--max-tokens', '4', ...pay, '--max-price', '1')
  assert.is(capped.code, 1)
})

test.run()
