// `openlora adapter fetch CID` against real nodes: the running node of the data dir fetches the
// adapter over /openlora/adapter/1.0.0 from the peer named (or one whose advert lists it) into its
// store, and the command shows the bytes as they arrive: with --json progress lines whose byte
// counts grow to the adapter's size, then the result; off a terminal short lines on stderr; on a
// pseudo-terminal (util-linux `script`) a bar with bytes, rate and ETA. Refusals are named and
// leave the node running.
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { cidForBytes } from '../../src/crypto/cid.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { makeAdapter } from '../../src/runtime/fixtures/make-adapter.ts'
import {
  addrOf,
  type Fixtures,
  makeFixtures,
  runCli,
  sees,
  serving,
  startNode,
  until
} from './infer-fixture.ts'

const root = await mkdtemp(join(tmpdir(), 'adapter-fetch-cli-'))
const ESC = '\u001b'
const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
// rank 64 on every projection of the tiny model: 512 KiB of weights, eight 64 KiB data frames
const infer = { maxRank: 64 }
let fx: Fixtures
let holder: OpenLoraNode
let fetcher: OpenLoraNode
const cids: string[] = []
const dataDir = join(root, 'fetcher')

test.before(async () => {
  fx = await makeFixtures(root, 0)
  holder = await startNode(root, 'holder', fx, { infer })
  for (let i = 0; i < 4; i++) {
    const out = join(root, `big-${i}`)
    await makeAdapter({ model: fx.modelDir, out, rank: 64, targets: ALL, seed: 70 + i })
    cids.push((await serving(holder).importAdapter(out)).cid)
  }
  fetcher = await startNode(root, 'fetcher', fx, { infer, admin: true, bootstrap: [addrOf(holder)] })
})

test.after(async () => {
  await fetcher?.stop()
  await holder?.stop()
  await rm(root, { recursive: true, force: true })
})

const sizeOf = async (cid: string) => (await serving(holder).store()!.entry(cid))!.sizeBytes

/** The CLI in a child process (a user's shell), optionally on a pseudo-terminal. */
function child(args: string[], tty = false): Promise<{ code: number | null; out: string; err: string }> {
  const argv = [process.execPath, 'src/node/cli/main.ts', ...args]
  const [cmd, cmdArgs] = tty
    ? ['script', ['-q', '-e', '-c', argv.map((a) => `'${a}'`).join(' '), '/dev/null']]
    : [argv[0]!, argv.slice(1)]
  return new Promise((resolve, reject) => {
    const p = spawn(cmd as string, cmdArgs as string[], { env: { ...process.env, COLUMNS: '140' } })
    let out = ''
    let err = ''
    p.stdout.on('data', (d) => (out += d))
    p.stderr.on('data', (d) => (err += d))
    p.on('error', reject)
    p.on('close', (code) => resolve({ code, out, err }))
  })
}

test('--json: progress lines with growing byte counts up to the adapter size, then the result', async () => {
  const cid = cids[0]!
  const size = await sizeOf(cid)
  assert.ok(size > 8 * 64 * 1024, `${size} bytes: several data frames`)
  const r = await runCli('adapter', 'fetch', cid, '--from', addrOf(holder), '--data-dir', dataDir, '--json')
  assert.is(r.code, 0, r.err)
  const lines = r.out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  const done = lines.at(-1)
  assert.equal(
    { ...done, seconds: 0 },
    {
      event: 'done',
      cid,
      model: serving(fetcher).models()[0]!.modelId,
      added: true,
      peer: holder.peerId,
      bytes: size,
      seconds: 0
    }
  )
  const progress = lines.slice(0, -1)
  assert.ok(progress.length >= 2, r.out)
  for (const p of progress)
    assert.equal([p.event, p.cid, p.peer, p.total], ['progress', cid, holder.peerId, size])
  assert.is(progress[0].received, 0)
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i].received > progress[i - 1].received, r.out)
  assert.is(progress.at(-1).received, size)
  assert.ok(await serving(fetcher).store()!.has(cid), 'in the fetching node’s store')
  // again: already there, nothing fetched, no progress
  const again = await runCli(
    'adapter',
    'fetch',
    cid,
    '--from',
    addrOf(holder),
    '--data-dir',
    dataDir,
    '--json'
  )
  assert.is(again.code, 0, again.err)
  const [only, ...rest] = again.out.trim().split('\n')
  assert.equal(rest, [])
  assert.equal([JSON.parse(only!).added, JSON.parse(only!).bytes], [false, size])
})

test('without --from the node fetches from a peer whose advert lists the adapter', async () => {
  const cid = cids[1]!
  await until('the fetcher sees the holder advertise it', () => sees(fetcher, holder, cid, ['cold']))
  const r = await runCli('adapter', 'fetch', cid, '--data-dir', dataDir)
  assert.is(r.code, 0, r.err)
  assert.match(
    r.out,
    new RegExp(`^fetched ${cid} into \\S+: 5\\d\\d\\.\\d KiB from ${holder.peerId} in \\d+\\.\\d s$`)
  )
  assert.ok(await serving(fetcher).store()!.has(cid))
})

test('off a terminal: progress lines on stderr; on a pseudo-terminal: a bar with bytes, rate and ETA', async () => {
  const size = await sizeOf(cids[2]!)
  const label = (cid: string) => `adapter ${cid.slice(0, 12)}…${cid.slice(-6)}`
  const lines = await child(['adapter', 'fetch', cids[2]!, '--from', addrOf(holder), '--data-dir', dataDir])
  assert.is(lines.code, 0, lines.err)
  const shown = lines.err.split('\n').filter((l) => l.startsWith(`${label(cids[2]!)}: `))
  assert.match(shown[0]!, / (0 B|\d+\.\d+ KiB) \/ 5\d\d\.\d KiB \(\d+%\)$/)
  assert.is(
    shown.at(-1),
    `${label(cids[2]!)}: ${(size / 1024).toFixed(1)} KiB / ${(size / 1024).toFixed(1)} KiB (100%)`
  )
  assert.not.ok(lines.err.includes(ESC), 'no escape codes off a terminal')
  assert.match(lines.out, /^fetched /)

  const bar = await child(
    ['adapter', 'fetch', cids[3]!, '--from', addrOf(holder), '--data-dir', dataDir],
    true
  )
  assert.is(bar.code, 0, bar.out + bar.err)
  assert.match(
    bar.out,
    new RegExp(
      `${label(cids[3]!).replace('…', '.')} \\[#{24}\\] 100% \\| 5\\d\\d\\.\\d KiB / 5\\d\\d\\.\\d KiB \\| [\\d.]+ [KMG]?i?B/s \\| ETA`
    )
  )
  assert.ok(bar.out.includes(`${ESC}[?25l`) && bar.out.includes(`${ESC}[?25h`), 'cursor hidden, then shown')
  assert.not.ok(bar.out.includes(`${label(cids[3]!)}: `), 'no progress lines on a terminal')
  for (const cid of cids) assert.ok(await serving(fetcher).store()!.has(cid))
})

test('refusals are named and the node keeps running', async () => {
  const usage = await runCli('adapter', 'fetch', 'not-a-cid', '--data-dir', dataDir)
  assert.is(usage.code, 2)
  assert.match(usage.err, /not a valid CID/)
  // a CID nobody holds, from a peer that answers: the peer's refusal is named
  const missing = cidForBytes(new TextEncoder().encode('no such adapter'))
  const none = await runCli(
    'adapter',
    'fetch',
    missing,
    '--from',
    addrOf(holder),
    '--data-dir',
    dataDir,
    '--json'
  )
  assert.is(none.code, 1)
  assert.match(none.err, /could not fetch adapter .* peer has no such adapter/)
  assert.is(none.out, '', 'no JSON lines for a fetch that never started')
  const nobody = await runCli('adapter', 'fetch', missing, '--data-dir', dataDir)
  assert.is(nobody.code, 1)
  assert.match(nobody.err, /none advertises adapter .* DHT found no provider/)
  const badPeer = await runCli('adapter', 'fetch', missing, '--from', 'nobody', '--data-dir', dataDir)
  assert.is(badPeer.code, 1)
  assert.match(badPeer.err, /nobody is neither a peer id nor a multiaddr/)
  const model = await runCli('adapter', 'fetch', missing, '--model', 'no-such-model', '--data-dir', dataDir)
  assert.is(model.code, 1)
  assert.match(model.err, /model no-such-model is not served here/)
  const noNode = await runCli('adapter', 'fetch', missing, '--data-dir', join(root, 'nothing-here'))
  assert.is(noNode.code, 1)
  assert.match(noNode.err, /no running node found for data dir/)
  // still serving its admin endpoint
  const list = await runCli('adapter', 'list', '--data-dir', dataDir, '--json')
  assert.is(JSON.parse(list.out).adapters.length, cids.length)
})

test.run()
