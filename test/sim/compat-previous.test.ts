// Wire compatibility with the node as it was before wave 2 (issue 14: "a node of the previous
// commit and a node of this one still exchange adverts and jobs"). The previous commit's source is
// taken from git, run as a child process with its own CLI next to a node of this checkout, and the
// two must learn each other's adverts and route jobs both ways:
//   current client → current relay (B) → previous node (A) serving model a
//   previous CLI   → previous relay (A) → current node (B) serving model b
// Each job's receipt is verified by the client of the other version.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createClientHost } from '../../src/client/host.ts'
import { adminRequest } from '../../src/node/admin.ts'
import type { PeersAnswer } from '../../src/node/admin-routes.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { INFER_CONFIG_DEFAULTS } from '../../src/protocols/infer/extension.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'
import { startNode } from '../e2e/infer-fixture.ts'
import { until } from '../helpers/wait.ts'

/** The last commit before wave 2 changed frames' schemas, error codes and the seams. */
const PREVIOUS = '127f388'
const REPO = resolve(import.meta.dirname, '..', '..')

const root = mkdtempSync(join(tmpdir(), 'openlora-compat-'))
const children: ChildProcess[] = []

/** The previous commit's src/, config/ and package.json, sharing this checkout's node_modules. */
function checkoutPrevious(): string {
  const dir = join(root, 'previous')
  mkdirSync(dir)
  try {
    execFileSync('git', ['cat-file', '-e', `${PREVIOUS}^{commit}`], { cwd: REPO, stdio: 'ignore' })
  } catch {
    throw new Error(`commit ${PREVIOUS} is not in this clone (a shallow clone?): fetch it to run this test`)
  }
  const tar = execFileSync('git', ['archive', '--format=tar', PREVIOUS, 'src', 'config', 'package.json'], {
    cwd: REPO,
    maxBuffer: 256 * 1024 * 1024
  })
  execFileSync('tar', ['-x', '-C', dir], { input: tar })
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'))
  return dir
}

/** Runs the previous node's CLI `start`; resolves with its addresses once it printed `started`. */
function startPrevious(
  cli: string,
  dataDir: string,
  modelDir: string,
  cacheDir: string
): Promise<{ peerId: string; addrs: string[] }> {
  // the previous release refuses keys it does not know: infer.decodeKernels and
  // infer.promptKernels came after it
  const { decodeKernels: _new, promptKernels: _newer, ...known } = INFER_CONFIG_DEFAULTS
  const infer = {
    ...known,
    models: [modelDir],
    modelCacheDir: cacheDir,
    intraOpThreads: 1,
    maxBatch: 4,
    maxSeqLen: 512,
    slots: 8,
    warmBudgetMb: 64
  }
  const args = [cli, 'start', '--data-dir', dataDir, '--listen', '/ip4/127.0.0.1/tcp/0', '--no-mdns']
  for (const kv of ['log.format=json', 'adverts.heartbeatMs=1000', 'adverts.debounceMs=50'])
    args.push('--set', kv)
  args.push('--set', `infer=${JSON.stringify(infer)}`)
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let stderr = ''
  child.stderr!.on('data', (d) => {
    stderr = (stderr + d).slice(-4000)
  })
  return new Promise((ok, fail) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const ev = JSON.parse(line) as { event?: string; peerId: string; addrs: string[] }
        if (ev.event === 'started') ok(ev)
      } catch {}
    })
    child.on('exit', (code) =>
      fail(new Error(`the previous node exited (${code}) before starting: ${stderr}`))
    )
  })
}

/** The previous CLI's `infer --json`: its exit code and the JSON it printed. */
function inferWithPrevious(
  cli: string,
  args: string[]
): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [cli, 'infer', '--json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe']
  })
  children.push(child)
  let out = ''
  let err = ''
  child.stdout!.on('data', (d) => (out += d))
  child.stderr!.on('data', (d) => (err += d))
  return new Promise((ok) => child.on('close', (code) => ok({ code, out, err })))
}

test('a previous node and a current node exchange adverts and jobs both ways', async () => {
  const previous = checkoutPrevious()
  const cli = join(previous, 'src', 'node', 'cli', 'main.ts')
  assert.ok(existsSync(cli), 'the previous CLI is in the checkout')
  const cacheDir = join(root, 'model-cache')
  mkdirSync(cacheDir)
  const modelA = join(root, 'model-a')
  const modelB = join(root, 'model-b')
  await makeModel({ out: modelA, preset: 'tiny', seed: 3 })
  await makeModel({ out: modelB, preset: 'tiny', seed: 4 })
  // makeModel names a checkpoint by its preset and seed (config.json _name_or_path)
  const idA = 'openlora-fixtures/tiny-seed3'
  const idB = 'openlora-fixtures/tiny-seed4'

  const a = await startPrevious(cli, join(root, 'node-a'), modelA, cacheDir)
  const viaA = a.addrs.find((x) => x.startsWith('/ip4/127.0.0.1/tcp/') && !x.includes('/ws'))!
  let b: OpenLoraNode | undefined
  try {
    b = await startNode(
      root,
      'node-b',
      { modelDir: modelB, cacheDir, adapterDirs: [] },
      { bootstrap: [viaA], admin: true }
    )
    const nodeB = b
    // adverts, previous → current: B's PeerTable holds A's advert with A's model
    await until('the current node holds the previous node’s advert', () =>
      nodeB.peerTable
        .entries()
        .some((e) => e.peerId === a.peerId && e.advert.body.models.some((m) => m.id === idA))
    )
    // adverts, current → previous: A's /peers (its admin endpoint) lists B with B's model
    await until('the previous node holds the current node’s advert', async () => {
      const ans = await adminRequest<PeersAnswer>(join(root, 'node-a'), '/peers').catch(() => null)
      return ans?.table.some((p) => p.peerId === nodeB.peerId && p.models.some((m) => m.id === idB)) ?? false
    })

    // a job, current → previous: sent to B for model a, B forwards it to A
    const viaB = `${nodeB.libp2p
      .getMultiaddrs()
      .find((m) => m.toString().includes('/tcp/'))!
      .toString()}`
    const { client, stop } = await createClientHost()
    try {
      const r = await client.infer(viaB, {
        model: idA,
        prompt: 'hello from now',
        params: { maxNewTokens: 8 }
      })
      assert.is(r.servedBy, a.peerId, 'the previous node served it')
      assert.equal(r.route, [nodeB.peerId, a.peerId])
      assert.ok(
        r.verification?.ok,
        `the current client verifies the previous node’s receipt: ${JSON.stringify(r.verification)}`
      )
      assert.is(r.receipt.body.modelId, idA)
      assert.ok(r.outputIds.length > 0)
    } finally {
      await stop()
    }

    // a job, previous → current: the previous CLI sends it to A for model b, A forwards it to B
    const res = await inferWithPrevious(cli, [
      '--via',
      viaA,
      '--model',
      idB,
      '--prompt',
      'hello from before',
      '--max-tokens',
      '8'
    ])
    assert.is(res.code, 0, `previous CLI: ${res.out}${res.err}`)
    const out = JSON.parse(res.out.trim().split('\n').at(-1)!) as {
      servedBy: string
      route: string[]
      verification: { ok: boolean }
      receipt: { body: { modelId: string } }
    }
    assert.is(out.servedBy, nodeB.peerId, 'the current node served it')
    assert.equal(out.route, [a.peerId, nodeB.peerId])
    assert.ok(out.verification.ok, 'the previous client verifies the current node’s receipt')
    assert.is(out.receipt.body.modelId, idB)

    // an error code the previous client does not know: B cut off from A (A's advert still known),
    // a job for model a at B is PEER_UNREACHABLE, which crosses the wire as INTERNAL with the code
    // before the message, so the previous client decodes it and shows why (a new class would have
    // reached it as a malformed frame)
    await adminRequest(join(root, 'node-b'), '/peers/block', 5_000, { peers: [a.peerId], ms: 120_000 })
    await until('B hung up on A', () =>
      nodeB.libp2p.getConnections().every((c) => c.remotePeer.toString() !== a.peerId)
    )
    const cut = await inferWithPrevious(cli, [
      '--via',
      viaB,
      '--model',
      idA,
      '--prompt',
      'hi',
      '--max-tokens',
      '4'
    ])
    assert.is(cut.code, 1, `previous CLI: ${cut.out}${cut.err}`)
    const { error } = JSON.parse(cut.out.trim().split('\n').at(-1)!) as {
      error: { code: string; message: string; retryAfterMs: number | null }
    }
    assert.is(error.code, 'INTERNAL')
    assert.ok(
      error.message.startsWith(`PEER_UNREACHABLE: could not dial serving peer ${a.peerId}`),
      error.message
    )
    assert.is(error.retryAfterMs, 1000)
  } finally {
    await b?.stop()
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
    await Promise.all(
      children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined))
    )
    rmSync(root, { recursive: true, force: true })
  }
})

test.run()
