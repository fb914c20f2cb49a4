// Content identities of the runtime's inputs (docs/INTERFACES.md, "Identities"): a base model is
// known by the hash of its weight files, an adapter by the CID of its two PEFT files. Both are
// manifests of (name, size, sha256), so the same bytes give the same id on every node and a file
// fetched from a peer can be checked on its own.
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { cidForManifest, encodeManifest, type ManifestFile } from '../../crypto/cid.ts'
import { type Hex, sha256, sha256Hex, sha256Stream } from '../../crypto/hash.ts'
import { checkpointFiles } from './safetensors.ts'

export const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const

async function hashFile(path: string): Promise<{ size: number; sha256: Uint8Array }> {
  const h = sha256Stream()
  const fh = await open(path, 'r')
  const buf = Buffer.alloc(8 * 1024 * 1024)
  let size = 0
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, size)
      if (bytesRead === 0) break
      h.update(buf.subarray(0, bytesRead))
      size += bytesRead
    }
  } finally {
    await fh.close()
  }
  return { size, sha256: h.digest() }
}

/**
 * Base model identity: sha256 over the canonical `hf-weights` manifest of the safetensors files
 * the checkpoint loads (model.safetensors, or the shards its index names; other stray
 * .safetensors files such as Mistral's consolidated.safetensors are not weights we load).
 */
export async function weightsHash(dir: string): Promise<Hex> {
  const { files } = await checkpointFiles(dir)
  const entries: ManifestFile[] = []
  for (const name of files) {
    const f = await hashFile(join(dir, name))
    entries.push({ name, size: f.size, sha256: f.sha256 })
  }
  return sha256Hex(encodeManifest({ v: 1, kind: 'hf-weights', files: entries }))
}

/** Adapter CID from the two files' bytes (what a node computes before trusting a download). */
export function adapterCidFromBytes(configBytes: Uint8Array, weightBytes: Uint8Array): string {
  return cidForManifest({
    v: 1,
    kind: 'peft-adapter',
    files: [
      { name: ADAPTER_FILES[0], size: configBytes.length, sha256: sha256(configBytes) },
      { name: ADAPTER_FILES[1], size: weightBytes.length, sha256: sha256(weightBytes) }
    ]
  })
}

/** Adapter CID of a PEFT directory, streaming (never holds the weights). */
export async function adapterCid(dir: string): Promise<string> {
  const files: ManifestFile[] = []
  for (const name of ADAPTER_FILES) {
    const f = await hashFile(join(dir, name))
    files.push({ name, size: f.size, sha256: f.sha256 })
  }
  return cidForManifest({ v: 1, kind: 'peft-adapter', files })
}
