// The real tokenizer of a base model directory, seen through the narrow TextEncoder interface
// attribution uses: no special tokens (a BOS in every chunk would match nothing in an output),
// and an id naming the tokenizer.json bytes so span indexes of different tokenizers never mix.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sha256Hex } from '../crypto/hash.ts'
import { Tokenizer } from '../runtime/tokenizer.ts'
import type { TextEncoder } from './types.ts'

export async function modelTextEncoder(
  modelDir: string
): Promise<{ encoder: TextEncoder; tokenizerId: string }> {
  const tok = await Tokenizer.fromDir(modelDir)
  const tokenizerId = sha256Hex(await readFile(join(modelDir, 'tokenizer.json'))).slice(2, 18)
  return { encoder: { encode: (text) => tok.encode(text, { addSpecialTokens: false }) }, tokenizerId }
}
