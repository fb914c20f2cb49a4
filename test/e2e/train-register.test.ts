// Training provenance reaches the chain (issue 21 → issue 15's H5): an adapter trained with
// `openlora train --datanet` is registered by `openlora adapter register` on a real anvil with
// exactly the datanets of its signed training record as declared training data; a record naming
// a datanet version the chain does not know, a tampered record, or other adapter bytes are refused.
import { spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { type LocalChain, startLocalChain } from '../../src/chain/anvil.ts'
import { ChainClient } from '../../src/chain/client.ts'
import { cidDigest } from '../../src/crypto/cid.ts'
import { toHex } from '../../src/crypto/hash.ts'
import { makeModel } from '../../src/runtime/fixtures/make-model.ts'

const dir = mkdtempSync(join(tmpdir(), 'openlora-train-register-'))
const model = join(dir, 'tiny')
await makeModel({ out: model, preset: 'tiny' })
let chain: LocalChain
const endpoint = join(dir, 'chain.json')
const key = join(dir, 'owner.key')

test.before(async () => {
  chain = await startLocalChain({ accounts: 2 })
  writeFileSync(
    endpoint,
    JSON.stringify({ rpcUrl: chain.rpcUrl, chainId: chain.chainId, addresses: chain.addresses })
  )
  writeFileSync(key, chain.privateKeys[0]!, { mode: 0o600 })
})
test.after(async () => {
  await chain?.stop()
})

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ['src/node/cli/main.ts', ...args, '--data-dir', join(dir, 'node')], {
    encoding: 'utf8'
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}
const ok = (r: { code: number | null; out: string; err: string }) => {
  assert.is(r.code, 0, r.err)
  return r.out
}
const chainArgs = () => ['--chain', endpoint, '--key-file', key]
const train = (spec: string, out: string) =>
  ok(
    cli(
      'train',
      '--model',
      model,
      '--out',
      join(dir, out),
      '--datanet',
      spec,
      '--steps',
      '2',
      '--lr',
      '0.01',
      '--optimizer',
      'sgd',
      '--seed',
      '1',
      '--json'
    )
  )

test('adapter register declares the datanets of the training record, and only known ones', async () => {
  const owner = chain.accounts[0]!.address
  const id = JSON.parse(ok(cli('datanet', 'create', '--name', 'proverbs', '--owner', owner, '--json')))
    .id as `0x${string}`
  const f = join(dir, 'rows.jsonl')
  writeFileSync(
    f,
    ['a stitch in time saves nine', 'the early bird catches the worm', 'knowledge is power']
      .map((text) => JSON.stringify({ text }))
      .join('\n')
  )
  ok(cli('datanet', 'contribute', '--datanet', id, '--file', f, '--contributor', `0x${'0a'.repeat(20)}`))
  ok(cli('datanet', 'publish', '--datanet', id))
  ok(cli('datanet', 'register', '--datanet', id, ...chainArgs()))
  const cid = JSON.parse(train(id, 'a1').trim().split('\n').at(-1)!).cid as string

  const reg = JSON.parse(
    ok(cli('adapter', 'register', join(dir, 'a1'), ...chainArgs(), '--fee', '7', '--json'))
  )
  assert.is(reg.adapter, cid)
  const reader = new ChainClient({ ...chain })
  const onChain = await reader.getAdapter(toHex(cidDigest(cid)))
  assert.equal(
    onChain.datanets.map((d) => d.toLowerCase()),
    [id.toLowerCase()]
  )
  assert.equal([...onChain.weightsBps], [10_000])
  assert.is(onChain.feePer1kTokens, 7n)
  assert.is(onChain.owner.toLowerCase(), owner.toLowerCase())

  // version 2 is published locally but not on-chain: the record cannot declare it
  writeFileSync(f, JSON.stringify({ text: 'fortune favours the bold' }))
  ok(cli('datanet', 'contribute', '--datanet', id, '--file', f, '--contributor', `0x${'0b'.repeat(20)}`))
  ok(cli('datanet', 'publish', '--datanet', id))
  train(`${id}@2`, 'a2')
  const refused = cli('adapter', 'register', join(dir, 'a2'), ...chainArgs())
  assert.is.not(refused.code, 0)
  assert.match(refused.err, /version 2 is not on-chain; run `openlora datanet register/)

  // a record edited after signing, or one describing other bytes, is refused
  cpSync(join(dir, 'a1'), join(dir, 'a3'), { recursive: true })
  const recFile = join(dir, 'a3', 'training-record.json')
  const rec = JSON.parse(readFileSync(recFile, 'utf8'))
  rec.body.datanets[0].contributors.push(`0x${'ee'.repeat(20)}`)
  writeFileSync(recFile, JSON.stringify(rec))
  assert.match(cli('adapter', 'register', join(dir, 'a3'), ...chainArgs()).err, /signature does not verify/)
  cpSync(join(dir, 'a2', 'training-record.json'), recFile)
  assert.match(
    cli('adapter', 'register', join(dir, 'a3'), ...chainArgs()).err,
    /its training record describes/
  )
})

test.run()
