// M1 (docs/THREATS.md): a node publishes every contributor pool it funded, leaves included, as
// <dataDir>/pools.json; after the node is gone, a contributor (or anyone for it) withdraws from
// that file alone with `openlora rewards withdraw-contribution`, which checks each rebuilt tree
// against the pool's on-chain commitment. A tampered file pays nothing.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import type { Address } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { startLocalChain } from '../../src/chain/anvil.ts'
import { ChainService } from '../../src/chain/service.ts'
import { runCli } from '../helpers/cli.ts'
import { paidAttributedJob, poolParties } from './pools-fixture.ts'

const OPEN = 10n ** 18n

test('a contributor withdraws from the published pools file after the node is gone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'published-pools-'))
  const chain = await startLocalChain({ accounts: 5 })
  try {
    const { owner, client, clientAcc, ids, bob, alice } = await poolParties(chain)
    const operator = privateKeyToAccount(generatePrivateKey())
    await chain.setEthBalance(operator.address, 10n ** 20n)
    await client.deposit(10n * OPEN, { node: operator.address })
    const poolsFile = join(dir, 'pools.json')
    const db = new Level<string, string>(join(dir, 'db'))
    const svc = new ChainService(
      {
        chain: { rpcUrl: chain.rpcUrl, chainId: chain.chainId, addresses: chain.addresses },
        claimer: { claimIntervalSec: 600, minClaim: 10n ** 30n },
        poolsFile
      },
      { db, operator }
    )
    await svc.start()
    // one paid job whose receipt credits Bob 3/4 and Alice 1/4 of the datanet's share
    await paidAttributedJob(svc, clientAcc, operator.address, ids, [
      { address: bob, bp: 7_500 },
      { address: alice, bp: 2_500 }
    ])
    const [claim] = await svc.claimer.claimNow()
    assert.equal(claim?.poolIds.length, 1, 'the claim funded one pool')
    await svc.stop()
    await db.close()

    // the node is gone; the file is all a contributor has
    const published = JSON.parse(readFileSync(poolsFile, 'utf8'))
    const leaf = published.pools[0].leaves.find((l: { account: Address }) => l.account === bob)
    assert.ok(leaf, "Bob's leaf is published")
    const key = join(dir, 'payer.key')
    writeFileSync(key, `${chain.privateKeys[3]}\n`, { mode: 0o600 })
    const flags = ['--rpc', chain.rpcUrl, '--settlement', chain.addresses.settlement, '--key-file', key]
    // a tampered copy (Bob's leaf doubled) does not match the on-chain commitment: nothing paid
    const tampered = join(dir, 'tampered.json')
    const bad = structuredClone(published)
    for (const l of bad.pools[0].leaves) if (l.account === bob) l.amount = String(BigInt(l.amount) * 2n)
    writeFileSync(tampered, JSON.stringify(bad))
    const t = await runCli('rewards', 'withdraw-contribution', bob, '--pools', tampered, ...flags, '--json')
    assert.equal(t.code, 0, t.err)
    assert.equal(JSON.parse(t.out).mismatched, 1)
    assert.equal(await owner.tokenBalance(bob), 0n)
    const r = await runCli('rewards', 'withdraw-contribution', bob, '--pools', poolsFile, ...flags, '--json')
    assert.equal(r.code, 0, r.err)
    assert.equal(await owner.tokenBalance(bob), BigInt(leaf.amount), "Bob holds his leaf's amount")
    // paid once: a second run withdraws nothing
    const again = await runCli(
      'rewards',
      'withdraw-contribution',
      bob,
      '--pools',
      poolsFile,
      ...flags,
      '--json'
    )
    assert.equal(JSON.parse(again.out).paid, '0')
    assert.equal(await owner.tokenBalance(bob), BigInt(leaf.amount))
  } finally {
    await chain.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
