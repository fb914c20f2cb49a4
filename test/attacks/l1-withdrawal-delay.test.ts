// L1 (docs/THREATS.md): a client served by a node asks for its escrow back at once; if the
// withdrawal delay were shorter than the node's claim interval, the client could withdraw before
// the node claims and keep the tokens it was served. Settlement now refuses any delay under
// MIN_WITHDRAWAL_DELAY (1 hour), and a node refuses to start with a claim interval above half
// the deployed delay, so it always claims before a withdrawal can unlock. The race itself: a
// client served a job asks to withdraw at once; it cannot take anything before the delay, the
// node's own claim round (on its timer) lands meanwhile, and after the delay the client gets back
// exactly its deposit less what it owed, never the tokens it was served.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type Hex, toFunctionSelector } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { startLocalChain } from '../../src/chain/anvil.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { amountDue, signVoucher } from '../../src/chain/eip712.ts'
import { ChainCallError } from '../../src/chain/errors.ts'
import { ChainService } from '../../src/chain/service.ts'
import { splitPayment } from '../../src/chain/shares.ts'
import { until } from '../helpers/wait.ts'

test('a deployment with a withdrawal delay shorter than a claim interval is refused', async () => {
  let chain: Awaited<ReturnType<typeof startLocalChain>> | undefined
  try {
    chain = await startLocalChain({ withdrawalDelaySec: 60 })
  } catch (err) {
    // the constructor's custom error, by its selector (the deploy path has no ABI to decode it)
    assert.match(String((err as Error).cause), /deploy Settlement failed/)
    assert.match(String((err as Error).cause), toFunctionSelector('WithdrawalDelayTooShort(uint64,uint64)'))
    return
  } finally {
    await chain?.stop()
  }
  assert.unreachable('Settlement deployed with a 60 s withdrawal delay')
})

test('a node whose claim interval exceeds half the delay refuses to start, naming the key', async () => {
  const root = await mkdtemp(join(tmpdir(), 'attack-l1-'))
  const chain = await startLocalChain({ withdrawalDelaySec: 3600 })
  const db = new Level<string, string>(join(root, 'db'))
  try {
    const svc = new ChainService(
      {
        chain: { rpcUrl: chain.rpcUrl, chainId: chain.chainId, addresses: chain.addresses },
        claimer: { claimIntervalSec: 3000 }
      },
      { db, operator: privateKeyToAccount(generatePrivateKey()) }
    )
    try {
      await svc.start()
      await svc.stop()
      assert.unreachable('started with a claim interval longer than half the withdrawal delay')
    } catch (err) {
      assert.match((err as Error).message, /chain\.claimIntervalSec \(3000 s\) must be at most half/)
    }
  } finally {
    await db.close()
    await chain.stop()
    await rm(root, { recursive: true, force: true })
  }
})

test('the withdrawal race: a client that asks for its escrow right after a job cannot outrun the claim', async () => {
  const root = await mkdtemp(join(tmpdir(), 'attack-l1-race-'))
  const chain = await startLocalChain({ accounts: 4, withdrawalDelaySec: 3600 })
  const db = new Level<string, string>(join(root, 'db'))
  const operator = privateKeyToAccount(generatePrivateKey())
  // claims on its timer only (1 s, well under half the delay), never on a threshold
  const svc = new ChainService(
    {
      chain: { rpcUrl: chain.rpcUrl, chainId: chain.chainId, addresses: chain.addresses },
      claimer: { claimIntervalSec: 1, minClaim: 10n ** 30n }
    },
    { db, operator }
  )
  try {
    await chain.setEthBalance(operator.address, 10n ** 20n)
    const clientAcc = chain.accounts[2]!
    const client = new ChainClient({ ...chain, account: clientAcc })
    const deposit = 10n * OPEN
    await client.deposit(deposit, { node: operator.address })
    await svc.start()
    const due = amountDue(500, 500, OPEN)
    const v = await signVoucher(clientAcc, svc.domain, {
      node: operator.address,
      adapterId: ZERO,
      cumulativeAmount: due
    })
    const job = await svc.openJob(v, {
      jobId: `0x${'01'.repeat(16)}`,
      adapterId: ZERO,
      maxAmountDue: due,
      promptTokens: 500,
      pricePer1kTokens: OPEN
    })
    await job.finish({ amountDue: due })
    // served: the client asks for everything back at once
    await client.requestWithdrawal(operator.address)
    const locked = await client.withdraw(operator.address, deposit).then(
      () => undefined,
      (err: unknown) => err
    )
    assert.instance(locked, ChainCallError, 'nothing leaves the escrow before the delay')
    assert.is((locked as ChainCallError).revert, 'WithdrawalLocked')
    // the node's timer claims while the escrow is locked
    await until(
      'the node claims the job',
      async () => (await client.claimedOf(clientAcc.address, operator.address, ZERO)) === due,
      15_000
    )
    await chain.increaseTime(3601)
    // the served tokens are the node's: the whole deposit is no longer there
    const tooMuch = await client.withdraw(operator.address, deposit).then(
      () => undefined,
      (err: unknown) => err
    )
    assert.is((tooMuch as ChainCallError).revert, 'AmountTooLarge')
    const before = await client.tokenBalance(clientAcc.address)
    await client.withdraw(operator.address, deposit - due)
    assert.is((await client.tokenBalance(clientAcc.address)) - before, deposit - due)
    assert.is((await client.escrowOf(clientAcc.address, operator.address)).balance, 0n)
    assert.is(await client.creditsOf(operator.address), splitPayment(due).node, 'the node is paid to the wei')
  } finally {
    await svc.stop().catch(() => {})
    await db.close()
    await chain.stop()
    await rm(root, { recursive: true, force: true })
  }
})

const OPEN = 10n ** 18n
const ZERO = `0x${'00'.repeat(32)}` as Hex

test.run()
