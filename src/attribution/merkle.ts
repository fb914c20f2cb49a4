// Merkle tree over a datanet version's contributions, verifiable by OpenZeppelin's
// MerkleProof.verify (commutative keccak256 pairs) in a Solidity contract:
//
//   leaf = keccak256(bytes.concat(keccak256(abi.encode(bytes32 contributionDigest, address contributor))))
//
// where contributionDigest = the sha2-256 digest inside the contribution's CID (cidDigest). The
// double hash (as in OZ StandardMerkleTree) keeps a 64-byte inner node from passing as a leaf.
// Leaves are sorted ascending as bytes, then paired level by level, (0,1), (2,3), …; a node left
// without a partner moves up unchanged. A pair hashes as keccak256(min(a,b) ‖ max(a,b)), so a
// proof is just the list of sibling hashes from leaf to root.
import { cidDigest } from '../crypto/cid.ts'
import { fromHex, type Hex, keccak256, toHex } from '../crypto/hash.ts'

export function contributionLeaf(contributionCid: string, contributor: string): Hex {
  const enc = new Uint8Array(64)
  enc.set(cidDigest(contributionCid), 0)
  const addr = fromHex(contributor)
  if (addr.length !== 20) throw new TypeError(`contributor must be a 20-byte address, got ${contributor}`)
  enc.set(addr, 44)
  return toHex(keccak256(keccak256(enc)))
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length && i < b.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

export function hashPair(a: Uint8Array, b: Uint8Array): Uint8Array {
  const buf = new Uint8Array(64)
  if (compareBytes(a, b) <= 0) {
    buf.set(a, 0)
    buf.set(b, 32)
  } else {
    buf.set(b, 0)
    buf.set(a, 32)
  }
  return keccak256(buf)
}

export interface MerkleTree {
  root: Hex
  /** leaves in tree order (sorted) */
  leaves: Hex[]
  proof(leaf: Hex): Hex[]
}

export function buildMerkleTree(leavesIn: readonly Hex[]): MerkleTree {
  if (leavesIn.length === 0) throw new TypeError('a Merkle tree needs at least one leaf')
  const leaves = [...leavesIn].map((l) => l.toLowerCase() as Hex).sort()
  for (let i = 1; i < leaves.length; i++)
    if (leaves[i] === leaves[i - 1]) throw new TypeError(`duplicate Merkle leaf ${leaves[i]}`)
  const levels: Uint8Array[][] = [leaves.map(fromHex)]
  while (levels[levels.length - 1]!.length > 1) {
    const cur = levels[levels.length - 1]!
    const next: Uint8Array[] = []
    for (let i = 0; i < cur.length; i += 2)
      next.push(i + 1 < cur.length ? hashPair(cur[i]!, cur[i + 1]!) : cur[i]!)
    levels.push(next)
  }
  const index = new Map(leaves.map((l, i) => [l, i]))
  return {
    root: toHex(levels[levels.length - 1]![0]!),
    leaves,
    proof(leaf) {
      let i = index.get(leaf.toLowerCase() as Hex)
      if (i === undefined) throw new TypeError(`leaf ${leaf} is not in this tree`)
      const path: Hex[] = []
      for (let l = 0; l < levels.length - 1; l++) {
        const sib = i ^ 1
        if (sib < levels[l]!.length) path.push(toHex(levels[l]![sib]!))
        i >>= 1
      }
      return path
    }
  }
}

/** Root reached from `leaf` by `path` (OZ MerkleProof.processProof). */
export function processMerkleProof(leaf: Hex, path: readonly Hex[]): Hex {
  let h = fromHex(leaf)
  for (const s of path) h = hashPair(h, fromHex(s))
  return toHex(h)
}
