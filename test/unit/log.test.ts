// The node's logs: JSON lines that carry a component and fields, never a secret.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { OpenLoraError } from '../../src/common/errors.ts'
import { createLogger } from '../../src/common/log.ts'

function capture(level: 'debug' | 'info' = 'debug') {
  const lines: string[] = []
  const log = createLogger('node', { level, json: true, write: (l) => lines.push(l) })
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) }
}

test('one JSON line per event: level name, ISO time, component, message, fields', () => {
  const { log, parsed } = capture()
  log
    .child('chain')
    .child('claimer')
    .info('claimed', { vouchers: 3, total: 10n ** 18n, root: new Uint8Array([1, 255]) })
  const [l] = parsed()
  assert.is(l!.level, 'info')
  assert.is(l!.component, 'node:chain:claimer')
  assert.is(l!.msg, 'claimed')
  assert.is(l!.vouchers, 3)
  assert.is(l!.total, '1000000000000000000')
  assert.is(l!.root, '0x01ff')
  assert.ok(!Number.isNaN(Date.parse(String(l!.time))))
})

test('levels below the logger level are dropped', () => {
  const { log, lines } = capture('info')
  log.debug('noise')
  log.info('kept')
  assert.is(lines.length, 1)
})

test('secrets never reach a line: keys, tokens, passwords, RPC URLs in fields, messages and errors', () => {
  const { log, lines } = capture()
  const secrets = {
    privateKey: `0x${'ab'.repeat(32)}`,
    apiKey: 'sk-live-APIKEY123',
    adminToken: 'TOKEN456',
    password: 'hunter2-PASSWORD'
  }
  log.info('chain endpoint https://eth.example.io/v2/RPCKEY789 is up', {
    rpcUrl: 'wss://rpc.example.io/ws?apikey=QUERYKEY000',
    nested: { config: { ...secrets, url: 'https://user:USERPASS@rpc.example.io/' } },
    list: [{ accessToken: 'LISTTOKEN' }],
    // a contract address named token is not a secret
    token: '0xe7f1725e7734ce288f8367e1bb143e90bb3f0512',
    err: new OpenLoraError('CHAIN_CALL', 'request to https://rpc.example.io/v3/ERRKEY111 failed')
  })
  log.warn('operator key loaded', secrets)
  const text = lines.join('\n')
  for (const s of [
    'ab'.repeat(32),
    'APIKEY123',
    'TOKEN456',
    'PASSWORD',
    'RPCKEY789',
    'QUERYKEY000',
    'USERPASS',
    'LISTTOKEN',
    'ERRKEY111'
  ])
    assert.not.ok(text.includes(s), `${s} leaked: ${text}`)
  // what is kept says enough to debug: the host, the error's code
  assert.ok(text.includes('https://eth.example.io/…'))
  assert.ok(text.includes('"code":"CHAIN_CALL"'))
  assert.ok(text.includes('0xe7f1725e7734ce288f8367e1bb143e90bb3f0512'))
})

test.run()
