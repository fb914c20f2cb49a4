// The chain config section: presets and the errors that name the bad key.
import assert from 'node:assert/strict'
import { test } from 'uvu'
import { parseChainConfig, parseChainEndpoint } from '../../src/chain/config.ts'
import { ChainConfigError } from '../../src/chain/errors.ts'

const addresses = {
  token: '0x5fbdb2315678afecb367f032d93f642f64180aa3',
  adapterRegistry: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512',
  datanetRegistry: '0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0',
  settlement: '0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9'
}

test('defaults to the local preset', () => {
  assert.deepEqual(parseChainConfig(undefined), { preset: 'local' })
  assert.deepEqual(parseChainConfig({ preset: 'local', withdrawalDelaySec: 3600 }), {
    preset: 'local',
    withdrawalDelaySec: 3600
  })
})

test('testnet fixes chain id 161201; custom takes any; addresses are checksummed', () => {
  const t = parseChainConfig({ preset: 'testnet', rpcUrl: 'https://rpc.example', addresses })
  assert.equal(t.preset === 'testnet' && t.chainId, 161201)
  const c = parseChainConfig({ rpcUrl: 'http://127.0.0.1:8545', chainId: 1612, addresses })
  if (c.preset !== 'custom') assert.fail(`expected custom, got ${c.preset}`)
  assert.equal(c.addresses.settlement, '0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9')
  assert.equal(parseChainEndpoint({ rpcUrl: 'http://x:1', chainId: 7, addresses }).chainId, 7)
})

test('bad values name their key', () => {
  const cases: [unknown, RegExp][] = [
    [{ preset: 'mainnet' }, /chain\.preset/],
    [{ preset: 'local', withdrawalDelaySec: -1 }, /chain\.withdrawalDelaySec/],
    [
      { preset: 'local', withdrawalDelaySec: 600 },
      /chain\.withdrawalDelaySec: must be an integer in 3600\.\.2592000 \(got 600\)/
    ],
    [{ preset: 'testnet', rpcUrl: 'ftp://x', addresses }, /chain\.rpcUrl/],
    [{ preset: 'testnet', rpcUrl: 'https://x', chainId: 1, addresses }, /chain\.chainId/],
    [{ rpcUrl: 'https://x', chainId: 0, addresses }, /chain\.chainId/],
    [
      { rpcUrl: 'https://x', chainId: 5, addresses: { ...addresses, settlement: '0x12' } },
      /chain\.addresses\.settlement/
    ],
    [{ rpcUrl: 'https://x', chainId: 5 }, /chain\.addresses/]
  ]
  for (const [input, re] of cases) {
    assert.throws(
      () => parseChainConfig(input),
      (e: unknown) => e instanceof ChainConfigError && re.test(e.message),
      JSON.stringify(input)
    )
  }
})

test('errors say what is allowed and show the bad value', () => {
  assert.throws(
    () => parseChainConfig({ preset: 'mainnet' }),
    (e: unknown) =>
      e instanceof ChainConfigError &&
      /chain\.preset: must be one of "local", "testnet", "custom" \(got "mainnet"\)/.test(e.message) &&
      e.data.key === 'chain.preset'
  )
  assert.throws(
    () => parseChainConfig({ rpcUrl: 'ftp://x', chainId: 5, addresses }),
    (e: unknown) =>
      e instanceof ChainConfigError &&
      /chain\.rpcUrl: must be an http\(s\):\/\/ or ws\(s\):\/\/ URL \(got "ftp:\/\/x"\)/.test(e.message)
  )
})

test.run()
