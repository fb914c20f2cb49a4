// A node told to stop while it is still starting (the swarm's Ctrl-C landing just as a node
// comes up) stops cleanly: exit 0, its lock and admin file gone. Before the start command put
// its signal handlers first, SIGTERM in that window took the default action and left the lock.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'

const CLI = resolve(import.meta.dirname, '../../src/node/cli/main.ts')

async function stopWhen(seen: 'lock' | 'admin'): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'openlora-start-signal-'))
  try {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'start',
        '--data-dir',
        dir,
        '--listen',
        '/ip4/127.0.0.1/tcp/0',
        '--gateway-port',
        '0',
        '--no-mdns',
        '--set',
        'hardware.detect=false',
        '--set',
        'log.format=json'
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] }
    )
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
      child.on('exit', (code, signal) => res({ code, signal }))
    )
    // the lock appears as the data dir opens, the admin file as the last start step finishes
    const file = join(dir, seen === 'lock' ? 'node.lock' : 'admin.json')
    const until = Date.now() + 60_000
    while (!existsSync(file)) {
      if (Date.now() > until) throw new Error(`${file} never appeared; stderr:\n${stderr}`)
      await new Promise((r) => setTimeout(r, 1))
    }
    child.kill('SIGTERM')
    const { code, signal } = await exited
    assert.is(signal, null, `killed by ${signal} instead of stopping; stderr:\n${stderr}`)
    assert.is(code, 0, stderr)
    assert.not.ok(existsSync(join(dir, 'node.lock')), 'lock left behind')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('SIGTERM as the data dir is locked stops the node cleanly', () => stopWhen('lock'))

test('SIGTERM as the admin file appears stops the node cleanly', () => stopWhen('admin'))

test.run()
