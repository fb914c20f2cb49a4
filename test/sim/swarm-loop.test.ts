// The whole loop as a user runs it: `npm run swarm -- --nodes 3 --jobs 20 --chaos --json` (child
// processes: the launcher, 3 nodes, anvil). Faults hit it while jobs run (kill -9 and restart on
// the same data dir, SIGSTOP past the job deadline, kill during a claim); at the end every
// balance must reconcile to the wei against the receipts, and nothing may be left running.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['scripts/swarm.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
}

test('3 nodes, 20 paid jobs under chaos: every receipt verified and claimed once, balances reconcile to the wei', async () => {
  const r = await run(['--nodes', '3', '--jobs', '20', '--chaos', '--json'])
  const last = r.stdout.trim().split('\n').at(-1) ?? ''
  assert.is(r.code, 0, `exit ${r.code}\n${r.stderr.slice(-4000)}\n${last.slice(0, 2000)}`)
  const rep = JSON.parse(last)
  const rec = rep.reconciliation
  assert.ok(rec.ok, rec.problems.join('\n'))
  assert.equal(rec.problems, [])
  // every job is accounted for; under these faults failover saves nearly all of them
  assert.is(rep.jobs.ok + rep.jobs.failed, 20)
  assert.ok(rep.jobs.ok >= 15, `only ${rep.jobs.ok} jobs ok: ${JSON.stringify(rep.jobs.failedReasons)}`)
  assert.is(rep.receiptsVerified, rep.jobs.ok)
  assert.ok(rep.spanAttributed > 0, 'receipts credit the demo datanet by spans')
  // each fault happened, and the killed nodes came back
  const kinds = rep.chaos.map((e: { kind: string }) => e.kind)
  for (const k of ['kill', 'pause', 'resume', 'claim-kill'])
    assert.ok(kinds.includes(k), `no ${k} in ${kinds}`)
  assert.is(kinds.filter((k: string) => k === 'restart').length, 2)
  // payments: the receipts' amounts were paid on-chain, by claims, and every party got its share
  assert.ok(BigInt(rec.amountDueTotal) > 0n)
  assert.is(
    BigInt(rec.claimedTotal),
    BigInt(rec.amountDueTotal) + BigInt(rec.unusedMarginTotal) + BigInt(rec.paidWithoutReceipt)
  )
  assert.ok(rep.vouchersClaimed >= 1)
  assert.ok(rec.poolsFunded >= 1 && BigInt(rec.poolTotal) > 0n, 'contributor pools were funded')
  const roles = new Set(rec.parties.map((p: { role: string }) => p.role))
  for (const role of ['operator', 'adapter-owner', 'contributor', 'treasury', 'client'])
    assert.ok(roles.has(role))
  for (const p of rec.parties) assert.ok(p.ok, JSON.stringify(p))
  const operators = rec.parties.filter((p: { role: string }) => p.role === 'operator')
  assert.is(operators.length, 3)
  // nothing left behind: node processes (restarts included), anvil, the temp dir
  assert.ok(rep.pids.length >= 5)
  for (const pid of rep.pids) assert.not.ok(alive(pid), `node process ${pid} still running`)
  const rpc = await fetch(rep.rpcUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
  }).then(
    () => 'answered',
    () => 'gone'
  )
  assert.is(rpc, 'gone', 'anvil is stopped')
  assert.not.ok(existsSync(rep.base), `temp dir ${rep.base} removed`)
})

test('bad flags exit 2 with a message naming the flag', async () => {
  const r = await run(['--nodes', '1', '--jobs', '5'])
  assert.is(r.code, 2)
  assert.match(r.stderr, /--nodes must be at least 2/)
  const j = await run(['--nodes', '3', '--jobs', 'many'])
  assert.is(j.code, 2)
  assert.match(j.stderr, /--jobs must be an integer/)
})

test.run()
