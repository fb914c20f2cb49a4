// `openlora train`: LoRA fine-tuning of a local checkpoint on ONNX Runtime (docs/TRAINING.md).
// Parses and checks the options, runs src/runtime/training/run.ts, shows progress (a bar with
// loss and tokens/s on a terminal, a line per tenth of the steps otherwise: ../progress.ts), or
// JSON events on stdout with --json.
import { existsSync, mkdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createLogger } from '../../../common/log.ts'
import { sha256Hex } from '../../../crypto/hash.ts'
import { PROJECTIONS, type Projection } from '../../../runtime/model/families/types.ts'
import { Tokenizer } from '../../../runtime/tokenizer.ts'
import { type Example, encodeRows, parseJsonl } from '../../../runtime/training/data.ts'
import { runTraining } from '../../../runtime/training/run.ts'
import { loadIdentity } from '../../identity.ts'
import { type Command, requireString, UsageError } from '../command.ts'
import { startProgress } from '../progress.ts'
import { configFromFlags, configOptions } from './shared.ts'

const MAX_TOKENS_FILE = 64 * 1024 * 1024

function int(values: Record<string, unknown>, name: string, min: number, fallback?: number): number {
  const v = values[name]
  if (v === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`)
    return fallback
  }
  const n = Number(v)
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${v}"`)
  return n
}

function num(values: Record<string, unknown>, name: string, fallback?: number): number | undefined {
  const v = values[name]
  if (v === undefined) return fallback
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a number ≥ 0, got "${v}"`)
  return n
}

function targetsOf(v: unknown): Projection[] | 'all-linear' {
  if (v === undefined) return ['q_proj', 'v_proj']
  if (v === 'all-linear') return 'all-linear'
  const list = String(v)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const t of list)
    if (!(PROJECTIONS as readonly string[]).includes(t))
      throw new UsageError(
        `--targets: "${t}" is not a projection; allowed: ${PROJECTIONS.join(', ')} or all-linear`
      )
  if (list.length === 0) throw new UsageError('--targets is empty')
  return [...new Set(list)] as Projection[]
}

async function readTokens(file: string): Promise<number[][]> {
  const text = await readFile(file, 'utf8').catch((err: Error) => {
    throw new UsageError(`--tokens ${file}: cannot read (${err.message})`)
  })
  if (text.length > MAX_TOKENS_FILE)
    throw new UsageError(`--tokens ${file}: larger than ${MAX_TOKENS_FILE} bytes`)
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch (err) {
    throw new UsageError(`--tokens ${file}: not JSON (${(err as Error).message})`)
  }
  if (!Array.isArray(v) || !v.every((s) => Array.isArray(s)))
    throw new UsageError(`--tokens ${file}: expected a JSON array of token-id arrays, e.g. [[1,5,9],[1,7]]`)
  return v as number[][]
}

async function readData(modelDir: string, file: string): Promise<Example[]> {
  const text = await readFile(file, 'utf8').catch((err: Error) => {
    throw new UsageError(`--data ${file}: cannot read (${err.message})`)
  })
  if (text.length > MAX_TOKENS_FILE)
    throw new UsageError(`--data ${file}: larger than ${MAX_TOKENS_FILE} bytes`)
  const rows = parseJsonl(text, file)
  if (!existsSync(join(modelDir, 'tokenizer.json')))
    throw new UsageError(
      `--data needs ${modelDir}/tokenizer.json to tokenize rows; use --tokens with token ids`
    )
  return encodeRows(await Tokenizer.fromDir(modelDir), rows)
}

export const trainCommand: Command = {
  name: 'train',
  summary:
    'fine-tune a LoRA adapter on a local checkpoint (fp32, Llama shape) and save it as a PEFT directory',
  options: {
    model: { type: 'string', description: 'Hugging Face checkpoint directory', valueName: 'DIR' },
    out: { type: 'string', description: 'where to write the PEFT adapter', valueName: 'DIR' },
    tokens: {
      type: 'string',
      description: 'JSON array of token-id sequences (one batch per step)',
      valueName: 'FILE'
    },
    data: {
      type: 'string',
      description: 'JSONL rows {"text"} or {"messages"} (chat: loss on assistant tokens only)',
      valueName: 'FILE'
    },
    'init-adapter': {
      type: 'string',
      description: 'start from this PEFT adapter (its config wins)',
      valueName: 'DIR'
    },
    rank: { type: 'string', description: 'LoRA rank (default 8)', valueName: 'R' },
    alpha: { type: 'string', description: 'LoRA alpha (default 2·rank)', valueName: 'A' },
    targets: { type: 'string', description: 'q_proj,v_proj (default) or all-linear', valueName: 'LIST' },
    rslora: { type: 'boolean', description: 'scale alpha/√r instead of alpha/r' },
    steps: { type: 'string', description: 'optimizer steps', valueName: 'N' },
    lr: { type: 'string', description: 'learning rate', valueName: 'X' },
    optimizer: {
      type: 'string',
      description: 'sgd (no momentum) or adamw (PyTorch defaults)',
      valueName: 'NAME'
    },
    'weight-decay': { type: 'string', description: 'AdamW weight decay (default 0.01)', valueName: 'W' },
    seed: { type: 'string', description: 'seed of the fresh adapter init', valueName: 'S' },
    'dump-grads': {
      type: 'string',
      description: 'write the step-0 LoRA gradients (PEFT names)',
      valueName: 'FILE'
    },
    threads: { type: 'string', description: 'ONNX Runtime intra-op threads', valueName: 'N' },
    ...configOptions,
    json: { type: 'boolean', description: 'print JSON events; the last line is {"event":"done",…}' }
  },
  async run({ values }) {
    const modelDir = requireString(values, 'model')
    const outDir = requireString(values, 'out')
    const hasTokens = typeof values.tokens === 'string'
    if (hasTokens === (typeof values.data === 'string'))
      throw new UsageError('give exactly one of --tokens FILE.json and --data FILE.jsonl')
    const optimizer = values.optimizer
    if (optimizer !== 'sgd' && optimizer !== 'adamw')
      throw new UsageError(`--optimizer must be sgd or adamw, got "${optimizer ?? ''}"`)
    if (optimizer === 'sgd' && values['weight-decay'] !== undefined)
      throw new UsageError('--weight-decay applies to adamw only (sgd here is plain SGD)')
    const initAdapter = values['init-adapter'] as string | undefined
    if (initAdapter && (values.rank ?? values.alpha ?? values.targets ?? values.rslora) !== undefined)
      throw new UsageError(
        '--init-adapter sets rank, alpha, targets and rsLoRA from its config; drop those options'
      )
    const rank = int(values, 'rank', 1, 8)
    const json = values.json === true
    const steps = int(values, 'steps', 1)
    const lr = num(values, 'lr')
    if (lr === undefined) throw new UsageError('--lr is required')
    const dataFile = hasTokens ? String(values.tokens) : String(values.data)
    // the record is signed with this node's libp2p key (created on first use, as `openlora id` does)
    const config = configFromFlags(values)
    const keysDir = join(config.dataDir, 'keys')
    mkdirSync(keysDir, { recursive: true, mode: 0o700 })
    const id = await loadIdentity(keysDir, createLogger('train', { level: config.log.level }))
    const record = {
      signer: { peerId: id.peerId.toString(), sign: (d: Uint8Array) => id.privateKey.sign(d) },
      data: {
        kind: hasTokens ? ('tokens' as const) : ('jsonl' as const),
        sha256: sha256Hex(await readFile(dataFile))
      }
    }
    const progress = startProgress('training', steps, 'steps', { json })
    const result = await runTraining({
      modelDir,
      outDir,
      tokens: hasTokens
        ? await readTokens(String(values.tokens))
        : await readData(modelDir, String(values.data)),
      initAdapter,
      lora: {
        rank,
        alpha: num(values, 'alpha', 2 * rank)!,
        targets: targetsOf(values.targets),
        rslora: values.rslora === true
      },
      steps,
      lr,
      optimizer,
      weightDecay: num(values, 'weight-decay'),
      seed: int(values, 'seed', 0),
      record,
      dumpGrads: values['dump-grads'] as string | undefined,
      threads: values.threads === undefined ? undefined : int(values, 'threads', 1),
      onStep: ({ step, loss, tokens, ms }) => {
        if (json) {
          console.log(JSON.stringify({ event: 'step', step, loss, tokensPerSecond: (tokens * 1000) / ms }))
          return
        }
        progress.update(step + 1, { loss, tokensPerSecond: (tokens * 1000) / ms })
      }
    })
    progress.done()
    if (json) {
      console.log(
        JSON.stringify({
          event: 'done',
          steps: result.steps,
          losses: result.losses,
          adapter: result.adapter,
          cid: result.cid
        })
      )
    } else {
      console.log(`adapter ${result.adapter} (${result.cid}); final loss ${result.losses.at(-1)!.toFixed(4)}`)
    }
    return 0
  }
}
