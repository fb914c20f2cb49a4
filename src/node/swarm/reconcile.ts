// Reconciliation of a swarm run, to the wei. From the client's side: per channel, the vouchers
// whose receipts it accepted (and those whose outcome it could not know). From the chain: what
// each channel has been paid, every VoucherClaimed and PoolFunded event, every party's credits
// and token balance. Checks:
//   1. channel: every receipt the client accepted is in the serving node's store with the same
//      amountDue (nothing acknowledged is lost); any other payment the node stored belongs to an
//      attempt whose outcome the client could not know (the reply was lost: paid without a
//      receipt, counted and reported); and the chain paid the channel exactly the stored
//      receipts' total (or, with a Settlement that pays signed cumulative amounts, the latest
//      voucher's) — each voucher increase once;
//   2. events: the VoucherClaimed amounts of a channel add up to what it has been paid;
//   3. credits: node operators, adapter owners and the treasury hold exactly the contract's
//      split (src/chain/shares.ts) of every claimed increase (the treasury also the pool shares
//      no contributor tree took);
//   4. contributors: their token balances equal the leaves withdrawn, and all leaves add up to
//      the funded pools;
//   5. escrow: the client's escrow (summed over the nodes) is its deposits less everything paid.
import { type Address, getAddress, type Hex, zeroHash } from 'viem'
import { settlementAbi } from '../../chain/artifacts/index.ts'
import type { ChainClient } from '../../chain/client.ts'
import { poolsFundedBy, vouchersClaimedBy } from '../../chain/events.ts'
import { splitPayment } from '../../chain/shares.ts'
import { channelKey } from '../../chain/vouchers.ts'
import type { ChannelLedger } from './driver.ts'
import type { StoredChannel } from './settle.ts'

export interface Party {
  role: 'operator' | 'adapter-owner' | 'contributor' | 'treasury' | 'client'
  address: Address
  /** Settlement credits (withdrawable), wei */
  credits: string
  /** OPEN token balance, wei */
  tokens: string
  /** what the receipts and the contract's shares say this party should hold, wei */
  expected: string
  ok: boolean
}

export interface Reconciliation {
  ok: boolean
  problems: string[]
  channels: number
  receipts: number
  amountDueTotal: string
  /** Σ over channels of the highest acknowledged voucher: what the receipts' channels owe */
  acknowledgedTotal: string
  claimedTotal: string
  /** Σ amountDue of the receipts the serving nodes stored (accepted + paid without receipt) */
  storedDueTotal: string
  /** paid beyond the stored receipts: the unused pay-ahead margin of each channel's latest voucher
   * when Settlement pays signed cumulative amounts; 0 when nodes claim what is owed */
  unusedMarginTotal: string
  /** 'owed': nodes claim their receipts' total; 'voucher': the latest voucher's signed amount */
  claimMode: 'owed' | 'voucher'
  /** paid for vouchers whose job the client saw fail after the node may have stored it */
  paidWithoutReceipt: string
  /** the job ids behind paidWithoutReceipt (grep the node logs for them) */
  paidWithoutReceiptJobs: Hex[]
  /** jobs whose receipt the client accepted but whose payment no node stored as receipted (lost) */
  lostJobs: Hex[]
  vouchersClaimed: number
  poolsFunded: number
  poolTotal: string
  parties: Party[]
}

export interface ReconcileInput {
  chain: ChainClient
  ledger: Iterable<ChannelLedger>
  operators: Address[]
  ownerOf: Map<Hex, Address>
  treasury: Address
  contributors: Address[]
  client: Address
  deposit: bigint
  /** every channel as the serving nodes stored it (by channel key), read after they stopped */
  stored: Map<Hex, StoredChannel>
  /** contributors' token balances before the run (fresh addresses: 0) */
  contributorTokensBefore?: Map<Address, bigint>
  withdrawnToContributors: bigint
}

/** Whether Settlement.claim takes an `amount` per voucher (the channel's owed total, at most the
 * signed maximum) or pays each voucher's signed cumulative amount: decides what a channel is paid. */
function claimsOwedAmount(): boolean {
  const claim = settlementAbi.find((x) => x.type === 'function' && x.name === 'claim') as
    | { inputs: readonly { components?: readonly { name: string }[] }[] }
    | undefined
  return claim?.inputs[0]?.components?.some((c) => c.name === 'amount') ?? false
}

export async function reconcile(input: ReconcileInput): Promise<Reconciliation> {
  const { chain } = input
  const problems: string[] = []
  const ledger = [...input.ledger]
  const owedMode = claimsOwedAmount()
  let acknowledged = 0n
  let claimed = 0n
  let due = 0n
  let storedDue = 0n
  let receipts = 0
  let withoutReceipt = 0n
  const withoutReceiptJobs: Hex[] = []
  const lostJobs: Hex[] = []
  const paidPerChannel = new Map<string, bigint>()
  const key = (client: Address, node: Address, adapterId: Hex) =>
    `${getAddress(client)}|${getAddress(node)}|${adapterId.toLowerCase()}`
  const seenStored = new Set<Hex>()
  for (const c of ledger) {
    const onChain = await chain.claimedOf(c.client, c.node, c.adapterId)
    paidPerChannel.set(key(c.client, c.node, c.adapterId), onChain)
    acknowledged += c.acknowledged
    claimed += onChain
    due += c.amountDue
    receipts += c.receipts
    const id = channelKey(c.client, c.node, c.adapterId)
    const where = `channel node ${c.node} adapter ${c.adapterId.slice(0, 10)}…`
    const s = input.stored.get(id)
    if (s) seenStored.add(id)
    const stored = s?.receipts ?? new Map<Hex, bigint>()
    // nothing acknowledged is lost: every receipt the client accepted is in the node's store
    for (const [jobId, amount] of c.accepted) {
      const got = stored.get(jobId)
      if (got === undefined) problems.push(`${where}: the node has no payment for acknowledged job ${jobId}`)
      else if (got !== amount)
        problems.push(`${where}: job ${jobId} stored with ${got}, receipt says ${amount}`)
      if (got !== amount) lostJobs.push(jobId)
    }
    // what the node stored beyond that must be jobs whose outcome the client could not know
    let sum = 0n
    for (const [jobId, amount] of stored) {
      sum += amount
      if (c.accepted.has(jobId)) continue
      if (c.unknownJobs.includes(jobId)) {
        withoutReceipt += amount
        withoutReceiptJobs.push(jobId)
      } else problems.push(`${where}: the node stored a payment for job ${jobId} the client never sent there`)
    }
    storedDue += sum
    const want = owedMode ? sum : (s?.latest ?? 0n)
    if (onChain !== want)
      problems.push(
        `${where}: paid ${onChain} on-chain, expected ${want} (${owedMode ? "the node's stored receipts" : 'its latest voucher'})`
      )
  }
  for (const id of input.stored.keys())
    if (!seenStored.has(id)) problems.push(`a node stored channel ${id} the client never used`)

  // events: per channel, per role
  const expected = new Map<Address, bigint>()
  const add = (a: Address, v: bigint) => expected.set(getAddress(a), (expected.get(getAddress(a)) ?? 0n) + v)
  let vouchersClaimed = 0
  let poolShares = 0n
  let poolTotal = 0n
  let poolsFunded = 0
  const eventsPaid = new Map<string, bigint>()
  for (const op of input.operators) {
    for (const ev of await vouchersClaimedBy(chain, op)) {
      vouchersClaimed++
      const k = key(ev.client, op, ev.adapterId)
      eventsPaid.set(k, (eventsPaid.get(k) ?? 0n) + ev.paid)
      const s = splitPayment(ev.paid)
      add(op, s.node)
      const owner =
        ev.adapterId === zeroHash ? input.treasury : input.ownerOf.get(ev.adapterId.toLowerCase() as Hex)
      if (!owner) problems.push(`claim for adapter ${ev.adapterId} the swarm did not register`)
      else add(owner, s.owner)
      add(input.treasury, s.protocol)
      poolShares += s.pool
    }
    for (const p of await poolsFundedBy(chain, op)) {
      poolsFunded++
      poolTotal += p.total
    }
  }
  add(input.treasury, poolShares - poolTotal)
  for (const [k, paid] of paidPerChannel)
    if ((eventsPaid.get(k) ?? 0n) !== paid)
      problems.push(
        `channel ${k}: VoucherClaimed events add up to ${eventsPaid.get(k) ?? 0n}, channel paid ${paid}`
      )
  for (const k of eventsPaid.keys())
    if (!paidPerChannel.has(k)) problems.push(`channel ${k} was paid but the client never used it`)

  const parties: Party[] = []
  const party = async (role: Party['role'], address: Address, want: bigint, kind: 'credits' | 'tokens') => {
    const credits = await chain.creditsOf(address)
    const tokens = await chain.tokenBalance(address)
    const have = kind === 'credits' ? credits : tokens - (input.contributorTokensBefore?.get(address) ?? 0n)
    const ok = have === want
    if (!ok) problems.push(`${role} ${address}: ${kind} ${have}, expected ${want}`)
    parties.push({
      role,
      address,
      credits: credits.toString(),
      tokens: tokens.toString(),
      expected: want.toString(),
      ok
    })
  }
  for (const op of input.operators) await party('operator', op, expected.get(getAddress(op)) ?? 0n, 'credits')
  for (const owner of new Set(input.ownerOf.values()))
    await party('adapter-owner', owner, expected.get(getAddress(owner)) ?? 0n, 'credits')
  await party('treasury', input.treasury, expected.get(getAddress(input.treasury)) ?? 0n, 'credits')
  let contributorsGot = 0n
  for (const c of input.contributors) {
    const got = (await chain.tokenBalance(c)) - (input.contributorTokensBefore?.get(c) ?? 0n)
    contributorsGot += got
    await party('contributor', c, got, 'tokens')
  }
  if (contributorsGot !== poolTotal)
    problems.push(`contributors received ${contributorsGot}, the funded pools hold ${poolTotal}`)
  if (input.withdrawnToContributors !== poolTotal)
    problems.push(`withdrawals submitted ${input.withdrawnToContributors}, pools funded ${poolTotal}`)
  // escrow is per (client, node): the client's escrow is the sum over the operators
  let escrow = 0n
  for (const op of input.operators) escrow += (await chain.escrowOf(input.client, op)).balance
  const escrowWant = input.deposit - claimed
  if (escrow !== escrowWant) problems.push(`client escrow ${escrow}, expected deposit − paid = ${escrowWant}`)
  parties.push({
    role: 'client',
    address: input.client,
    credits: escrow.toString(),
    tokens: (await chain.tokenBalance(input.client)).toString(),
    expected: escrowWant.toString(),
    ok: escrow === escrowWant
  })
  return {
    ok: problems.length === 0,
    problems,
    lostJobs,
    channels: ledger.length,
    receipts,
    amountDueTotal: due.toString(),
    acknowledgedTotal: acknowledged.toString(),
    claimedTotal: claimed.toString(),
    storedDueTotal: storedDue.toString(),
    unusedMarginTotal: (claimed - storedDue).toString(),
    claimMode: owedMode ? 'owed' : 'voucher',
    paidWithoutReceipt: withoutReceipt.toString(),
    paidWithoutReceiptJobs: withoutReceiptJobs,
    vouchersClaimed,
    poolsFunded,
    poolTotal: poolTotal.toString(),
    parties
  }
}
