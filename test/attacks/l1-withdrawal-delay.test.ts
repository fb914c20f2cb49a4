// L1 (docs/THREATS.md): a client served by a node asks for its escrow back at once; if the
// withdrawal delay were shorter than the node's claim interval, the client could withdraw before
// the node claims and keep the tokens it was served. Settlement now refuses any delay under
// MIN_WITHDRAWAL_DELAY (1 hour), and a node refuses to start with a claim interval above half
// the deployed delay, so it always claims before a withdrawal can unlock.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { toFunctionSelector } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { startLocalChain } from '../../src/chain/anvil.ts'
import { ChainService } from '../../src/chain/service.ts'

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

test.run()
