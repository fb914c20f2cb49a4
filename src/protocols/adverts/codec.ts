// Wire form of a capability advert: canonical CBOR of `{ body, sig }`, where `sig` is the peer's
// Ed25519 signature over canonical CBOR of `{ domain, body }`. Decoding checks size first, then
// that the bytes are canonical (so one advert has exactly one encoding and one signature), then
// the schema of every known field. Unknown body fields are kept and covered by the signature but
// not interpreted, so a later version can add optional fields without splitting the network.
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  anyAddress,
  bytesOf,
  decimalString,
  hexBytes,
  messageOf,
  parseWith,
  uint,
  z
} from '../../common/schema.ts'
import { decodeCanonical, encodeCanonical } from '../../crypto/cbor.ts'
import { bytesEqual, type Hex } from '../../crypto/hash.ts'
import {
  ADAPTER_TIERS,
  type AdapterTier,
  type Capabilities,
  type Hardware,
  type ServedModel
} from '../../serving/capability.ts'
import { type BloomFilter, bloomHas, createBloom } from './bloom.ts'
import {
  ADVERT_SIGN_DOMAIN,
  ADVERT_VERSION,
  BINDING_CACHE_SIZE,
  MAX_ADDR_CHARS,
  MAX_ADDRS,
  MAX_ADVERT_BYTES,
  MAX_BLOOM_BYTES,
  MAX_BLOOM_HASHES,
  MAX_CID_CHARS,
  MAX_GPUS,
  MAX_MODELS,
  MAX_STRING_CHARS
} from './constants.ts'
import { InvalidAdvertError } from './errors.ts'

// Unknown fields are kept at every level (z.looseObject): they are covered by the signature, and
// a later version may add optional ones without splitting the network.
const text = (max = MAX_STRING_CHARS) => z.string().max(max)

const BloomSchema = z
  .looseObject({
    bits: z
      .int()
      .min(1)
      .max(MAX_BLOOM_BYTES * 8),
    k: z.int().min(1).max(MAX_BLOOM_HASHES),
    data: bytesOf(1, MAX_BLOOM_BYTES)
  })
  .refine((b) => Math.ceil(b.bits / 8) === b.data.length, {
    error: 'does not match data length',
    path: ['bits']
  })

const AdapterTierSetSchema = z
  .looseObject({
    /** how many adapters the tier holds */
    count: uint(),
    /** the first ones by CID (all of them when count <= the list limit) */
    list: z.array(text(MAX_CID_CHARS)).max(1024),
    /** all of them, when count exceeds the list limit */
    bloom: BloomSchema.nullable() as z.ZodType<BloomFilter | null, unknown>
  })
  .superRefine((t, ctx) => {
    if (t.list.length > t.count)
      ctx.addIssue({ code: 'custom', path: ['list'], message: `lists more than its count of ${t.count}` })
    else if (t.bloom === null && t.list.length !== t.count)
      ctx.addIssue({
        code: 'custom',
        path: ['list'],
        message: 'must list every adapter when there is no Bloom filter'
      })
  })
export type AdapterTierSet = z.output<typeof AdapterTierSetSchema>

const HardwareSchema = z.looseObject({
  cpu: z.looseObject({ cores: uint(), ramMb: uint(), model: text() }),
  gpus: z.array(z.looseObject({ name: text(), driver: text(), memoryMb: uint() })).max(MAX_GPUS)
}) as z.ZodType<Hardware, unknown>

export const AdvertBodySchema = z
  .looseObject({
    v: z.literal(ADVERT_VERSION),
    peerId: text(128).superRefine((id, ctx) => {
      try {
        peerIdFromString(id)
      } catch {
        ctx.addIssue({ code: 'custom', message: 'is not a peer id' })
      }
    }),
    /** operator's Ethereum address (checksummed) */
    operator: anyAddress,
    /** EIP-191 signature by the operator key over operatorBindingMessage(peerId), 65 bytes */
    operatorSig: bytesOf(65),
    /** software version of the node */
    version: text(64),
    /** multiaddrs to dial this peer on (announce addresses, or listen addresses) */
    addrs: z.array(text(MAX_ADDR_CHARS).regex(/^\//)).max(MAX_ADDRS),
    hardware: HardwareSchema,
    executionProvider: z.enum(['cpu', 'cuda']),
    models: z
      .array(
        z.looseObject({
          id: text(),
          weightsHash: hexBytes(32),
          /** a family registry key: 'llama', 'gemma3_text', … */
          family: z
            .string()
            .max(32)
            .regex(/^[a-z0-9_]+$/)
            .optional()
        })
      )
      .max(MAX_MODELS) as z.ZodType<ServedModel[], unknown>,
    adapters: z.looseObject({
      hot: AdapterTierSetSchema,
      warm: AdapterTierSetSchema,
      cold: AdapterTierSetSchema
    }),
    queueDepth: uint(),
    freeSlots: uint(),
    pricePer1kTokens: decimalString,
    /** strictly increasing per peer; a receiver ignores anything not newer than what it holds */
    seq: uint(),
    /** ms since epoch when signed */
    ts: uint(),
    /** ms since epoch after which the advert must be dropped */
    expires: uint(),
    /**
     * how the node is reached: public address, through a relay, or only on its LAN. Optional (added
     * after v1 shipped): adverts without it stay valid and canonical.
     */
    reachability: z.enum(['public', 'relayed', 'local']).optional(),
    /**
     * the node trains adapters for peers at this price per 1k trained tokens, on these models.
     * Optional (added after v1 shipped): adverts without it stay valid and byte-identical, and a
     * node that predates it keeps it as an unknown field under the signature.
     */
    train: z
      .looseObject({
        pricePer1kTokens: decimalString,
        models: z.array(text()).max(MAX_MODELS)
      })
      .optional()
  })
  .refine((b) => b.expires > b.ts, { error: 'must be after ts', path: ['expires'] })
export type AdvertBody = z.output<typeof AdvertBodySchema>

const AdvertSchema = z.looseObject({ body: AdvertBodySchema, sig: bytesOf(64) })

export interface SignedAdvert {
  body: AdvertBody
  sig: Uint8Array
  /** the exact wire bytes */
  bytes: Uint8Array
}

export function compactTier(cids: readonly string[], listLimit: number): AdapterTierSet {
  const list = cids.slice(0, listLimit)
  const bloom = cids.length > listLimit ? createBloom(cids, cids.length) : null
  return { count: cids.length, list: [...list], bloom }
}

/** Where a tier holds a CID: in its explicit list, probably (Bloom filter hit), or not at all. */
export function tierHas(set: AdapterTierSet, cid: string): 'list' | 'bloom' | null {
  if (set.list.includes(cid)) return 'list'
  if (set.bloom != null && bloomHas(set.bloom, cid)) return 'bloom'
  return null
}

export interface BuildAdvertInput {
  peerId: string
  operator: Hex
  operatorSig: Uint8Array
  version: string
  addrs: string[]
  caps: Capabilities
  seq: number
  now: number
  ttlMs: number
  adapterListLimit: number
  reachability?: 'public' | 'relayed' | 'local'
}

export function buildAdvertBody(i: BuildAdvertInput): AdvertBody {
  const adapters = {} as Record<AdapterTier, AdapterTierSet>
  for (const t of ADAPTER_TIERS) adapters[t] = compactTier(i.caps.adapters[t], i.adapterListLimit)
  return {
    v: ADVERT_VERSION,
    peerId: i.peerId,
    operator: i.operator,
    operatorSig: i.operatorSig,
    version: i.version,
    addrs: i.addrs.slice(0, MAX_ADDRS),
    hardware: i.caps.hardware,
    executionProvider: i.caps.executionProvider,
    models: i.caps.models.map((m) =>
      m.family === undefined
        ? { id: m.id, weightsHash: m.weightsHash }
        : { id: m.id, weightsHash: m.weightsHash, family: m.family }
    ),
    adapters,
    queueDepth: i.caps.queueDepth,
    freeSlots: i.caps.freeSlots,
    pricePer1kTokens: i.caps.pricePer1kTokens,
    seq: i.seq,
    ts: i.now,
    expires: i.now + i.ttlMs,
    ...(i.reachability ? { reachability: i.reachability } : {}),
    ...(i.caps.train
      ? { train: { pricePer1kTokens: i.caps.train.pricePer1kTokens, models: [...i.caps.train.models] } }
      : {})
  }
}

export function advertSigningBytes(body: AdvertBody): Uint8Array {
  return encodeCanonical({ domain: ADVERT_SIGN_DOMAIN, body })
}

export async function signAdvert(body: AdvertBody, key: PrivateKey): Promise<SignedAdvert> {
  // Some key implementations hand back a Buffer; adverts carry plain bytes.
  const sig = new Uint8Array(await key.sign(advertSigningBytes(body)))
  const bytes = encodeCanonical({ body, sig })
  if (bytes.length > MAX_ADVERT_BYTES) {
    throw new InvalidAdvertError(
      'oversized',
      `advert is ${bytes.length} bytes, more than the ${MAX_ADVERT_BYTES} allowed; lower adverts.adapterListLimit`,
      { bytes: bytes.length }
    )
  }
  return { body, sig, bytes }
}

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
/**
 * Ed25519 key objects by peer id. Building a KeyObject per verification cost more than the
 * verification itself (profiled: 20 in-process nodes), and every peer sends adverts repeatedly.
 */
const keyCache = new Map<string, KeyObject>()

function ed25519Key(peerId: string): KeyObject | undefined {
  const hit = keyCache.get(peerId)
  if (hit) return hit
  const pub = peerIdFromString(peerId).publicKey
  if (pub?.type !== 'Ed25519') return undefined
  const key = createPublicKey({
    key: Buffer.concat([ED25519_SPKI_PREFIX, pub.raw]),
    format: 'der',
    type: 'spki'
  })
  if (keyCache.size >= BINDING_CACHE_SIZE) keyCache.delete(keyCache.keys().next().value!)
  keyCache.set(peerId, key)
  return key
}

export async function verifyAdvertSignature(adv: SignedAdvert): Promise<boolean> {
  try {
    const data = advertSigningBytes(adv.body)
    const key = ed25519Key(adv.body.peerId)
    if (key) return cryptoVerify(null, data, key, adv.sig)
    // other key types (not generated by this node, but valid peer ids)
    const pub = peerIdFromString(adv.body.peerId).publicKey
    return pub != null && (await pub.verify(data, adv.sig))
  } catch {
    return false
  }
}

/** Size, canonical form and schema; throws InvalidAdvertError with the reason. */
export function decodeAdvert(bytes: Uint8Array): SignedAdvert {
  if (bytes.length > MAX_ADVERT_BYTES) {
    throw new InvalidAdvertError('oversized', `advert is ${bytes.length} bytes; at most ${MAX_ADVERT_BYTES}`)
  }
  let raw: unknown
  try {
    raw = decodeCanonical(bytes)
  } catch (err) {
    throw new InvalidAdvertError('malformed', `advert is not valid CBOR: ${(err as Error).message}`)
  }
  if (!bytesEqual(encodeCanonical(raw), bytes)) {
    throw new InvalidAdvertError('not-canonical', 'advert is not in canonical CBOR (RFC 8949 §4.2.1)')
  }
  const { body, sig } = parseWith(AdvertSchema, raw, {
    error: (issue) =>
      new InvalidAdvertError('schema', `advert field ${messageOf(issue)}`, {
        field: issue.field,
        value: issue.value
      })
  })
  return { body, sig, bytes }
}
