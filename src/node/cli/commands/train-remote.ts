// `openlora train --remote /ip4/…/p2p/PEER --model MODEL_ID --datanet ID[@V] …`: send the job to
// a node that offers training (/openlora/train/1.0.0) instead of training here. The job carries
// the base model id (one the peer serves), the datanet version (one the peer holds) and the
// hyperparameters; progress prints as it trains; the result is the adapter CID and the peer's
// signed training record (checked), written to --out/training-record.json when --out is given.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { createClientHost } from '../../../client/host.ts'
import { requestTraining, type TrainJobRequest } from '../../../protocols/training/train-protocol.ts'
import { UsageError } from '../command.ts'

export async function trainRemote(
  addr: string,
  job: TrainJobRequest,
  opts: { out?: string; json: boolean }
): Promise<number> {
  let ma: ReturnType<typeof multiaddr>
  try {
    ma = multiaddr(addr)
  } catch (err) {
    throw new UsageError(`--remote "${addr}": not a multiaddr (${(err as Error).message})`)
  }
  if (!ma.getComponents().some((c) => c.name === 'p2p'))
    throw new UsageError(`--remote "${addr}": give the node's address ending in /p2p/PEER_ID`)
  const host = await createClientHost()
  try {
    const conn = await host.node.dial(ma)
    const r = await requestTraining(host.node, conn.remotePeer, job, {
      onProgress: ({ step, steps, loss }) => {
        if (opts.json) console.log(JSON.stringify({ event: 'step', step, loss }))
        else process.stderr.write(`\rstep ${step + 1}/${steps} loss ${loss.toFixed(4)}`)
      }
    })
    if (opts.out) {
      await mkdir(opts.out, { recursive: true })
      await writeFile(join(opts.out, 'training-record.json'), `${JSON.stringify(r.record, null, 2)}\n`)
    }
    if (opts.json)
      console.log(
        JSON.stringify({
          event: 'done',
          steps: job.steps,
          losses: r.record.body.losses,
          adapter: null,
          cid: r.cid,
          trainer: r.record.signer
        })
      )
    else {
      process.stderr.write('\n')
      console.log(`adapter ${r.cid} trained by ${r.record.signer} (fetch it by CID from that node)`)
    }
    return 0
  } finally {
    await host.stop()
  }
}
