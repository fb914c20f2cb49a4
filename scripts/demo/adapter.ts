// Stage 2 of make-demo-model.ts: the demo datanet (src/node/demo-data.ts) in a scratch node data
// dir, then the demo adapter trained on it with the CLI exactly as a user runs it:
// `openlora train --model assets/demo/model --datanet ID --data-dir DIR --out assets/demo/adapter`.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { DatanetStore } from '../../src/attribution/datanet-store.ts'
import { ensureDemoDatanet } from '../../src/node/demo-data.ts'

export interface AdapterOptions {
  model: string
  out: string
  steps: number
  threads: number
  log: (line: Record<string, unknown>) => void
}

export async function trainDemoAdapter(o: AdapterOptions): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'openlora-demo-adapter-'))
  try {
    // the store as the node keeps it (src/attribution/extension.ts): LevelDB in db/, chunks in datanets/
    const db = new Level<string, Uint8Array>(join(dataDir, 'db'), { valueEncoding: 'view' })
    await db.open()
    const id = await ensureDemoDatanet(new DatanetStore({ db, dataDir: join(dataDir, 'datanets') }))
    await db.close()
    o.log({ event: 'datanet', id })
    rmSync(o.out, { recursive: true, force: true })
    const warmup = Math.min(10, Math.floor(o.steps / 10))
    const args = [
      'src/node/cli/main.ts',
      'train',
      ...['--model', o.model, '--datanet', `${id}@1`, '--data-dir', dataDir, '--out', o.out],
      ...'--rank 16 --alpha 32 --targets all-linear --optimizer adamw --lr 1e-2 --weight-decay 0'.split(' '),
      ...`--steps ${o.steps} --warmup ${warmup} --schedule cosine --seed 1 --threads ${o.threads} --json`.split(
        ' '
      )
    ]
    o.log({ event: 'train', command: `node ${args.join(' ')}` })
    const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] })
    if (r.status !== 0) throw new Error(`openlora train failed (${r.status ?? r.signal})`)
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}
