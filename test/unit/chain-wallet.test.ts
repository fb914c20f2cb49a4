// The client's VoucherWallet: pays ahead for the worst case, spends the margin on the next job,
// never signs less than before, and remembers across a restart (real LevelDB in a temp dir).
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { test } from 'uvu'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { verifyVoucherSignature } from '../../src/chain/eip712.ts'
import { VoucherWallet } from '../../src/chain/wallet.ts'

const domain = { chainId: 31337, settlement: '0x5FbDB2315678afecb367f032d93F642f64180aa3' as const }
const node = privateKeyToAccount(generatePrivateKey()).address
const adapterId = `0x${'ab'.repeat(32)}` as const

test('pay ahead, settle, and spend the margin', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'openlora-wallet-'))
  try {
    const key = generatePrivateKey()
    let db = new Level<string, string>(dir)
    let w = new VoucherWallet(privateKeyToAccount(key), domain, { db })
    const v1 = await w.voucherFor({ node, adapterId, maxAmountDue: 100n })
    assert.equal(v1.cumulativeAmount, 100n)
    assert.ok(await verifyVoucherSignature(domain, v1))
    // while the first job runs, a second one on the channel signs above both worst cases: the
    // node reserves each job's worst case, so concurrent jobs need room for each other
    assert.equal((await w.voucherFor({ node, adapterId, maxAmountDue: 10n })).cumulativeAmount, 110n)
    w.release({ node, adapterId, maxAmountDue: 10n })
    await w.settle({ node, adapterId, amountDue: 30n })
    w.release({ node, adapterId, maxAmountDue: 100n })
    // owed 30 + worst case 50 = 80 < 110 signed: the same 110 covers it
    assert.equal((await w.voucherFor({ node, adapterId, maxAmountDue: 50n })).cumulativeAmount, 110n)
    await w.settle({ node, adapterId, amountDue: 50n })
    w.release({ node, adapterId, maxAmountDue: 50n })
    assert.equal((await w.voucherFor({ node, adapterId, maxAmountDue: 100n })).cumulativeAmount, 180n)
    await db.close()

    db = new Level<string, string>(dir)
    w = new VoucherWallet(privateKeyToAccount(key), domain, { db })
    assert.deepEqual(await w.channel(node, adapterId), { signed: 180n, owed: 80n })
    assert.equal((await w.voucherFor({ node, adapterId, maxAmountDue: 1n })).cumulativeAmount, 180n)
    await assert.rejects(
      w.voucherFor({ node: adapterId.slice(0, 42) as `0x${string}`, adapterId, maxAmountDue: 0n }),
      /free job/
    )
    await db.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
