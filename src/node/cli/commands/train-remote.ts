// `openlora train --remote /ip4/…/p2p/PEER | --bootstrap ADDR … --model MODEL_ID --datanet ID[@V] …`:
// send the job to a node that offers training (/openlora/train/1.0.0) instead of training here.
// With --bootstrap the CLI joins those peers, reads the adverts they hold and picks the cheapest
// trainer whose `train` capability offers the model (under --max-price). The job carries the base
// model id, the datanet version, the hyperparameters and, with --max-tokens, the budget of
// trained tokens; with --pay the job is paid with vouchers on the client's escrow at the trainer
// (the same wallet as `openlora infer --pay`). Progress prints as it trains; the result is the
// adapter CID and the peer's signed training record (checked), written to --out when given.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { findTrainers, reachTrainer } from '../../../client/find-trainer.ts'
import { createClientHost } from '../../../client/host.ts'
import { trainingPayer } from '../../../client/train-payer.ts'
import { requestTraining, type TrainJobRequest } from '../../../protocols/training/train-protocol.ts'
import { UsageError } from '../command.ts'
import { openWallet } from './client-wallet.ts'

export interface RemoteTarget {
  remote?: string
  bootstrap?: string[]
}

function checkAddr(flag: string, addr: string): void {
  let ma: ReturnType<typeof multiaddr>
  try {
    ma = multiaddr(addr)
  } catch (err) {
    throw new UsageError(`--${flag} "${addr}": not a multiaddr (${(err as Error).message})`)
  }
  if (!ma.getComponents().some((c) => c.name === 'p2p'))
    throw new UsageError(`--${flag} "${addr}": give the node's address ending in /p2p/PEER_ID`)
}

export async function trainRemote(
  target: RemoteTarget,
  job: TrainJobRequest,
  opts: { out?: string; json: boolean; maxTokens?: number; pay: boolean; values: Record<string, unknown> }
): Promise<number> {
  const bootstrap = target.bootstrap ?? []
  if (target.remote !== undefined) checkAddr('remote', target.remote)
  for (const b of bootstrap) checkAddr('bootstrap', b)
  const maxPrice = opts.values['max-price']
  if (maxPrice !== undefined && !/^[0-9]+$/.test(String(maxPrice)))
    throw new UsageError('--max-price must be an integer number of wei per 1k tokens')
  const wallet = opts.pay ? await openWallet(opts.values, { audit: true }) : undefined
  const { node, stop } = await createClientHost()
  const log = (line: string) => (opts.json ? undefined : process.stderr.write(`${line}\n`))
  try {
    let peer: string
    if (target.remote !== undefined) {
      peer = (await node.dial(multiaddr(target.remote))).remotePeer.toString()
    } else {
      const offers = await findTrainers(node, bootstrap, {
        model: job.model,
        ...(maxPrice !== undefined ? { maxPrice: BigInt(String(maxPrice)) } : {})
      })
      const best = offers[0]
      if (!best) {
        const msg = `no trainer offering ${job.model}${maxPrice !== undefined ? ` at ≤ ${maxPrice} wei per 1k tokens` : ''} in the adverts of ${bootstrap.join(', ')}`
        if (opts.json) console.log(JSON.stringify({ error: { code: 'TRAINING_NOT_OFFERED', message: msg } }))
        else console.error(`openlora train: ${msg}`)
        return 1
      }
      peer = best.peerId
      if (opts.json)
        console.log(
          JSON.stringify({
            event: 'trainer',
            peerId: peer,
            pricePer1kTokens: best.pricePer1kTokens.toString()
          })
        )
      else log(`trainer ${peer} at ${best.pricePer1kTokens} wei per 1k trained tokens`)
      await reachTrainer(node, best, bootstrap)
    }
    const r = await requestTraining(node, peerIdFromString(peer), job, {
      ...(opts.maxTokens !== undefined ? { budget: { maxTokens: opts.maxTokens } } : {}),
      ...(wallet ? { payer: trainingPayer(wallet.payer) } : {}),
      onProgress: ({ step, steps, loss, tokens }) => {
        if (opts.json) console.log(JSON.stringify({ event: 'step', step, loss, tokens: tokens ?? null }))
        else process.stderr.write(`\rstep ${step + 1}/${steps} loss ${loss.toFixed(4)}`)
      }
    })
    if (opts.out) {
      await mkdir(opts.out, { recursive: true })
      await writeFile(join(opts.out, 'training-record.json'), `${JSON.stringify(r.record, null, 2)}\n`)
      if (r.payment)
        await writeFile(join(opts.out, 'training-payment.json'), `${JSON.stringify(r.payment, null, 2)}\n`)
    }
    if (opts.json)
      console.log(
        JSON.stringify({
          event: 'done',
          steps: r.record.body.hyper.steps,
          losses: r.record.body.losses,
          adapter: null,
          cid: r.cid,
          trainer: r.record.signer,
          trainedTokens: r.record.body.data.trainedTokens,
          amountDue: r.payment?.body.amountDue ?? '0'
        })
      )
    else {
      process.stderr.write('\n')
      console.log(`adapter ${r.cid} trained by ${r.record.signer} (fetch it by CID from that node)`)
      console.log(
        `trained   ${r.record.body.data.trainedTokens} tokens in ${r.record.body.hyper.steps} steps` +
          (r.payment
            ? `; paid ${r.payment.body.amountDue} wei (${r.payment.body.pricePer1kTokens} per 1k)`
            : '')
      )
    }
    return 0
  } finally {
    await stop()
    await wallet?.close()
  }
}
