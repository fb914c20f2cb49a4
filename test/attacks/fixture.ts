// The stage for the payment attacks (docs/THREATS.md): real nodes serving the tiny model through
// the real engine, node A starting a real anvil with the compiled contracts (`local` preset),
// optionally node B serving too on the same chain, a registered adapter, an honest client and an
// attacker client (the project's own InferClient, driven as an attacker would drive it). Every
// attack ends with the same question: was every token a node delivered paid to that node?
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import { type Address, type Hex, parseEther } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { ChainClient } from '../../src/chain/client.ts'
import { amountDue, type SignedVoucher, signVoucher, voucherToJson } from '../../src/chain/eip712.ts'
import type { ChainService } from '../../src/chain/service.ts'
import { VoucherWallet } from '../../src/chain/wallet.ts'
import type { InferClient, InferInput } from '../../src/client/client.ts'
import { createClientHost } from '../../src/client/host.ts'
import { JobPayer } from '../../src/client/payer.ts'
import { cidDigest } from '../../src/crypto/cid.ts'
import { toHex } from '../../src/crypto/hash.ts'
import type { OpenLoraNode } from '../../src/node/node.ts'
import { addrOf, makeFixtures, serving, startNode, until } from '../e2e/infer-fixture.ts'

export const OPEN = 10n ** 18n
/** 1 OPEN per 1k tokens, as in the measurements */
export const PRICE = OPEN
export const PROMPT = [1, 17, 42, 99, 7, 3, 250]

export interface Stage {
  root: string
  a: OpenLoraNode
  b?: OpenLoraNode
  ep: { rpcUrl: string; chainId: number; addresses: Record<string, Address> }
  keys: Hex[]
  model: string
  cid: string
  adapterId: Hex
  /** a chain client acting as dev account `i` */
  as(i: number): ChainClient
  operator(n: OpenLoraNode): Address
  chainOf(n: OpenLoraNode): ChainService
  stop(): Promise<void>
}

export async function stage(opts: { name: string; two?: boolean; register?: boolean }): Promise<Stage> {
  const root = await mkdtemp(join(tmpdir(), `attack-${opts.name}-`))
  const fx = await makeFixtures(root, 1)
  // claims only when a test asks (claimNow): the attack's outcome is read from one claim round
  const chainCfg = { claimIntervalSec: 3600, minClaim: (10_000n * OPEN).toString() }
  const a = await startNode(root, 'a', fx, {
    price: PRICE.toString(),
    config: { chain: { preset: 'local', ...chainCfg } }
  })
  const ep = JSON.parse(readFileSync(join(root, 'a', 'chain.json'), 'utf8'))
  let b: OpenLoraNode | undefined
  if (opts.two) {
    b = await startNode(root, 'b', fx, {
      price: PRICE.toString(),
      bootstrap: [addrOf(a)],
      config: { chain: { rpcUrl: ep.rpcUrl, chainId: ep.chainId, addresses: ep.addresses, ...chainCfg } }
    })
    const local = (a.services.chain as ChainService).localChain!
    await local.setEthBalance(b.identity.operator.address as Address, parseEther('100'))
  }
  const keys = (ep.devAccounts as { privateKey: Hex }[]).map((d) => d.privateKey)
  const model = serving(a).models()[0]!
  const cid = (await serving(a).store()!.import(fx.adapterDirs[0]!)).cid
  if (b) await serving(b).store()!.import(fx.adapterDirs[0]!)
  const adapterId = toHex(cidDigest(cid)) as Hex
  const as = (i: number) => new ChainClient({ ...ep, account: privateKeyToAccount(keys[i]!) })
  if (opts.register !== false)
    await as(2).registerAdapter({ adapterId, modelHash: model.weightsHash, feePer1kTokens: PRICE })
  return {
    root,
    a,
    ...(b ? { b } : {}),
    ep,
    keys,
    model: model.modelId,
    cid,
    adapterId,
    as,
    operator: (n) => n.identity.operator.address as Address,
    chainOf: (n) => n.services.chain as ChainService,
    async stop() {
      await b?.stop().catch(() => {})
      await a.stop().catch(() => {})
      await rm(root, { recursive: true, force: true })
    }
  }
}

export interface PartySpec {
  /** the dev account it acts as */
  account: number
  /** what it puts in escrow at node A before the tests (default 10 OPEN; 0: nothing) */
  escrow?: bigint
}

/**
 * The stage every attack file starts from, set up before its tests and torn down after them:
 * `t.s` is the stage, `t.NAME` each named party (funded at node A). Read them inside tests.
 */
export function attackStage<K extends string = never>(
  name: string,
  opts: { two?: boolean; register?: boolean; parties?: Record<K, PartySpec> } = {}
): { s: Stage } & Record<K, Party> {
  const t = {} as { s: Stage } & Record<K, Party>
  const specs = Object.entries(opts.parties ?? {}) as [K, PartySpec][]
  test.before(async () => {
    t.s = await stage({
      name,
      ...(opts.two ? { two: true } : {}),
      ...(opts.register === false ? { register: false } : {})
    })
    for (const [key, spec] of specs) {
      const p = await party(t.s, spec.account)
      ;(t as Record<K, Party>)[key] = p
      const escrow = spec.escrow ?? 10n * OPEN
      if (escrow > 0n) await fund(p.chain, t.s.operator(t.s.a), escrow)
    }
  })
  test.after(async () => {
    for (const [key] of specs) await (t as Partial<Record<K, Party>>)[key]?.stop()
    await t.s?.stop()
  })
  return t
}

/** Puts `amount` in `client`'s escrow for jobs at `node` (the one place the escrow API is used). */
export async function fund(client: ChainClient, node: Address, amount: bigint): Promise<void> {
  await client.deposit(amount, { node })
}

export async function escrowAt(client: ChainClient, node: Address): Promise<bigint> {
  return (await client.escrowOf(client.address, node)).balance
}

export interface Party {
  account: ReturnType<typeof privateKeyToAccount>
  chain: ChainClient
  infer: InferClient
  payer: JobPayer
  wallet: VoucherWallet
  stop(): Promise<void>
}

/** A client: a dev account's chain client, a wallet and payer, and a libp2p host to send jobs from. */
export async function party(s: Stage, i: number): Promise<Party> {
  const account = privateKeyToAccount(s.keys[i]!)
  const chain = s.as(i)
  const wallet = new VoucherWallet(account, chain.domain)
  const payer = new JobPayer(wallet, chain.domain)
  const { client: infer, stop } = await createClientHost({ payer })
  return { account, chain, infer, payer, wallet, stop }
}

/** A voucher signed exactly as the attacker wants it (no wallet bookkeeping). */
export async function rawVoucher(p: Party, s: Stage, node: Address, cumulativeAmount: bigint) {
  const v: SignedVoucher = await signVoucher(p.account, p.chain.domain, {
    node,
    adapterId: s.adapterId,
    cumulativeAmount
  })
  return v
}

export const wire = (v: SignedVoucher) => voucherToJson(v) as unknown as Record<string, unknown>

/** The job the attacks send: the adapter, a fixed prompt, `maxNewTokens` tokens at most. */
export function job(s: Stage, maxNewTokens: number, extra: Partial<InferInput> = {}): InferInput {
  return {
    model: s.model,
    adapter: s.cid,
    promptIds: PROMPT,
    params: { maxNewTokens, temperature: 0 },
    ...extra
  }
}

/** What `tokens` delivered tokens of one job are worth (prompt included). */
export function worth(tokens: number): bigint {
  return amountDue(PROMPT.length, tokens, PRICE)
}

/** Runs the node's claim round and returns what the chain has paid on the client's channel. */
export async function claimAndRead(s: Stage, node: OpenLoraNode, client: Address): Promise<bigint> {
  const chain = s.chainOf(node)
  await chain.claimer.claimNow().catch(() => {})
  return chain.client.claimedOf(client, s.operator(node), s.adapterId)
}

/** Sends a job and counts the tokens that arrived, whatever the job's end. */
export async function countTokens(
  infer: InferClient,
  target: string,
  input: InferInput,
  opts: { abortAfter?: number } = {}
): Promise<{ tokens: number; ok: boolean; error?: unknown }> {
  let tokens = 0
  const ctl = new AbortController()
  try {
    await infer.infer(target, input, {
      signal: ctl.signal,
      onToken: () => {
        tokens++
        if (opts.abortAfter !== undefined && tokens >= opts.abortAfter) ctl.abort()
      }
    })
    return { tokens, ok: true }
  } catch (error) {
    return { tokens, ok: false, error }
  }
}

export { addrOf, until }
