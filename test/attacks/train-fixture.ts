// The stage for the training payment attacks (docs/THREATS.md T1–T3): a real trainer node (libp2p
// on 127.0.0.1, the real training runtime on the tiny model) that starts a real anvil with the
// compiled contracts (`local` preset) and charges PRICE per 1k trained tokens, a datanet it holds,
// and clients that pay with the project's own JobPayer (driven as an attacker would). `trainer`
// replaces the node's training service (a cheating trainer, T2); every attack ends with the same
// question: did the chain pay the trainer exactly what it trained, and never more than was signed?
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { test } from 'uvu'
import { type Address, type Hex, zeroHash } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { ChainClient } from '../../src/chain/client.ts'
import type { ChainService } from '../../src/chain/service.ts'
import { VoucherWallet } from '../../src/chain/wallet.ts'
import { createClientHost } from '../../src/client/host.ts'
import { JobPayer, type PayerOptions } from '../../src/client/payer.ts'
import { trainingPayer } from '../../src/client/train-payer.ts'
import type { NodeExtension, ServiceFactory } from '../../src/common/service.ts'
import { extensions } from '../../src/node/extensions.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { stepTokens } from '../../src/protocols/training/provider.ts'
import type { RequestTrainingOptions } from '../../src/protocols/training/request.ts'
import { requestTraining, type TrainJobRequest } from '../../src/protocols/training/train-protocol.ts'
import { modelIdOf } from '../../src/runtime/model/config.ts'
import { readModelConfig } from '../../src/runtime/model/index.ts'
import { Tokenizer } from '../../src/runtime/tokenizer.ts'
import { encodeRows } from '../../src/runtime/training/data.ts'
import { planData } from '../../src/runtime/training/plan.ts'
import { addrOf, makeFixtures, startNode } from '../e2e/infer-fixture.ts'

export const OPEN = 10n ** 18n
/** an odd price, so amounts round up to the wei */
export const PRICE = 987_654_321_987_654n
const ALICE = '0x00000000000000000000000000000000000a11ce'
export const TEXTS = ['a stitch in time saves nine', 'knowledge is power', 'better late than never']

export interface TrainStage {
  trainer: OpenLoraNode
  model: string
  datanet: string
  /** tokens one step trains (no --batch: every step trains every row) */
  perStep: number
  operator: Address
  chain: ChainService
  ep: {
    rpcUrl: string
    chainId: number
    addresses: Record<string, Address>
    devAccounts: { privateKey: Hex }[]
  }
  job(steps: number): TrainJobRequest
}

export interface TrainParty {
  account: ReturnType<typeof privateKeyToAccount>
  chain: ChainClient
  payer: JobPayer
  node: Libp2p
  /** requestTraining to the trainer, paid by this party */
  train(steps: number, maxTokens: number, opts?: RequestTrainingOptions): ReturnType<typeof requestTraining>
  /** what the chain has paid the trainer on this party's training channel */
  claimed(): Promise<bigint>
  stop(): Promise<void>
}

/**
 * Sets up the stage before the file's tests and tears it down after. `service`: a training
 * service that replaces the node's own (the extension is left out).
 */
export function trainStage(
  name: string,
  opts: { service?: (s: Omit<TrainStage, 'trainer' | 'chain' | 'operator' | 'ep'>) => ServiceFactory } = {}
): {
  s: TrainStage
  party(i: number, escrow: bigint, payerOpts?: PayerOptions & { audit?: boolean }): Promise<TrainParty>
} {
  const t = {} as {
    s: TrainStage
    party(i: number, escrow: bigint, payerOpts?: PayerOptions & { audit?: boolean }): Promise<TrainParty>
  }
  let root: string
  const parties: TrainParty[] = []
  test.before(async () => {
    root = await mkdtemp(join(tmpdir(), `attack-${name}-`))
    const fx = await makeFixtures(root, 0)
    const model = modelIdOf(await readModelConfig(fx.modelDir), fx.modelDir)
    const tok = await Tokenizer.fromDir(fx.modelDir)
    const perStep = stepTokens(
      planData(
        encodeRows(
          tok,
          TEXTS.map((text) => ({ text }))
        ),
        { seed: 1 }
      ).batchOf(0)
    )
    let datanet = ''
    const job = (steps: number): TrainJobRequest => ({
      model,
      datanet: { id: datanet, version: 1 },
      steps,
      lr: 0.01,
      optimizer: 'sgd',
      seed: 1
    })
    const base = {
      model,
      get datanet() {
        return datanet
      },
      perStep,
      job
    }
    const service = opts.service?.(base)
    const trainer = await startNode(root, 'trainer', fx, {
      config: {
        chain: { preset: 'local', claimIntervalSec: 3600, minClaim: (1000n * OPEN).toString() },
        training: { offer: true, pricePer1kTokens: PRICE.toString() }
      },
      ...(service
        ? {
            overrides: {
              extensions: extensions.filter((e: NodeExtension) => e.name !== 'training'),
              services: { cheatTraining: service }
            }
          }
        : {})
    })
    const store = trainer.services.attribution!.store
    const dn = await store.createDatanet({ name: 'proverbs', owner: ALICE })
    for (const text of TEXTS) await store.contribute(dn.id, { text, contributor: ALICE })
    await store.publish(dn.id)
    datanet = dn.id
    const ep = JSON.parse(readFileSync(join(root, 'trainer', 'chain.json'), 'utf8'))
    const operator = trainer.identity.operator.address as Address
    t.s = { ...base, datanet, trainer, operator, chain: trainer.services.chain as ChainService, ep }
    t.party = async (i, escrow, payerOpts = {}) => {
      const account = privateKeyToAccount(ep.devAccounts[i].privateKey)
      const chain = new ChainClient({ ...ep, account })
      if (escrow > 0n) await chain.deposit(escrow, { node: operator })
      const { audit, ...rest } = payerOpts
      const payer = new JobPayer(new VoucherWallet(account, chain.domain), chain.domain, {
        ...rest,
        ...(audit
          ? { claimedOf: (node: Address, id: Hex) => chain.claimedOf(account.address, node, id) }
          : {})
      })
      const { node, stop } = await createClientHost()
      await node.dial((await import('@multiformats/multiaddr')).multiaddr(addrOf(trainer)))
      const p: TrainParty = {
        account,
        chain,
        payer,
        node,
        train: (steps, maxTokens, o = {}) =>
          requestTraining(node, peerIdFromString(trainer.peerId), job(steps), {
            budget: { maxTokens },
            payer: trainingPayer(payer),
            ...o
          }),
        claimed: () => chain.claimedOf(account.address, operator, zeroHash),
        stop
      }
      parties.push(p)
      return p
    }
  })
  test.after(async () => {
    for (const p of parties) await p.stop().catch(() => {})
    await t.s?.trainer.stop().catch(() => {})
    await rm(root, { recursive: true, force: true })
  })
  return t
}
