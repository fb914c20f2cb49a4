// Adapter exchange over in-memory stream pairs (no sockets): real framing, manifest and hash
// checks; the adapter store on both sides is a stub of its two-method interface.
import type { Connection, Stream } from '@libp2p/interface'
import { streamPair } from '@libp2p/utils'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { cidForManifest } from '../../src/crypto/cid.ts'
import { sha256 } from '../../src/crypto/hash.ts'
import { AdapterFetchError } from '../../src/protocols/adapter-exchange/errors.ts'
import { AdapterExchange, type AdapterFileSet } from '../../src/protocols/adapter-exchange/exchange.ts'

const PEERS = {
  good: '12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK',
  liar: '12D3KooWGRUVh2QzTuUGELxwqHT7Aoz3ft3C26vHUAmf2pYzaZEk'
}

function files(seed: number, size = 200_000): AdapterFileSet {
  const weights = new Uint8Array(size)
  for (let i = 0; i < size; i++) weights[i] = (i * 31 + seed) & 0xff
  return {
    'adapter_config.json': new TextEncoder().encode(`{"r":${seed}}`),
    'adapter_model.safetensors': weights
  }
}

function cidOf(f: AdapterFileSet): string {
  return cidForManifest({
    v: 1,
    kind: 'peft-adapter',
    files: Object.entries(f).map(([name, b]) => ({ name, size: b.length, sha256: sha256(b) }))
  })
}

/** Servers by peer id; the fetcher's host dials them through stream pairs. */
async function network(servers: Record<string, (cid: string) => AdapterFileSet>) {
  const handlers = new Map<string, (s: Stream, c: Connection) => void>()
  const served: string[] = []
  for (const [peer, lookup] of Object.entries(servers)) {
    const ex = new AdapterExchange({
      host: {
        handle: async (_p, h) => void handlers.set(peer, h),
        unhandle: async () => {},
        dialProtocol: async () => {
          throw new Error('server does not dial')
        }
      },
      source: {
        files: async (cid) => {
          served.push(peer)
          return lookup(cid)
        }
      }
    })
    await ex.start()
  }
  const stored: { cid: string; files: AdapterFileSet }[] = []
  const fetcher = new AdapterExchange({
    host: {
      handle: async () => {},
      unhandle: async () => {},
      dialProtocol: async (peer) => {
        const [out, inb] = await streamPair()
        handlers.get(peer.toString())!(inb, { remotePeer: peer } as unknown as Connection)
        return out
      }
    },
    sink: {
      importFiles: async (f, opts) => {
        stored.push({ cid: opts.expectedCid, files: f })
        return { cid: opts.expectedCid, added: true }
      }
    }
  })
  return { fetcher, stored, served }
}

test('files arrive intact and are stored under the requested CID', async () => {
  const f = files(1)
  const cid = cidOf(f)
  const { fetcher, stored } = await network({ [PEERS.good]: () => f })
  await fetcher.fetch(cid, [PEERS.good])
  assert.is(stored.length, 1)
  assert.equal(stored[0]!.files['adapter_model.safetensors'], f['adapter_model.safetensors'])
  assert.equal(stored[0]!.files['adapter_config.json'], f['adapter_config.json'])
})

test('a peer sending another adapter is caught at the manifest; the next peer is tried', async () => {
  const f = files(2)
  const cid = cidOf(f)
  const { fetcher, stored, served } = await network({ [PEERS.liar]: () => files(3), [PEERS.good]: () => f })
  await fetcher.fetch(cid, [PEERS.liar, PEERS.good])
  assert.equal(served, [PEERS.liar, PEERS.good])
  assert.is(stored.length, 1)
  const only = await network({ [PEERS.liar]: () => files(3) })
  try {
    await only.fetcher.fetch(cid, [PEERS.liar])
    assert.unreachable('a wrong adapter must not be accepted')
  } catch (err) {
    assert.instance(err, AdapterFetchError)
    assert.is((err as AdapterFetchError).code, 'ADAPTER_VERIFY_FAILED')
    assert.match((err as Error).message, /does not match/)
  }
  assert.is(only.stored.length, 0)
})

test('a peer without the adapter answers ADAPTER_NOT_FOUND; concurrent fetches of one CID share a transfer', async () => {
  const f = files(4)
  const cid = cidOf(f)
  const none = await network({
    [PEERS.good]: () => {
      throw new Error('not here')
    }
  })
  try {
    await none.fetcher.fetch(cid, [PEERS.good])
    assert.unreachable()
  } catch (err) {
    assert.is((err as AdapterFetchError).code, 'ADAPTER_NOT_FOUND')
  }
  const { fetcher, served, stored } = await network({ [PEERS.good]: () => f })
  await Promise.all([fetcher.fetch(cid, [PEERS.good]), fetcher.fetch(cid, [PEERS.good])])
  assert.is(served.length, 1)
  assert.is(stored.length, 1)
})

test.run()
