// The datanet commands end to end in one process: create → contribute → publish → show →
// attribute → verify-proof, on a temporary data dir and the fixture tokenizer.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { makeTokenizerConfig, makeTokenizerJson } from '../../src/runtime/fixtures/make-model.ts'
import { runCli } from '../helpers/cli.ts'
import { ADDR } from './attribution-fixtures.ts'

let dir: string
let dataDir: string
let modelDir: string

test.before(() => {
  process.env.OPENLORA_LOG_LEVEL = 'warn'
  dir = mkdtempSync(join(tmpdir(), 'datanet-cli-'))
  dataDir = join(dir, 'node')
  modelDir = join(dir, 'model')
  mkdirSync(modelDir)
  writeFileSync(join(modelDir, 'tokenizer.json'), JSON.stringify(makeTokenizerJson(512)))
  writeFileSync(join(modelDir, 'tokenizer_config.json'), JSON.stringify(makeTokenizerConfig()))
})
test.after(() => rmSync(dir, { recursive: true, force: true }))

/** Runs the CLI on this test's data dir. */
const cli = (...argv: string[]) => runCli(...argv, '--data-dir', dataDir)

test('create, contribute, publish, show, attribute and verify-proof from the command line', async () => {
  const created = await cli(
    'datanet',
    'create',
    '--name',
    'stories',
    '--owner',
    ADDR.alice,
    '--tag',
    'en',
    '--json'
  )
  assert.is(created.code, 0, created.err)
  const id = JSON.parse(created.out).id as string
  assert.match(id, /^0x[0-9a-f]{64}$/)

  writeFileSync(
    join(dir, 'a.md'),
    'The river carried the small boat past the mill, where the miller counted his sacks of grain.'
  )
  writeFileSync(
    join(dir, 'b.jsonl'),
    '{"text":"A lighthouse keeper wrote every evening about the ships, the weather and the gulls on the rail."}\n'
  )
  assert.is(
    (
      await cli(
        'datanet',
        'contribute',
        '--datanet',
        id,
        '--file',
        join(dir, 'a.md'),
        '--contributor',
        ADDR.alice
      )
    ).code,
    0
  )
  const c = await cli(
    'datanet',
    'contribute',
    '--datanet',
    id,
    '--file',
    join(dir, 'b.jsonl'),
    '--contributor',
    ADDR.bob,
    '--json'
  )
  assert.is(JSON.parse(c.out)[0].source, 'b.jsonl#1')

  const pub = await cli('datanet', 'publish', '--datanet', id, '--json')
  assert.is(pub.code, 0, pub.err)
  const v = JSON.parse(pub.out)
  assert.is(v.version, 1)
  assert.match(v.root, /^0x[0-9a-f]{64}$/)
  const again = await cli('datanet', 'publish', '--datanet', id)
  assert.is(again.code, 1)
  assert.match(again.err, /no contributions since version 1/)

  const show = await cli('datanet', 'show', '--datanet', id, '--json')
  const shown = JSON.parse(show.out)
  assert.is(shown.contributions, 2)
  assert.is(shown.versions[0].root, v.root)
  assert.match((await cli('datanet', 'show')).out, /stories {2}v1 {2}2 contributions/)

  const adapterCid = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
  const prov = await cli('datanet', 'provenance', '--adapter', adapterCid, '--datanet', id, '--json')
  assert.is(prov.code, 0, prov.err)
  assert.equal(JSON.parse(prov.out).provenance, { datanets: [{ id, version: 1, bp: 10_000 }] })
  assert.match((await cli('datanet', 'provenance')).out, new RegExp(`${adapterCid} {2}${id}@1 {2}10000 bp`))
  const badProv = await cli('datanet', 'provenance', '--adapter', adapterCid, '--datanet', `${id}=9000`)
  assert.is(badProv.code, 1)
  assert.match(badProv.err, /sum to exactly 10000 bp, got 9000/)

  const proofFile = join(dir, 'proof.json')
  const text = 'Then the lighthouse keeper wrote every evening about the ships, the weather and the gulls.'
  const attr = await cli(
    'datanet',
    'attribute',
    '--model',
    modelDir,
    '--datanet',
    id,
    '--text',
    text,
    '--out',
    proofFile,
    '--json'
  )
  assert.is(attr.code, 0, attr.err)
  const summary = JSON.parse(attr.out)
  assert.is(summary.method, 'spans')
  assert.equal(summary.contributors, [{ address: ADDR.bob, bp: 10_000 }])

  const ok = await cli('datanet', 'verify-proof', proofFile, '--model', modelDir)
  assert.is(ok.code, 0, ok.out + ok.err)
  assert.match(ok.out, /^OK: 1 span proofs checked against 1 roots/)
  // Against a root given on the command line (as read from the chain), a wrong one fails.
  const wrongRoot = `${id}@1=0x${'12'.repeat(32)}`
  const bad = await cli('datanet', 'verify-proof', proofFile, '--root', wrongRoot, '--json')
  assert.is(bad.code, 1)
  const res = JSON.parse(bad.out)
  assert.ok(res.failures.some((f: { check: string }) => f.check === 'root'))

  // A changed chunk byte in the file is caught and named.
  writeFileSync(proofFile, readFileSync(proofFile, 'utf8').replace('lighthouse keeper', 'lighthouse-keeper'))
  const tampered = await cli('datanet', 'verify-proof', proofFile, '--model', modelDir)
  assert.is(tampered.code, 1)
  assert.match(tampered.out, /chunk \(span 0\): chunk 0 does not hash/)
})

test('bad input is refused with the rule that was broken', async () => {
  const r = await cli(
    'datanet',
    'contribute',
    '--datanet',
    `0x${'0'.repeat(64)}`,
    '--file',
    'x.txt',
    '--contributor',
    'nobody'
  )
  assert.is(r.code, 1)
  assert.match(r.err, /contributor must be a 0x-prefixed 20-byte hex address/)
  const u = await cli('datanet', 'publish')
  assert.is(u.code, 2)
  assert.match(u.err, /--datanet is required/)
  const a = await cli('datanet', 'attribute', '--model', modelDir, '--datanet', 'abc', '--text', 'x')
  assert.is(a.code, 2)
  assert.match(a.err, /ID\[@VERSION\]\[=BP\]/)
})

test.run()
