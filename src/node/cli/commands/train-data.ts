// Where `openlora train` gets its sequences: --tokens (token ids), --data (JSONL rows) or
// --datanet ID[@VERSION] (the text contributions of a published datanet version this node holds,
// one text row each). For a datanet the training record names the version, its Merkle root and
// its contributors, which is what `adapter register` later declares on-chain as training data.
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type Hex, sha256Hex } from '../../../crypto/hash.ts'
import { Tokenizer } from '../../../runtime/tokenizer.ts'
import { type Example, encodeRows, parseJsonl } from '../../../runtime/training/data.ts'
import type { DatanetSource } from '../../../runtime/training/record.ts'
import type { NodeConfig } from '../../config/schema.ts'
import { UsageError } from '../command.ts'
import { type DatanetFetchFlags, type DatanetTrainingRows, datanetForTraining } from './train-fetch.ts'

const MAX_DATA_FILE = 64 * 1024 * 1024

export interface TrainData {
  seqs: number[][] | Example[]
  data: { kind: 'tokens' | 'jsonl' | 'datanet'; sha256: string }
  datanets: DatanetSource[]
  /** --datanet: whether it was copied from peers first */
  ensured?: DatanetTrainingRows['ensured']
}

async function readText(flag: string, file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch((err: Error) => {
    throw new UsageError(`--${flag} ${file}: cannot read (${err.message})`)
  })
  if (text.length > MAX_DATA_FILE)
    throw new UsageError(`--${flag} ${file}: larger than ${MAX_DATA_FILE} bytes`)
  return text
}

export async function readTokens(file: string): Promise<TrainData> {
  const text = await readText('tokens', file)
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (err) {
    throw new UsageError(`--tokens ${file}: not JSON (${(err as Error).message})`)
  }
  if (!Array.isArray(v) || !v.every((s) => Array.isArray(s)))
    throw new UsageError(`--tokens ${file}: expected a JSON array of token-id arrays, e.g. [[1,5,9],[1,7]]`)
  return { seqs: v as number[][], data: { kind: 'tokens', sha256: sha256Hex(text) }, datanets: [] }
}

async function tokenizer(modelDir: string, flag: string): Promise<Tokenizer> {
  if (!existsSync(join(modelDir, 'tokenizer.json')))
    throw new UsageError(
      `--${flag} needs ${modelDir}/tokenizer.json to tokenize rows; use --tokens with token ids`
    )
  return Tokenizer.fromDir(modelDir)
}

export async function readData(modelDir: string, file: string): Promise<TrainData> {
  const text = await readText('data', file)
  const rows = parseJsonl(text, file)
  return {
    seqs: encodeRows(await tokenizer(modelDir, 'data'), rows),
    data: { kind: 'jsonl', sha256: sha256Hex(text) },
    datanets: []
  }
}

/**
 * `ID` (latest published version) or `ID@VERSION`, fetched from peers when the data dir lacks it
 * (train-fetch.ts: through the running node, else with a short-lived host).
 */
export async function readDatanet(
  config: NodeConfig,
  modelDir: string,
  spec: string,
  fetch: DatanetFetchFlags
): Promise<TrainData> {
  const m = /^(0x[0-9a-fA-F]{64})(?:@(\d+))?$/.exec(spec)
  if (!m) throw new UsageError(`--datanet "${spec}": expected ID or ID@VERSION (ID is 0x + 64 hex digits)`)
  if (m[2] !== undefined && Number(m[2]) < 1)
    throw new UsageError(`--datanet ${m[1]}@${m[2]}: versions start at 1`)
  const tok = await tokenizer(modelDir, 'datanet')
  const id = m[1]!.toLowerCase() as Hex
  const { rows, source, ensured } = await datanetForTraining(
    config,
    id,
    m[2] === undefined ? undefined : Number(m[2]),
    fetch
  )
  if (rows.length === 0) throw new UsageError(`--datanet ${id}@${source.version}: no text to train on`)
  return {
    seqs: encodeRows(tok, rows),
    data: { kind: 'datanet', sha256: sha256Hex(rows.map((r) => JSON.stringify(r)).join('\n')) },
    datanets: [source],
    ensured
  }
}
