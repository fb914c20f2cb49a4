// kill -9 of a real process importing adapters into the cold store (files staged in tmp/,
// renamed to their CID, then indexed in LevelDB): every acknowledged adapter is indexed with
// files that hash to its CID, no CID ever names half-written files, and tmp/ leftovers are
// cleared on the next open.
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import { adapterCid, ColdIndex } from '../../../src/runtime/adapters/cold.ts'
import { startWorker } from '../../helpers/crash.ts'

let dir: string
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'crash-adapters-'))
})
test.after(() => rmSync(dir, { recursive: true, force: true }))

test('kill -9 during adapter import: acknowledged adapters intact, no half blob under a CID', async () => {
  const store = join(dir, 'store')
  const acked = new Set<string>()
  let from = 0
  for (let round = 0; round < 5; round++) {
    const w = startWorker(['adapters', store], { CRASH_FROM: String(from) })
    const want = 4 + round * 3
    await w.until((a) => a.length >= want)
    await w.kill9()
    for (const [cid] of w.acks) acked.add(cid as string)
    from += 1000

    const cold = new ColdIndex(store)
    await cold.open(60_000)
    try {
      assert.deepEqual(readdirSync(join(store, 'tmp')), [], 'staged leftovers cleared on open')
      for (const cid of acked) {
        assert.ok(await cold.get(cid), `acknowledged adapter ${cid} is indexed`)
        assert.equal(adapterCid(await cold.readFiles(cid)), cid, 'its files hash to its CID')
      }
      // every blob directory under a CID holds exactly that CID's files, indexed or not
      for (const cid of readdirSync(join(store, 'blobs'))) {
        if ((await cold.get(cid)) !== undefined) assert.equal(adapterCid(await cold.readFiles(cid)), cid)
      }
      assert.ok(
        cold.size >= acked.size && cold.size <= acked.size + 5,
        'the count follows the index (at most one unacknowledged commit per kill)'
      )
    } finally {
      await cold.close()
    }
  }
})

test.run()
