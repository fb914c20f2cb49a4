// The crash worker's datanet mode (worker.ts datanet DIR): copies CRASH_DATANET version
// CRASH_VERSION from the peer at CRASH_SOURCE (a multiaddr ending in /p2p/ID), trusting the root
// CRASH_ROOT, into a DatanetStore on a real LevelDB under DIR, printing an ACK per chunk stored and
// one when the version is in the store.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { Level } from 'level'
import { createLibp2p } from 'libp2p'
import { DatanetStore } from '../../../src/attribution/datanet-store.ts'
import type { ChunkRef } from '../../../src/attribution/types.ts'
import type { Hex } from '../../../src/crypto/hash.ts'
import { DatanetExchange } from '../../../src/protocols/datanet-exchange/exchange.ts'

export async function runDatanetCopy(dir: string): Promise<void> {
  const env = (k: string) => {
    const v = process.env[k]
    if (v === undefined) throw new Error(`${k} is not set`)
    return v
  }
  const db = new Level<string, unknown>(`${dir}/db`, { valueEncoding: 'json' })
  await db.open()
  const store = new DatanetStore({ db: db as never, dataDir: dir })
  let stored = 0
  const put = store.putChunk.bind(store)
  store.putChunk = async (bytes: Uint8Array, ref: ChunkRef) => {
    await put(bytes, ref)
    process.stdout.write(`ACK chunk ${++stored}\n`)
  }
  const host = await createLibp2p({
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()]
  })
  const source = multiaddr(env('CRASH_SOURCE'))
  const conn = await host.dial(source)
  const exchange = new DatanetExchange({ host, store: () => store })
  const v = await exchange.fetchVersion(
    env('CRASH_DATANET'),
    Number(env('CRASH_VERSION')),
    [conn.remotePeer.toString()],
    {
      trustedRoots: { [Number(env('CRASH_VERSION'))]: env('CRASH_ROOT') as Hex }
    }
  )
  process.stdout.write(`ACK done ${v.root}\n`)
  await host.stop()
  await db.close()
}
