// config/default.json is the schema defaults written out, and `openlora config print | schema`
// show a user the effective config (with where each value came from) and the JSON Schema.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import defaults from '../../config/default.json' with { type: 'json' }
import { configDefaults } from '../../src/node/config/load.ts'
import { runCli } from '../helpers/cli.ts'

const tmp = mkdtempSync(join(tmpdir(), 'openlora-config-cli-'))

test('config/default.json holds every section and equals the schema defaults', () => {
  const fromSchema = configDefaults()
  assert.equal(
    defaults,
    fromSchema,
    `config/default.json differs from the schema defaults; it should read:\n${JSON.stringify(fromSchema, null, 2)}`
  )
  for (const section of ['network', 'chain', 'attribution', 'infer']) assert.ok(section in defaults, section)
})

test('config print: every key with its value and where it came from', async () => {
  const file = join(tmp, 'node.json')
  writeFileSync(file, JSON.stringify({ network: { maxConnections: 12 }, infer: { slots: 4 } }))
  const saved = process.env.OPENLORA_ADVERTS__TTL_MS
  process.env.OPENLORA_ADVERTS__TTL_MS = '60000'
  try {
    const r = await runCli('config', 'print', '--config', file, '--set', 'infer.maxQueued=7')
    assert.is(r.code, 0, r.err)
    const line = (key: string): string => r.out.split('\n').find((l) => l.startsWith(`${key} = `)) ?? ''
    assert.is(line('network.maxConnections'), `network.maxConnections = 12  (file ${file})`)
    assert.is(line('network.targetPeers'), 'network.targetPeers = 8  (default)')
    assert.is(line('adverts.ttlMs'), 'adverts.ttlMs = 60000  (env OPENLORA_ADVERTS__TTL_MS)')
    assert.is(line('infer.maxQueued'), 'infer.maxQueued = 7  (--set infer.maxQueued)')
    assert.is(line('infer.slots'), `infer.slots = 4  (file ${file})`)
    const json = await runCli('config', 'print', '--json', '--demo')
    const { config, sources } = JSON.parse(json.out) as {
      config: { chain: { preset: string } }
      sources: Record<string, string>
    }
    assert.is(config.chain.preset, 'local')
    assert.is(sources['chain.preset'], 'start --demo default')
  } finally {
    if (saved === undefined) delete process.env.OPENLORA_ADVERTS__TTL_MS
    else process.env.OPENLORA_ADVERTS__TTL_MS = saved
  }
})

test('config print: a bad value fails with the key, the value, what is allowed and the source', async () => {
  const r = await runCli('config', 'print', '--set', 'infer.slots=1')
  assert.is(r.code, 1)
  assert.match(
    r.err,
    /config key "infer\.slots" \(from --set infer\.slots\) has value 1; allowed: an integer in 2\.\.100000/
  )
})

test('config schema: a JSON Schema with every section, its limits and defaults', async () => {
  const r = await runCli('config', 'schema')
  assert.is(r.code, 0, r.err)
  const s = JSON.parse(r.out) as {
    $schema: string
    properties: Record<string, { properties: Record<string, Record<string, unknown>> }>
    additionalProperties: boolean
  }
  assert.match(s.$schema, /json-schema\.org/)
  assert.is(s.additionalProperties, false)
  assert.equal(s.properties.network!.properties.maxConnections, {
    default: 100,
    type: 'integer',
    minimum: 1,
    maximum: 10000
  })
  assert.equal(s.properties.infer!.properties.executionProvider!.enum, ['cpu', 'cuda'])
  assert.is(s.properties.chain!.properties.maxBatch!.default, 100)
})

test.after(() => rmSync(tmp, { recursive: true, force: true }))
test.run()
