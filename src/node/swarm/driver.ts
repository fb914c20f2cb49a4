// The swarm's client: sends M paid jobs through randomly chosen entry peers, each with a voucher
// to a chosen serving operator (a voucher pins who may serve, docs/PROTOCOL.md), verifies every
// receipt against what it saw and what it paid, and fails over to another serving node and entry
// peer when an attempt fails. What it keeps per channel is what reconciliation needs: the
// vouchers whose receipts it accepted, and those whose outcome it cannot know (the connection
// died after the node may have stored the voucher).

import type { Address, Hex, LocalAccount } from 'viem'
import type { ChainDomain } from '../../chain/eip712.ts'
import { amountDue, voucherHash, voucherToJson } from '../../chain/eip712.ts'
import { channelKey } from '../../chain/vouchers.ts'
import { VoucherWallet } from '../../chain/wallet.ts'
import { type InferClient, newJobId } from '../../client/client.ts'
import { codeOf } from '../../common/errors.ts'
import { InferError } from '../../protocols/infer/errors.ts'
import { adapterIdOf, type Receipt, verifyReceipt } from '../../protocols/infer/receipt.ts'
import type { DemoPrompt } from './demo.ts'

/** Codes a node answers before serving: the job never ran, no payment was stored. */
const REFUSALS = new Set([
  'BAD_REQUEST',
  'ADAPTER_NOT_FOUND',
  'MODEL_NOT_FOUND',
  'BUSY',
  'RATE_LIMITED',
  'PAYMENT_REQUIRED',
  // no serving peer (nor the entry) could be dialled: the request reached no node
  'PEER_UNREACHABLE'
])

export interface DriverNode {
  i: number
  peerId: string
  operator: Address
  price: bigint
  /** adapter CIDs this node held at start */
  adapters: string[]
  /** current dialable TCP address, or undefined while the node is down */
  addr(): string | undefined
  /** its address through the swarm's circuit relay, when there is one and both are up */
  relayAddr?(): string | undefined
}

export interface JobOutcome {
  jobId: Hex | null
  ok: boolean
  attempts: number
  /** codes of the failed attempts, in order (an ok job may have some: it failed over) */
  failures: string[]
  entry?: number
  servedBy?: number
  routed?: boolean
  /** the successful attempt reached its entry node through the circuit relay */
  relayed?: boolean
  /** the connection the job ran on, when the client could tell (the NAT tier's swarm reports it) */
  connection?: 'direct' | 'relayed'
  latencyMs: number
  tokens?: number
  amountDue?: bigint
  receipt?: Receipt
  /** client-side times of the successful attempt (ms) */
  phases?: { voucherMs: number; toAcceptedMs: number; afterAcceptedMs: number; verifyMs: number }
  timings?: { queuedMs: number; firstTokenMs: number; totalMs: number }
  /** time to first token as the client saw it: the successful attempt's send → its first token frame */
  ttftMs?: number
}

export interface ChannelLedger {
  client: Address
  node: Address
  adapterId: Hex
  /** the highest cumulative amount among vouchers whose receipt was accepted */
  acknowledged: bigint
  /** cumulative amounts of vouchers sent with attempts whose outcome is unknown */
  unknown: bigint[]
  /** job id → amountDue of every receipt the client accepted on this channel */
  accepted: Map<Hex, bigint>
  /** job ids of attempts whose outcome is unknown (the node may have stored their payment) */
  unknownJobs: Hex[]
  receipts: number
  amountDue: bigint
}

export interface DriverOptions {
  model: string
  modelHash: Hex
  prompts: DemoPrompt[]
  adapterCids: string[]
  maxNewTokens: number
  jobs: number
  concurrency: number
  /** per attempt; a paused node is given up on after this */
  attemptTimeoutMs: number
  maxAttempts: number
  /** share of attempts sent through the relay client to the entry's relay address (0 = none) */
  relayedShare?: number
  /** spread the job starts over at least this long (so faults land while jobs run); 0 = no pacing */
  minRunMs?: number
  seed: number
  onJob?(o: JobOutcome, done: number): void
}

export class JobDriver {
  readonly ledger = new Map<Hex, ChannelLedger>()
  readonly outcomes: JobOutcome[] = []
  private readonly wallet: VoucherWallet
  private readonly client: InferClient
  private readonly relayClient: InferClient | undefined
  private readonly nodes: () => DriverNode[]
  private readonly domain: ChainDomain
  private readonly account: LocalAccount
  private readonly opts: DriverOptions
  private readonly rand: () => number
  private stopped = false
  /** node|cid of adapters a node fetched for a job (it advertises them from then on) */
  private readonly fetched = new Set<string>()
  /** one message per failure code seen (what the report shows next to the counts) */
  readonly failureSamples = new Map<string, string>()
  /** one job at a time per channel: a voucher pays ahead for one job on top of what is owed */
  private readonly locks = new Map<Hex, Promise<void>>()

  constructor(
    components: {
      client: InferClient
      /** a client that never hole-punches: what reaches entry nodes through the relay */
      relayClient?: InferClient
      account: LocalAccount
      domain: ChainDomain
      nodes: () => DriverNode[]
    },
    opts: DriverOptions,
    rand: () => number
  ) {
    this.client = components.client
    this.relayClient = components.relayClient
    this.account = components.account
    this.domain = components.domain
    this.nodes = components.nodes
    this.wallet = new VoucherWallet(components.account, components.domain)
    this.opts = opts
    this.rand = rand
  }

  stop(): void {
    this.stopped = true
  }

  async run(): Promise<JobOutcome[]> {
    let next = 0
    const t0 = Date.now()
    const gap = (this.opts.minRunMs ?? 0) / this.opts.jobs
    const worker = async () => {
      while (!this.stopped && next < this.opts.jobs) {
        const startAt = t0 + next * gap
        next++
        if (startAt > Date.now()) await new Promise((r) => setTimeout(r, startAt - Date.now()))
        const o = await this.runJob()
        this.outcomes.push(o)
        this.opts.onJob?.(o, this.outcomes.length)
      }
    }
    await Promise.all(Array.from({ length: this.opts.concurrency }, worker))
    return this.outcomes
  }

  private pick<T>(xs: T[]): T | undefined {
    return xs.length === 0 ? undefined : xs[Math.floor(this.rand() * xs.length)]
  }

  private holds(n: DriverNode, cid: string): boolean {
    return n.adapters.includes(cid) || this.fetched.has(`${n.i}|${cid}`)
  }

  private channel(node: Address, adapterId: Hex): ChannelLedger {
    const key = channelKey(this.account.address, node, adapterId)
    let c = this.ledger.get(key)
    if (!c) {
      c = {
        client: this.account.address,
        node,
        adapterId,
        acknowledged: 0n,
        unknown: [],
        accepted: new Map(),
        unknownJobs: [],
        receipts: 0,
        amountDue: 0n
      }
      this.ledger.set(key, c)
    }
    return c
  }

  private async runJob(): Promise<JobOutcome> {
    const t0 = performance.now()
    const prompt = this.pick(this.opts.prompts)!
    const cid = this.opts.adapterCids[prompt.adapter]!
    const adapterId = adapterIdOf(cid)
    const failures: string[] = []
    const tried = new Set<number>()
    for (let attempt = 1; attempt <= this.opts.maxAttempts && !this.stopped; attempt++) {
      // back off a little between attempts: a killed node needs seconds to come back
      if (attempt > 1) await new Promise((r) => setTimeout(r, Math.min(2_000, 400 * (attempt - 1))))
      const up = this.nodes().filter((n) => n.addr() !== undefined)
      const fresh = up.filter((n) => !tried.has(n.i))
      // Mostly a node that holds the adapter (the cheap path); sometimes any node, which fetches it.
      const holders = fresh.filter((n) => this.holds(n, cid))
      const server = this.pick(
        holders.length > 0 && this.rand() < 0.7 ? holders : fresh.length > 0 ? fresh : up
      )
      // Routers only forward to peers that advertise the adapter, so a job for a node that must
      // fetch it first enters at that node.
      const entry = server && !this.holds(server, cid) ? server : this.pick(up)
      if (!server || !entry) {
        failures.push('NO_NODE_UP')
        await new Promise((r) => setTimeout(r, 500))
        continue
      }
      tried.add(server.i)
      const release = await this.lock(channelKey(this.account.address, server.operator, adapterId))
      try {
        const r = await this.attempt(server, entry, prompt, cid, adapterId, t0, attempt, failures)
        if (r) return r
      } finally {
        release()
      }
    }
    return {
      jobId: null,
      ok: false,
      attempts: this.opts.maxAttempts,
      failures,
      latencyMs: performance.now() - t0
    }
  }

  private async lock(key: Hex): Promise<() => void> {
    const prev = this.locks.get(key) ?? Promise.resolve()
    let release!: () => void
    const mine = new Promise<void>((r) => {
      release = r
    })
    const chained = prev.then(() => mine)
    this.locks.set(key, chained)
    await prev
    return () => {
      release()
      if (this.locks.get(key) === chained) this.locks.delete(key)
    }
  }

  /** One attempt on one serving node; the outcome when it succeeded, undefined to fail over. */
  private async attempt(
    server: DriverNode,
    entry: DriverNode,
    prompt: DemoPrompt,
    cid: string,
    adapterId: Hex,
    t0: number,
    attempt: number,
    failures: string[]
  ): Promise<JobOutcome | undefined> {
    {
      const tv = performance.now()
      const maxAmountDue = amountDue(prompt.promptIds.length, this.opts.maxNewTokens, server.price)
      const voucher = await this.wallet.voucherFor({ node: server.operator, adapterId, maxAmountDue })
      const ch = this.channel(server.operator, adapterId)
      // the entry may have gone down since it was picked (a fault): then it is a dial failure
      const viaRelay =
        this.relayClient !== undefined && this.rand() < (this.opts.relayedShare ?? 0)
          ? entry.relayAddr?.()
          : undefined
      const entryAddr = viaRelay ?? entry.addr() ?? '/ip4/127.0.0.1/tcp/1'
      const client = viaRelay ? this.relayClient! : this.client
      // the job id is ours, so an attempt that fails can still be matched to what the node stored
      const attemptJobId = newJobId()
      const tSent = performance.now()
      let tAccepted = 0
      let tFirst = 0
      let accepted = false
      try {
        const r = await client.infer(
          entryAddr,
          {
            model: this.opts.model,
            adapter: cid,
            promptIds: prompt.promptIds,
            params: { maxNewTokens: this.opts.maxNewTokens },
            voucher: voucherToJson(voucher) as unknown as Record<string, unknown>,
            jobId: attemptJobId,
            timeoutMs: this.opts.attemptTimeoutMs
          },
          {
            onAccepted: () => {
              accepted = true
              tAccepted = performance.now()
            },
            onToken: () => {
              tFirst ||= performance.now()
            }
          }
        )
        const jobId = r.jobId
        const tDone = performance.now()
        // What the client itself knows: the job, the operator and price it paid, the chain's domain.
        const v = await verifyReceipt(r.receipt, {
          jobId: r.jobId,
          peerId: server.peerId,
          operator: server.operator,
          modelId: this.opts.model,
          modelHash: this.opts.modelHash,
          adapter: cid,
          promptIds: prompt.promptIds,
          outputIds: r.outputIds,
          pricePer1kTokens: server.price.toString(),
          domain: { chainId: this.domain.chainId, verifyingContract: this.domain.settlement }
        })
        const voucherOk = r.receipt.body.voucher === voucherHash(this.domain, voucher)
        const tVerified = performance.now()
        if (!v.ok || !voucherOk || !r.verification?.ok) {
          // The node stored the voucher before replying, so this payment may still be claimed.
          ch.unknown.push(voucher.cumulativeAmount)
          ch.unknownJobs.push(attemptJobId)
          await this.wallet.settle({ node: server.operator, adapterId, amountDue: maxAmountDue })
          failures.push(`RECEIPT_INVALID:${v.ok ? (voucherOk ? 'client' : 'voucher') : v.check}`)
          return undefined
        }
        this.fetched.add(`${server.i}|${cid}`)
        const due = BigInt(r.receipt.body.amountDue)
        await this.wallet.settle({ node: server.operator, adapterId, amountDue: due })
        if (voucher.cumulativeAmount > ch.acknowledged) ch.acknowledged = voucher.cumulativeAmount
        ch.accepted.set(jobId, due)
        ch.receipts++
        ch.amountDue += due
        return {
          jobId,
          ok: true,
          attempts: attempt,
          failures,
          entry: entry.i,
          servedBy: server.i,
          routed: entry.i !== server.i,
          relayed: viaRelay !== undefined,
          ...(r.connection ? { connection: r.connection } : {}),
          latencyMs: performance.now() - t0,
          tokens: r.usage.promptTokens + r.usage.outputTokens,
          amountDue: due,
          receipt: r.receipt,
          phases: {
            voucherMs: tSent - tv,
            toAcceptedMs: (tAccepted || tDone) - tSent,
            afterAcceptedMs: tDone - (tAccepted || tDone),
            verifyMs: tVerified - tDone
          },
          timings: r.timings,
          ...(tFirst > 0 ? { ttftMs: tFirst - tSent } : {})
        }
      } catch (err) {
        // libp2p and stream errors arrive as anything (even undefined): a registered code when it
        // has one, else the error class's name (libp2p names its errors), else UNKNOWN_ERROR
        const code =
          codeOf(err) ??
          (err instanceof Error && err.name !== 'Error' ? err.name : undefined) ??
          'UNKNOWN_ERROR'
        // Only a typed refusal before `accepted` proves nothing was stored. Anything else (a lost
        // stream, a timeout, a relay that died, even after the serving node replied) may follow
        // a stored payment.
        const refused = !accepted && err instanceof InferError && REFUSALS.has(err.code)
        if (!refused) {
          ch.unknown.push(voucher.cumulativeAmount)
          ch.unknownJobs.push(attemptJobId)
          // Count the worst case as owed, so the next voucher on this channel covers whatever the
          // node recorded (else it would refuse it as UNDERPAID).
          await this.wallet.settle({ node: server.operator, adapterId, amountDue: maxAmountDue })
        }
        // a relayed attempt's failure says so: the relay's restart shows apart from the nodes' faults
        failures.push(viaRelay ? `relayed:${code}` : code)
        this.failureSamples.set(code, (err instanceof Error ? err.message : String(err)).slice(0, 200))
        // PEER_UNREACHABLE's hint is for a retry through the same peers; the next attempt here
        // picks another serving node, so it need not wait
        const retry =
          err instanceof InferError && err.code !== 'PEER_UNREACHABLE' ? err.data?.retryAfterMs : undefined
        if (typeof retry === 'number') await new Promise((r) => setTimeout(r, Math.min(retry, 2_000)))
        return undefined
      }
    }
  }
}
