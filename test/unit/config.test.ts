import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import defaults from '../../config/default.json' with { type: 'json' }
import { z } from '../../src/common/schema.ts'
import { envKey, loadConfig } from '../../src/node/config/load.ts'
import { ConfigError } from '../../src/node/config/schema.ts'
import { detectHardware, parseNvidiaSmi } from '../../src/node/hardware.ts'

const tmp = mkdtempSync(join(tmpdir(), 'openlora-config-'))
const file = (name: string, body: unknown): string => {
  const p = join(tmp, name)
  writeFileSync(p, typeof body === 'string' ? body : JSON.stringify(body))
  return p
}

function throwsConfig(fn: () => unknown, key: string, ...mentions: string[]): ConfigError {
  try {
    fn()
  } catch (err) {
    assert.instance(err, ConfigError)
    const e = err as ConfigError
    assert.is(e.data.key, key, e.message)
    assert.ok(e.message.includes(`"${key}"`), e.message)
    for (const m of mentions) assert.ok(e.message.includes(m), `"${m}" not in: ${e.message}`)
    return e
  }
  assert.unreachable(`expected a ConfigError for ${key}`)
  throw new Error('unreachable')
}

test('embedded defaults load and validate, dataDir resolved', () => {
  const c = loadConfig({ env: {} })
  assert.is(c.network.mdns, true)
  assert.equal(c.network.listen, defaults.network.listen)
  assert.is(c.dataDir, resolve('.openlora'))
})

test('precedence: defaults < file < env < flags', () => {
  const f = file('a.json', { network: { maxConnections: 10, mdns: false }, adverts: { ttlMs: 60_000 } })
  const c1 = loadConfig({ file: f, env: {} })
  assert.is(c1.network.maxConnections, 10)
  assert.is(c1.network.mdns, false)
  assert.is(c1.network.targetPeers, defaults.network.targetPeers, 'file merges, keeps other keys')
  assert.is(c1.adverts.ttlMs, 60_000)
  const env = {
    OPENLORA_NETWORK__MAX_CONNECTIONS: '20',
    OPENLORA_HOME: join(tmp, 'home'),
    OPENLORA_DEBUG: '1'
  }
  const c2 = loadConfig({ file: f, env })
  assert.is(c2.network.maxConnections, 20)
  assert.is(c2.dataDir, join(tmp, 'home'))
  const c3 = loadConfig({
    file: f,
    env,
    overrides: [
      { key: 'network.maxConnections', value: '30', source: '--set' },
      { key: 'dataDir', value: join(tmp, 'flag'), source: '--data-dir' }
    ]
  })
  assert.is(c3.network.maxConnections, 30)
  assert.is(c3.dataDir, join(tmp, 'flag'))
})

test('env names map to nested camelCase keys and typed values', () => {
  assert.is(envKey('OPENLORA_NETWORK__MAX_CONNECTIONS'), 'network.maxConnections')
  assert.is(envKey('OPENLORA_ADVERTS__HEARTBEAT_MS'), 'adverts.heartbeatMs')
  assert.is(envKey('OPENLORA_LOG_LEVEL'), 'log.level')
  const c = loadConfig({
    env: {
      OPENLORA_NETWORK__MDNS: 'off',
      OPENLORA_NETWORK__BOOTSTRAP:
        '/ip4/1.2.3.4/tcp/4010/p2p/12D3KooWP7UFstWnTwhYTxKkwAAFZtE65Bvm98Ax8JRyQ634wywT',
      OPENLORA_HARDWARE__GPUS: '[{"name":"H100","memoryMb":81920,"driver":"550.54"}]'
    }
  })
  assert.is(c.network.mdns, false)
  assert.is(c.network.bootstrap.length, 1)
  assert.equal(c.hardware.gpus, [{ name: 'H100', memoryMb: 81920, driver: '550.54' }])
})

test('bad values name the key, the value, what is allowed and where they came from', () => {
  throwsConfig(
    () => loadConfig({ file: file('b.json', { network: { maxConnections: 0 } }), env: {} }),
    'network.maxConnections',
    'value 0',
    'an integer in 1..10000',
    'b.json'
  )
  throwsConfig(
    () => loadConfig({ env: { OPENLORA_LOG_LEVEL: 'loud' } }),
    'log.level',
    '"loud"',
    '"debug"',
    'env OPENLORA_LOG_LEVEL'
  )
  throwsConfig(
    () => loadConfig({ env: { OPENLORA_NETWORK__MDNS: 'maybe' } }),
    'network.mdns',
    'true or false',
    'OPENLORA_NETWORK__MDNS'
  )
  throwsConfig(
    () =>
      loadConfig({
        env: {},
        overrides: [{ key: 'network.bootstrap', value: ['/ip4/1.2.3.4/tcp/1'], source: '--bootstrap' }]
      }),
    'network.bootstrap[0]',
    '/p2p/',
    '--bootstrap'
  )
  throwsConfig(
    () => loadConfig({ env: {}, overrides: [{ key: 'adverts.ttlMs', value: '999999999', source: '--set' }] }),
    'adverts.ttlMs',
    '1000..900000'
  )
  throwsConfig(
    () =>
      loadConfig({
        env: {},
        overrides: [{ key: 'hardware.gpus', value: '[{"name":"x"}]', source: '--set' }]
      }),
    'hardware.gpus[0].memoryMb',
    '(missing)',
    'an integer in 0..'
  )
})

test("exchange limits: defaults are the protocols' constants; set values load, bad ones are refused by name", () => {
  const c = loadConfig({ env: { OPENLORA_EXCHANGE__ADAPTER__MAX_ADAPTER_MB: '256' } })
  assert.is(c.exchange.adapter.maxAdapterMb, 256)
  assert.is(c.exchange.adapter.requestBurstPerPeer, 8)
  assert.is(c.exchange.datanet.maxBundleMb, 64)
  assert.is(c.exchange.datanet.maxConcurrentExports, 2)
  throwsConfig(
    () => loadConfig({ file: file('x.json', { exchange: { datanet: { maxConcurrent: 0 } } }), env: {} }),
    'exchange.datanet.maxConcurrent',
    'value 0',
    'an integer in 1..10000'
  )
  throwsConfig(
    () => loadConfig({ file: file('y.json', { exchange: { adapter: { maxAdapterMb: 1.5 } } }), env: {} }),
    'exchange.adapter.maxAdapterMb',
    'an integer in 1..65536'
  )
})

test('unknown keys and sections are refused (typos do not pass silently)', () => {
  throwsConfig(() => loadConfig({ file: file('c.json', { netwrok: {} }), env: {} }), 'netwrok', 'network')
  throwsConfig(
    () => loadConfig({ file: file('d.json', { network: { maxConections: 3 } }), env: {} }),
    'network.maxConections',
    'maxConnections'
  )
  throwsConfig(() => loadConfig({ env: { OPENLORA_NETWORK__NOPE: '1' } }), 'network.nope')
  throwsConfig(() => loadConfig({ file: file('e.json', '{not json'), env: {} }), '--config', 'valid JSON')
  throwsConfig(() => loadConfig({ file: join(tmp, 'missing.json'), env: {} }), '--config', 'readable')
})

test('extension sections are validated like core ones', () => {
  const sections = { chain: { schema: z.strictObject({ rpcUrl: z.string().default('') }) } }
  const c = loadConfig({ env: { OPENLORA_CHAIN__RPC_URL: 'http://127.0.0.1:8545' }, sections })
  assert.is((c.chain as { rpcUrl: string }).rpcUrl, 'http://127.0.0.1:8545')
  throwsConfig(
    () =>
      loadConfig({
        env: { OPENLORA_CHAIN__RPC_URL: '' },
        overrides: [{ key: 'chain.rpcUrl', value: 5, source: '--set' }],
        sections
      }),
    'chain.rpcUrl'
  )
})

test('infer: weightFormat and threadSpinning default to fp32 and off; other values are refused by name', () => {
  const infer = (c: ReturnType<typeof loadConfig>) =>
    c.infer as { weightFormat: string; threadSpinning: boolean }
  assert.is(infer(loadConfig({})).weightFormat, 'fp32')
  assert.is(infer(loadConfig({})).threadSpinning, false)
  const c = loadConfig({
    env: { OPENLORA_INFER__WEIGHT_FORMAT: 'int8', OPENLORA_INFER__THREAD_SPINNING: 'true' }
  })
  assert.is(infer(c).weightFormat, 'int8')
  assert.is(infer(c).threadSpinning, true)
  throwsConfig(
    () => loadConfig({ overrides: [{ key: 'infer.weightFormat', value: 'int3', source: '--set' }] }),
    'infer.weightFormat',
    'fp32',
    'int8',
    'int4'
  )
  const set = (key: string, value: string) => loadConfig({ overrides: [{ key, value, source: '--set' }] })
  assert.is(infer(set('infer.weightFormat', 'int4')).weightFormat, 'int4')
  // a spinning policy by name (runtime/spinning.ts); anything else is refused naming the choices
  assert.is(infer(set('infer.threadSpinning', 'in-run')).threadSpinning as unknown, 'in-run')
  assert.is(infer(set('infer.threadSpinning', 'always')).threadSpinning as unknown, 'always')
  throwsConfig(() => set('infer.threadSpinning', 'sometimes'), 'infer.threadSpinning')
})

test('infer.decodeKernels: auto by default; native and ort by name, env or --set; others refused naming the choices', () => {
  const kernels = (c: ReturnType<typeof loadConfig>) => (c.infer as { decodeKernels: string }).decodeKernels
  assert.is(kernels(loadConfig({})), 'auto')
  assert.is(kernels(loadConfig({ env: { OPENLORA_INFER__DECODE_KERNELS: 'ort' } })), 'ort')
  assert.is(
    kernels(loadConfig({ overrides: [{ key: 'infer.decodeKernels', value: 'native', source: '--set' }] })),
    'native'
  )
  throwsConfig(
    () => loadConfig({ overrides: [{ key: 'infer.decodeKernels', value: 'gpu', source: '--set' }] }),
    'infer.decodeKernels',
    'auto',
    'native',
    'ort'
  )
})

test('infer.promptKernels: auto by default; native or ort by name, env or --set; others refused naming the choices', () => {
  const kernels = (c: ReturnType<typeof loadConfig>) => (c.infer as { promptKernels: string }).promptKernels
  assert.is(kernels(loadConfig({})), 'auto')
  assert.is(kernels(loadConfig({ env: { OPENLORA_INFER__PROMPT_KERNELS: 'ort' } })), 'ort')
  assert.is(kernels(loadConfig({ env: { OPENLORA_INFER__PROMPT_KERNELS: 'native' } })), 'native')
  assert.is(
    kernels(loadConfig({ overrides: [{ key: 'infer.promptKernels', value: 'native', source: '--set' }] })),
    'native'
  )
  throwsConfig(
    () => loadConfig({ overrides: [{ key: 'infer.promptKernels', value: 'amx', source: '--set' }] }),
    'infer.promptKernels',
    'auto',
    'ort',
    'native'
  )
})

test('hardware: nvidia-smi CSV is parsed; a config GPU list overrides detection', async () => {
  const gpus = parseNvidiaSmi('NVIDIA H100 80GB HBM3, 81559, 550.54.15\nNVIDIA L4, 23034, 550.54.15\n\n')
  assert.equal(gpus, [
    { name: 'NVIDIA H100 80GB HBM3', memoryMb: 81559, driver: '550.54.15' },
    { name: 'NVIDIA L4', memoryMb: 23034, driver: '550.54.15' }
  ])
  assert.equal(parseNvidiaSmi('garbage'), [])
  const sim = [{ name: 'Simulated A100', memoryMb: 40960, driver: 'sim' }]
  const hw = await detectHardware({ detect: true, gpus: sim })
  assert.equal(hw.gpus, sim)
  assert.ok(hw.cpu.cores >= 1 && hw.cpu.ramMb > 0 && hw.cpu.model.length > 0)
  assert.equal((await detectHardware({ detect: false, gpus: null })).gpus, [])
})

test.after(() => rmSync(tmp, { recursive: true, force: true }))
test.run()
