// `npm start` as a user runs it (its script, `openlora start --demo`, as a child process on a temp
// data dir): wait for the banner, run the infer command it prints through the CLI (a paid job on
// the node's own anvil), check tokens and a verified receipt, then Ctrl-C: a clean exit within
// 5 s that takes anvil down with it. The demo model was trained (assets/demo, docs/DEMO-MODEL.md):
// the answer must be made of the corpus's words and credit the contributors whose passages it
// echoes. A second start reuses the demo model and adapter.
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'

const CLI = 'src/node/cli/main.ts'
const CORPUS_WORDS = new Set(readFileSync('assets/demo/kjv-words.txt', 'utf8').split('\n').filter(Boolean))
/** as scripts/demo/corpus.ts splits the corpus */
const wordsOf = (text: string) => text.toLowerCase().match(/[a-z]+(?:'[a-z]+)*/g) ?? []
const dir = mkdtempSync(join(tmpdir(), 'openlora-start-'))
const children = new Set<ChildProcess>()

test.after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

/** Splits a printed shell command line (single quotes only, as the banner writes them). */
function shellSplit(line: string): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  let any = false
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!
    if (quoted) {
      if (ch === "'") quoted = false
      else cur += ch
    } else if (ch === "'") {
      quoted = true
      any = true
    } else if (ch === '\\' && line[i + 1] === "'") {
      cur += "'"
      i++
    } else if (/\s/.test(ch)) {
      if (cur !== '' || any) out.push(cur)
      cur = ''
      any = false
    } else cur += ch
  }
  if (cur !== '' || any) out.push(cur)
  return out
}

interface Running {
  child: ChildProcess
  banner: string
  exited: Promise<{ code: number | null; signal: string | null }>
}

async function startDemo(): Promise<Running> {
  // exactly what `npm start` runs, plus a temp data dir and an OS-chosen port
  const script = JSON.parse(readFileSync('package.json', 'utf8')).scripts.start as string
  assert.is(script, `node ${CLI} start --demo`)
  const child = spawn(
    process.execPath,
    [
      CLI,
      'start',
      '--demo',
      '--data-dir',
      dir,
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--no-mdns',
      '--gateway-port',
      '0'
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OPENLORA_LOG_LEVEL: 'warn' } }
  )
  children.add(child)
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal }))
  )
  let out = ''
  let err = ''
  child.stderr!.on('data', (d) => {
    err += d
  })
  const banner = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner within 90 s; stderr:\n${err}`)), 90_000)
    child.stdout!.on('data', (d) => {
      out += d
      if (/^Rewards:.*\n/m.test(out)) {
        clearTimeout(timer)
        resolve(out)
      }
    })
    void exited.then(({ code }) => {
      clearTimeout(timer)
      reject(new Error(`npm start exited (${code}) before its banner; stderr:\n${err}`))
    })
  })
  return { child, banner, exited }
}

function runCli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(c)
    let out = ''
    let err = ''
    c.stdout!.on('data', (d) => {
      out += d
    })
    c.stderr!.on('data', (d) => {
      err += d
    })
    c.once('exit', (code) => resolve({ code, out, err }))
  })
}

async function stopWithin5s(r: Running): Promise<void> {
  const t0 = Date.now()
  r.child.kill('SIGINT')
  const limit = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 5_000).unref())
  const res = await Promise.race([r.exited, limit])
  assert.ok(res !== 'late', `still running ${Date.now() - t0} ms after SIGINT`)
  assert.equal(res, { code: 0, signal: null }, 'a clean exit (code 0)')
}

test('npm start: banner, the printed infer command gets tokens and a verified paid receipt, clean Ctrl-C', async () => {
  const first = await startDemo()
  const b = first.banner
  assert.match(b, /DEMO/)
  assert.match(b, /model {6}openlora-demo\/kjv-base \[DEMO\] 0x[0-9a-f]{64}/)
  // the banner names the datanet's contributors and the passages each gave
  assert.match(b, /contributor 0x[0-9a-f]{40} ada: Ecclesiastes 3:1-8, Matthew 5:3-10/)
  assert.match(b, /peer id {4}12D3Koo/)
  assert.match(b, /operator {3}0x[0-9a-fA-F]{40}/)
  assert.match(b, /chain {6}local anvil 31337 at http:\/\/127\.0\.0\.1:\d+/)
  // the OpenAI API line and its curl example work as printed
  const api = /^OpenAI API: (http:\/\/127\.0\.0\.1:\d+)\/v1/m.exec(b)
  assert.ok(api, 'the banner prints the gateway URL')
  const curl = b.split('\n').find((l) => l.trim().startsWith('curl '))
  assert.ok(curl, 'the banner prints a curl example')
  const curlArgs = shellSplit(curl!.trim())
  const res = await fetch(curlArgs[1]!, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: curlArgs[curlArgs.indexOf('-d') + 1]!
  })
  assert.is(res.status, 200, await res.clone().text())
  const completion = (await res.json()) as {
    choices: { message: { content: string } }[]
    openlora: { receipt: unknown }
  }
  assert.type(completion.choices[0]!.message.content, 'string')
  assert.ok(completion.openlora.receipt)
  // the demo trains: the banner points at the ModelFactory page, whose data says training is offered
  const factory =
    /^ModelFactory: (http:\/\/127\.0\.0\.1:\d+)\/ui\/#\/factory \(admin token: "token" in (.+)\)$/m.exec(b)
  assert.ok(factory, 'the banner prints the ModelFactory page and where its admin token is')
  assert.ok(JSON.parse(readFileSync(factory![2]!, 'utf8')).token, 'the named admin file holds the token')
  const fdata = (await (await fetch(`${factory![1]}/ui/api/factory`)).json()) as { offered: boolean }
  assert.is(fdata.offered, true, 'the demo node offers training to its ModelFactory page')
  const line = b.split('\n').find((l) => l.includes('npm run openlora -- infer'))
  assert.ok(line, 'the banner prints the infer command')
  const argv = shellSplit(line!.trim())
  assert.equal(argv.slice(0, 4), ['npm', 'run', 'openlora', '--'])
  const endpoint = JSON.parse(readFileSync(join(dir, 'chain.json'), 'utf8'))

  const job = await runCli([...argv.slice(4), '--json'])
  assert.is(job.code, 0, `infer failed: ${job.out}\n${job.err}`)
  const r = JSON.parse(job.out.trim().split('\n').at(-1)!)
  assert.ok(r.outputIds.length > 0, 'tokens came back')
  assert.equal(r.verification, { ok: true })
  assert.is(r.receipt.body.modelId, 'openlora-demo/kjv-base')
  // recognisable text: words of the corpus, not byte soup
  const words = wordsOf(r.text)
  const known = words.filter((w) => CORPUS_WORDS.has(w)).length
  assert.ok(
    words.length >= 16 && known >= 0.9 * words.length,
    `answer in the corpus's words: ${JSON.stringify(r.text)}`
  )
  assert.ok(BigInt(r.receipt.body.amountDue) > 0n, 'a paid job')
  assert.ok(r.receipt.body.voucher, 'paid with a voucher')
  assert.is(r.receipt.eip712.chainId, 31337)
  // the answer echoes passages of the demo datanet: exactly their contributors are credited
  assert.is(r.receipt.body.attribution.method, 'spans')
  const spans = r.attributionProof.spans as { tokens: number[]; contribution: { contributor: string } }[]
  assert.ok(
    spans.length >= 1 && spans.some((sp) => sp.tokens.length >= 16),
    'the answer quotes a passage at length'
  )
  const quoted = new Set(spans.map((sp) => sp.contribution.contributor))
  const credited = (r.receipt.body.attribution.contributors as { address: string; bp: number }[]).map(
    (c) => c.address
  )
  assert.equal(new Set(credited), quoted, 'credited = the contributors of the quoted passages')
  for (const a of credited) assert.ok(b.includes(` ${a} `), `the banner names credited contributor ${a}`)
  const adapter = argv[argv.indexOf('--adapter') + 1]
  assert.is(r.receipt.body.adapter, adapter)

  // the banner's balance and rewards commands reach the node's chain through its data dir
  const cmd = (label: string) =>
    shellSplit(
      b
        .split('\n')
        .find((l) => l.startsWith(label))!
        .slice(label.length)
        .trim()
    )
  const bal = await runCli([...cmd('Balances:').slice(4), '--json'])
  assert.is(bal.code, 0, bal.err)
  assert.is(JSON.parse(bal.out).escrow, (100n * 10n ** 18n).toString(), 'the demo client was funded')
  // the banner's attribution command checks the job's proof against the datanet's on-chain root
  const attribution = await runCli([...cmd('Attribution:').slice(4), '--json'])
  assert.is(attribution.code, 0, attribution.out + attribution.err)
  const proof = JSON.parse(attribution.out.trim().split('\n').at(-1)!)
  assert.ok(proof.ok && proof.checked.spans >= 1, JSON.stringify(proof))
  const rew = await runCli([...cmd('Rewards:').slice(4), '--json'])
  assert.is(rew.code, 0, rew.err)
  const pending = JSON.parse(rew.out).totals.pending
  assert.ok(
    BigInt(pending) >= BigInt(r.receipt.body.amountDue),
    `the running node reports the voucher pending (${pending})`
  )

  await stopWithin5s(first)
  assert.not.ok(existsSync(join(dir, 'chain.json')), 'the endpoint file goes with the node')
  const anvilGone = await fetch(endpoint.rpcUrl, { method: 'POST', body: '{}' }).then(
    () => false,
    () => true
  )
  assert.ok(anvilGone, 'anvil stopped with the node')

  // The second start reuses the generated demo: same peer, model and adapter.
  const second = await startDemo()
  const id = (s: string, re: RegExp) => re.exec(s)?.[1]
  assert.is(id(second.banner, /peer id +(\S+)/), id(b, /peer id +(\S+)/))
  assert.is(id(second.banner, /model +(.*)$/m), id(b, /model +(.*)$/m))
  assert.is(id(second.banner, /--adapter (\S+)/), adapter)
  await stopWithin5s(second)
})

test.run()
