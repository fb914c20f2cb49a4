// Decides what gossip does with a received advert (Lodestar-style): REJECT when the sender
// misbehaved (malformed, oversized, badly signed, relayed under a different `from`) so gossipsub
// penalises it; IGNORE when the advert is merely useless (expired, from the future, or not newer
// than what we hold: a replay or a lost race) so it stops spreading without penalty. The cheap
// checks come first, so an advert that would be ignored anyway costs no signature check.
import type { BindingVerifier } from './binding.ts'
import { decodeAdvert, type SignedAdvert, verifyAdvertSignature } from './codec.ts'
import { MAX_CLOCK_SKEW_MS, MAX_TTL_MS, MIN_ADVERT_INTERVAL_MS } from './constants.ts'
import { type AdvertIgnoreReason, type AdvertRejectReason, InvalidAdvertError } from './errors.ts'

export type AdvertVerdict =
  | { action: 'accept'; advert: SignedAdvert }
  | { action: 'reject'; reason: AdvertRejectReason; message: string }
  | { action: 'ignore'; reason: AdvertIgnoreReason; message: string }

export interface ValidateContext {
  /** peer id of the gossip message's original publisher (`from` of a signed message) */
  from: string | undefined
  /**
   * The advert was relayed by a third party on purpose (table sync on connect), so `from` is not
   * checked; the peer signature alone proves who made it.
   */
  relayed?: boolean
  now: number
  /** our own peer id: our adverts echoed back are ignored */
  self?: string
  /** newest sequence number held for a peer, if any */
  latestSeq(peerId: string): number | undefined
  /** signing time (`ts`) of the advert held for a peer, for the flood limit; not checked when absent */
  latestTs?(peerId: string): number | undefined
  bindings: BindingVerifier
}

export async function validateAdvert(bytes: Uint8Array, ctx: ValidateContext): Promise<AdvertVerdict> {
  let adv: SignedAdvert
  try {
    adv = decodeAdvert(bytes)
  } catch (err) {
    if (err instanceof InvalidAdvertError)
      return { action: 'reject', reason: err.reason, message: err.message }
    throw err
  }
  const b = adv.body
  if (!ctx.relayed && ctx.from !== b.peerId) {
    return {
      action: 'reject',
      reason: 'from-mismatch',
      message: `advert for ${b.peerId} was published by ${ctx.from ?? 'an anonymous sender'}`
    }
  }
  if (b.expires - b.ts > MAX_TTL_MS) {
    return { action: 'reject', reason: 'malformed', message: `advert lifetime over ${MAX_TTL_MS} ms` }
  }
  // Cheap IGNORE checks run before the signature checks: most adverts a node sees (gossip
  // duplicates, table syncs) are ones it already holds, and need no crypto to be dropped.
  if (b.peerId === ctx.self) return { action: 'ignore', reason: 'own-advert', message: 'our own advert' }
  if (b.expires <= ctx.now) return { action: 'ignore', reason: 'expired', message: 'advert expired' }
  if (b.ts > ctx.now + MAX_CLOCK_SKEW_MS) {
    return {
      action: 'ignore',
      reason: 'future-timestamp',
      message: `advert dated ${b.ts - ctx.now} ms ahead`
    }
  }
  const held = ctx.latestSeq(b.peerId)
  if (held !== undefined && b.seq <= held) {
    return { action: 'ignore', reason: 'stale-sequence', message: `seq ${b.seq} not newer than ${held}` }
  }
  const heldTs = ctx.relayed ? undefined : ctx.latestTs?.(b.peerId)
  if (heldTs !== undefined && b.ts - heldTs < MIN_ADVERT_INTERVAL_MS) {
    return {
      action: 'ignore',
      reason: 'too-frequent',
      message: `advert signed ${b.ts - heldTs} ms after the one held; at least ${MIN_ADVERT_INTERVAL_MS} ms apart`
    }
  }
  if (!(await verifyAdvertSignature(adv))) {
    return { action: 'reject', reason: 'bad-signature', message: 'peer signature does not verify' }
  }
  if (!(await ctx.bindings.verify(b.peerId, b.operator, b.operatorSig))) {
    return {
      action: 'reject',
      reason: 'bad-operator-binding',
      message: `operator signature does not bind ${b.operator} to ${b.peerId}`
    }
  }
  return { action: 'accept', advert: adv }
}
