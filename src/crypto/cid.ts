// Content ids. Raw bytes get CIDv1(raw, sha2-256); a multi-file object (a PEFT adapter, a
// datanet contribution set) gets CIDv1(dag-cbor, sha2-256) over a canonical manifest listing
// each file's name, size and sha256, so the same files give the same id on every node and each
// file can be fetched and checked on its own.
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { z } from '../common/schema.ts'
import { encodeCanonical } from './cbor.ts'
import { sha256 } from './hash.ts'

const RAW = 0x55
const DAG_CBOR = 0x71
const SHA2_256 = 0x12

export interface ManifestFile {
  name: string
  size: number
  sha256: Uint8Array
}

export interface Manifest {
  /** manifest format version */
  v: 1
  /** what the object is, e.g. 'peft-adapter', 'datanet-contribution' */
  kind: string
  files: ManifestFile[]
}

export function cidForBytes(bytes: Uint8Array): string {
  return CID.createV1(RAW, Digest.create(SHA2_256, sha256(bytes))).toString()
}

/** Files are sorted by name before encoding so the order they were listed in never matters. */
export function encodeManifest(m: Manifest): Uint8Array {
  const files = [...m.files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  return encodeCanonical({
    v: m.v,
    kind: m.kind,
    files: files.map((f) => ({ name: f.name, size: f.size, sha256: f.sha256 }))
  })
}

export function cidForManifest(m: Manifest): string {
  return CID.createV1(DAG_CBOR, Digest.create(SHA2_256, sha256(encodeManifest(m)))).toString()
}

/** Parses and checks a CID string; throws TypeError naming the problem. */
export function parseCid(cid: string): CID {
  try {
    return CID.parse(cid)
  } catch (err) {
    throw new TypeError(`not a valid CID: "${cid.slice(0, 80)}" (${(err as Error).message})`)
  }
}

/** A CID string (adapters, datanet contributions) in a schema: at most `max` characters, parsable. */
export const cidString = (max = 128) =>
  z
    .string()
    .min(1)
    .max(max)
    .superRefine((s, ctx) => {
      try {
        parseCid(s)
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message })
      }
    })

/** 32-byte digest of a CID (its multihash digest), the form used on-chain as `bytes32`. */
export function cidDigest(cid: string): Uint8Array {
  return parseCid(cid).multihash.digest
}
