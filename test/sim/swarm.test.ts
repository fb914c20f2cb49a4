import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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

function run(args: string[]): {
  done: Promise<{ code: number | null; stdout: string; stderr: string }>
  pid: number
} {
  const child = spawn(process.execPath, ['scripts/swarm.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  return {
    pid: child.pid!,
    done: new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
  }
}

test('swarm of 3 converges, prints one JSON line and leaves no process behind', async () => {
  const r = await run(['--nodes', '3', '--exit-when-converged', '--json']).done
  assert.is(r.code, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  const out = JSON.parse(lines.at(-1)!) as { nodes: number; convergedMs: number; pids: number[] }
  assert.is(out.nodes, 3)
  assert.type(out.convergedMs, 'number')
  assert.ok(out.convergedMs > 0)
  assert.is(out.pids.length, 3)
  for (const pid of out.pids) assert.not.ok(alive(pid), `node process ${pid} still running`)
})

test('Ctrl-C on a live swarm stops every node', async () => {
  const base = mkdtempSync(join(tmpdir(), 'openlora-sim-'))
  try {
    const r = run(['--nodes', '3', '--json', '--base-dir', base])
    const adminFiles = [0, 1, 2].map((i) => join(base, `node-${i}`, 'admin.json'))
    const until = Date.now() + 90_000
    while (!adminFiles.every((f) => existsSync(f))) {
      if (Date.now() > until) throw new Error('swarm nodes did not come up')
      await new Promise((res) => setTimeout(res, 100))
    }
    const pids = adminFiles.map((f) => (JSON.parse(readFileSync(f, 'utf8')) as { pid: number }).pid)
    assert.ok(pids.every(alive))
    process.kill(r.pid, 'SIGINT')
    const res = await r.done
    assert.is(res.code, 130)
    for (const pid of pids) assert.not.ok(alive(pid), `node process ${pid} still running`)
    // clean stops remove each node's admin file and lock
    for (const i of [0, 1, 2]) assert.not.ok(existsSync(join(base, `node-${i}`, 'node.lock')))
  } finally {
    rmSync(base, { recursive: true, force: true })
  }
})

test.run()
