// L4 (docs/THREATS.md): hosted RPC URLs carry API keys. A chain call that fails against such a URL
// (a real viem HTTP transport to a closed port) must not carry the key in its message, its data
// or anywhere in its cause chain, which loggers serialize.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ChainClient } from '../../src/chain/client.ts'
import { ChainCallError, redactUrl, redactUrls } from '../../src/chain/errors.ts'

const SECRET = 'k3y-SECRET-0123456789'
const ZERO = '0x0000000000000000000000000000000000000001' as const

test('redactUrl keeps scheme, host and port only', () => {
  assert.is(redactUrl(`https://rpc.example.org/v2/${SECRET}`), 'https://rpc.example.org/…')
  assert.is(redactUrl(`https://user:${SECRET}@rpc.example.org`), 'https://rpc.example.org/…')
  assert.is(redactUrl(`wss://rpc.example.org:8546/?apikey=${SECRET}`), 'wss://rpc.example.org:8546/…')
  assert.is(redactUrl('http://127.0.0.1:8545'), 'http://127.0.0.1:8545')
  assert.not.match(redactUrls(`failed: URL: https://x.io/${SECRET} (status 401)`), SECRET)
})

test('a failed chain call carries no RPC URL with its key, in any cause', async () => {
  const c = new ChainClient({
    rpcUrl: `http://127.0.0.1:1/v2/${SECRET}`,
    chainId: 31337,
    addresses: { token: ZERO, adapterRegistry: ZERO, datanetRegistry: ZERO, settlement: ZERO }
  })
  let err: unknown
  try {
    await c.tokenBalance(ZERO)
  } catch (e) {
    err = e
  }
  assert.instance(err, ChainCallError)
  const texts: string[] = []
  const seen = new Set<unknown>()
  for (let e = err as Record<string, unknown> | undefined; e && !seen.has(e); e = e.cause as typeof e) {
    seen.add(e)
    for (const k of ['message', 'shortMessage', 'details', 'url', 'stack', 'metaMessages'])
      texts.push(JSON.stringify(e[k] ?? null))
    texts.push(
      JSON.stringify((e as { data?: unknown }).data ?? null, (_k, v) =>
        typeof v === 'bigint' ? String(v) : v
      )
    )
  }
  assert.ok(seen.size > 1, 'the viem error is kept as the cause')
  assert.not.match(texts.join('\n'), SECRET)
})

test.run()
