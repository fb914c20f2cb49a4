// The node's `chain` config section: presets, defaults, and errors that name the key, the value
// and what is allowed (through the node's own config loader, as a user's config file would).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseNodeChainConfig } from '../../src/chain/extension.ts'
import { loadConfig } from '../../src/node/config/load.ts'
import { ConfigError } from '../../src/node/config/schema.ts'

const ADDRS = {
  token: '0x5fbdb2315678afecb367f032d93f642f64180aa3',
  adapterRegistry: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512',
  datanetRegistry: '0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0',
  settlement: '0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9'
}

function rejects(value: unknown, re: RegExp): void {
  try {
    parseNodeChainConfig(value)
  } catch (err) {
    assert.match((err as Error).message, re)
    return
  }
  assert.unreachable(`accepted ${JSON.stringify(value)}`)
}

test('the library default is no chain; npm start chooses local', () => {
  const c = loadConfig({ env: {} })
  assert.equal(c.chain, {
    claimIntervalSec: 300,
    minClaim: '1000000000000000000',
    maxBatch: 100,
    syncWrites: true
  })
  assert.is(parseNodeChainConfig(c.chain).chain, null)
  const demo = loadConfig({ env: {}, base: { chain: { preset: 'local' } } })
  assert.equal(parseNodeChainConfig(demo.chain).chain, { preset: 'local', withdrawalDelaySec: undefined })
})

test('presets: local, local joining a running anvil, testnet, custom; claimer keys', () => {
  const joined = parseNodeChainConfig({ preset: 'local', rpcUrl: 'http://127.0.0.1:8545', addresses: ADDRS })
  assert.is(joined.chain?.preset, 'custom')
  assert.is((joined.chain as { chainId: number }).chainId, 31337)
  const testnet = parseNodeChainConfig({ preset: 'testnet', rpcUrl: 'https://rpc.example', addresses: ADDRS })
  assert.is((testnet.chain as { chainId: number }).chainId, 161201)
  const custom = parseNodeChainConfig({
    rpcUrl: 'http://127.0.0.1:8545',
    chainId: 1612,
    addresses: ADDRS,
    claimIntervalSec: 30,
    minClaim: '5',
    maxBatch: 10
  })
  assert.is(custom.chain?.preset, 'custom')
  assert.equal([custom.claimIntervalSec, custom.minClaim, custom.maxBatch], [30, 5n, 10])
  const d = parseNodeChainConfig({ preset: 'local' })
  assert.equal([d.claimIntervalSec, d.minClaim, d.maxBatch], [300, 10n ** 18n, 100])
})

test('errors name the key and what is allowed', () => {
  rejects(
    { preset: 'mainnet' },
    /chain\.preset: must be one of "none", "local", "testnet", "custom" \(got "mainnet"\)/
  )
  rejects({ preset: 'testnet', addresses: ADDRS }, /chain\.rpcUrl: the testnet preset/)
  rejects(
    { preset: 'testnet', rpcUrl: 'https://rpc.example' },
    /chain\.addresses: the testnet preset .* needs rpcUrl and addresses/
  )
  rejects(
    { rpcUrl: 'http://x:1', chainId: 5, addresses: { ...ADDRS, settlement: '0x12' } },
    /chain\.addresses\.settlement: must be a 0x-prefixed 20-byte address \(got "0x12"\)/
  )
  rejects(
    { preset: 'local', claimIntervalSec: 0 },
    /chain\.claimIntervalSec: must be an integer in 1\.\.604800 \(got 0\)/
  )
  rejects({ preset: 'local', minClaim: 1 }, /chain\.minClaim: must be a decimal string of wei/)
  rejects(
    { preset: 'none', rpcUrl: 'http://x:1' },
    /chain\.rpcUrl: preset "none" \(no chain\) takes no rpcUrl/
  )
  rejects({ preset: 'local', rpc: 'http://x:1' }, /chain\.rpc: unknown field; allowed: preset, rpcUrl/)
  // through the loader: a ConfigError naming the key, the rule and where the value came from
  try {
    loadConfig({
      env: {},
      overrides: [{ key: 'chain', value: { preset: 'testnet' }, source: '--set chain' }]
    })
    assert.unreachable('loaded an incomplete testnet config')
  } catch (err) {
    assert.instance(err, ConfigError)
    const e = err as ConfigError
    assert.is(e.data.key, 'chain.rpcUrl')
    assert.match(e.message, /the testnet preset \(chain id 161201\) needs rpcUrl and addresses/)
    assert.match(e.message, /from --set chain/)
    assert.match(e.message, /has value \(missing\); the testnet/)
  }
  // a rule across keys names the flag that set the key it reacted to
  try {
    loadConfig({
      env: {},
      overrides: [{ key: 'chain.preset', value: 'testnet', source: '--set chain.preset' }]
    })
    assert.unreachable('loaded a testnet preset without rpcUrl')
  } catch (err) {
    assert.instance(err, ConfigError)
    assert.match(
      (err as Error).message,
      /config key "chain\.rpcUrl" \(from --set chain\.preset\) has value \(missing\)/
    )
  }
})

test.run()
