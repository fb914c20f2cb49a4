// `openlora train`: LoRA fine-tuning of a local checkpoint on ONNX Runtime (docs/TRAINING.md).
// Parses and checks the options, runs src/runtime/training/run.ts, shows progress (a bar with
// loss and tokens/s on a terminal, a line per tenth of the steps otherwise: ../progress.ts), or
// JSON events on stdout with --json.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { createLogger } from '../../../common/log.ts'
import type { Hex } from '../../../crypto/hash.ts'
import { LORA_TARGET_NAMES, type LoraTargetName } from '../../../runtime/model/families/types.ts'
import { runTraining } from '../../../runtime/training/run.ts'
import { SCHEDULES, type ScheduleName } from '../../../runtime/training/schedule.ts'
import { WEIGHT_FORMATS, type WeightFormat } from '../../../runtime/weight-format.ts'
import { loadIdentity } from '../../identity.ts'
import { type Command, requireString, UsageError } from '../command.ts'
import { startProgress } from '../progress.ts'
import { chainOptions } from './chain-options.ts'
import { configFromFlags, configOptions } from './shared.ts'
import { readData, readDatanet, readTokens } from './train-data.ts'
import { trainRemote } from './train-remote.ts'

/** --remote: the job's options are checked by the protocol's request schema (train-protocol.ts). */
function remote(values: Record<string, unknown>): Promise<number> {
  const spec = /^(0x[0-9a-f]{64})(?:@(\d+))?$/.exec(String(values.datanet ?? ''))
  if (!spec)
    throw new UsageError(
      '--remote/--bootstrap train on a datanet the peer holds: give --datanet ID[@VERSION]'
    )
  if (values.remote !== undefined && values.bootstrap !== undefined)
    throw new UsageError('give --remote PEER_ADDR or --bootstrap ADDR, not both')
  for (const local of [
    'tokens',
    'data',
    'init-adapter',
    'resume',
    'dump-grads',
    'checkpoint-every',
    'from',
    'root',
    'unverified'
  ])
    if (values[local] !== undefined)
      throw new UsageError(`--${local} is a local option; drop it with --remote`)
  const optimizer = values.optimizer
  if (optimizer !== 'sgd' && optimizer !== 'adamw')
    throw new UsageError(`--optimizer must be sgd or adamw, got "${optimizer ?? ''}"`)
  const targets = targetsOf(values.targets)
  const job = {
    model: requireString(values, 'model'),
    datanet: { id: spec[1]!, ...(spec[2] ? { version: Number(spec[2]) } : {}) },
    steps: int(values, 'steps', 1),
    lr: num(values, 'lr') ?? 0,
    optimizer: optimizer as 'sgd' | 'adamw',
    ...(values['weight-decay'] !== undefined ? { weightDecay: num(values, 'weight-decay') } : {}),
    ...(values.rank !== undefined ? { rank: int(values, 'rank', 1) } : {}),
    ...(values.alpha !== undefined ? { alpha: num(values, 'alpha') } : {}),
    // checked against LORA_TARGET_NAMES above; the trainer's family decides which it has
    ...(targets !== 'all-linear' && values.targets !== undefined
      ? { targets: targets as LoraTargetName[] }
      : {}),
    ...(values.batch !== undefined ? { batch: int(values, 'batch', 1) } : {}),
    ...(values['seq-len'] !== undefined ? { seqLen: int(values, 'seq-len', 2) } : {}),
    ...(values.warmup !== undefined ? { warmup: int(values, 'warmup', 0) } : {}),
    ...(values.schedule !== undefined ? { schedule: values.schedule as ScheduleName } : {}),
    ...(values['base-format'] !== undefined ? { baseFormat: baseFormatOf(values['base-format']) } : {}),
    seed: int(values, 'seed', 0, 0)
  }
  if (targets === 'all-linear') throw new UsageError('--remote takes a --targets list, not all-linear')
  return trainRemote(
    {
      ...(typeof values.remote === 'string' ? { remote: values.remote } : {}),
      ...(Array.isArray(values.bootstrap) ? { bootstrap: values.bootstrap as string[] } : {})
    },
    job,
    {
      out: values.out as string | undefined,
      json: values.json === true,
      ...(values['max-tokens'] !== undefined ? { maxTokens: int(values, 'max-tokens', 1) } : {}),
      pay: values.pay === true,
      values
    }
  )
}

function baseFormatOf(v: unknown): WeightFormat {
  if (v === undefined) return 'fp32'
  if (!(WEIGHT_FORMATS as readonly unknown[]).includes(v))
    throw new UsageError(`--base-format must be one of ${WEIGHT_FORMATS.join(', ')}, got "${v}"`)
  return v as WeightFormat
}

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

const optInt = (values: Record<string, unknown>, name: string, min: number): number | undefined =>
  values[name] === undefined ? undefined : int(values, name, min)

function num(values: Record<string, unknown>, name: string, fallback?: number): number | undefined {
  const v = values[name]
  if (v === undefined) return fallback
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a number ≥ 0, got "${v}"`)
  return n
}

// Projections and the families' own module names (Phi-3's qkv_proj, BLOOM's query_key_value, …),
// the same list locally and over /openlora/train; a name the model lacks is refused by the trainer
// naming the modules it has (a projection name selects the fused module holding it anyway).
function targetsOf(v: unknown): string[] | 'all-linear' {
  if (v === undefined) return ['q_proj', 'v_proj']
  if (v === 'all-linear') return 'all-linear'
  const allowed: readonly string[] = LORA_TARGET_NAMES
  const list = String(v)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const t of list)
    if (!allowed.includes(t))
      throw new UsageError(
        `--targets: "${t}" is not a projection or module name; allowed: ${allowed.join(', ')} or all-linear`
      )
  if (list.length === 0) throw new UsageError('--targets is empty')
  return [...new Set(list)]
}

const ROOT = /^(\d+)=(0x[0-9a-fA-F]{64})$/

/** --root VERSION=ROOT, repeated: the trusted roots of a datanet copy. */
function rootsOf(v: unknown): Record<number, Hex> {
  const roots: Record<number, Hex> = {}
  for (const r of (v as string[] | undefined) ?? []) {
    const m = ROOT.exec(r)
    if (!m) throw new UsageError(`--root takes VERSION=ROOT (ROOT: 0x + 64 hex), got "${r}"`)
    roots[Number(m[1])] = m[2]!.toLowerCase() as Hex
  }
  return roots
}

const s = (description: string, valueName: string) => ({ type: 'string' as const, description, valueName })

export const trainCommand: Command = {
  name: 'train',
  summary:
    'fine-tune a LoRA adapter on a local checkpoint (fp32, or an int8/int4 base; any served family) and save it as a PEFT directory',
  options: {
    model: s('Hugging Face checkpoint directory', 'DIR'),
    out: s('where to write the PEFT adapter', 'DIR'),
    tokens: s('JSON array of token-id sequences', 'FILE'),
    data: s('JSONL rows {"text"} or {"messages"} (chat: loss on assistant tokens only)', 'FILE'),
    datanet: s(
      "a datanet's published version (default the latest held), fetched from peers if missing",
      'ID[@V]'
    ),
    from: {
      type: 'string',
      multiple: true,
      description:
        '--datanet missing here: peers to copy it from (multiaddr with /p2p/ID); default network.bootstrap',
      valueName: 'ADDR'
    },
    root: {
      type: 'string',
      multiple: true,
      description:
        '--datanet copy: trusted root VERSION=ROOT, one per version 1..V (or --chain: the registry)',
      valueName: 'ROOT'
    },
    unverified: {
      type: 'boolean',
      description: '--datanet copy without trusted roots: the peer decides what the datanet contains'
    },
    'init-adapter': s('start from this PEFT adapter (its config wins)', 'DIR'),
    rank: s('LoRA rank (default 8)', 'R'),
    alpha: s('LoRA alpha (default 2·rank)', 'A'),
    targets: s(
      "q_proj,v_proj (default), other projections, a family's modules (qkv_proj, query_key_value, …), or all-linear",
      'LIST'
    ),
    rslora: { type: 'boolean', description: 'scale alpha/√r instead of alpha/r' },
    steps: s('optimizer steps', 'N'),
    lr: s('peak learning rate', 'X'),
    optimizer: s('sgd (no momentum) or adamw (PyTorch defaults)', 'NAME'),
    'weight-decay': s('AdamW weight decay (default 0.01)', 'W'),
    batch: s('sequences per step, reshuffled each epoch (default: all, in order)', 'B'),
    'seq-len': s('truncate sequences to L tokens (with --packing: pack into L-token rows)', 'L'),
    packing: {
      type: 'boolean',
      description: 'concatenate examples and cut into --seq-len rows (TRL packing)'
    },
    warmup: s('linear warmup steps (default 0)', 'N'),
    schedule: s(`lr schedule after warmup: ${SCHEDULES.join('|')} (default constant)`, 'NAME'),
    'eval-fraction': s('hold out this fraction of sequences and report their loss', 'F'),
    'checkpoint-every': s('write OUT/checkpoint-S every N steps', 'N'),
    resume: s('continue from a checkpoint directory (same options)', 'DIR'),
    remote: s('train on this node instead (with --model MODEL_ID --datanet ID[@V])', '/ip4/…/p2p/ID'),
    bootstrap: {
      type: 'string',
      multiple: true,
      description: 'instead of --remote: find a trainer in the adverts of these peers',
      valueName: 'ADDR'
    },
    'max-tokens': s('remote: the budget, the most trained tokens to pay for', 'N'),
    'max-price': s('remote: refuse trainers charging more wei per 1k trained tokens', 'WEI'),
    pay: { type: 'boolean', description: 'remote: pay with vouchers on your escrow (--chain, --key-file)' },
    chain: chainOptions.chain!,
    rpc: chainOptions.rpc!,
    settlement: chainOptions.settlement!,
    'key-file': chainOptions['key-file']!,
    seed: s('seed of the fresh adapter init, the eval split and the data order', 'S'),
    'dump-grads': s('write the step-0 LoRA gradients (PEFT names)', 'FILE'),
    threads: s('ONNX Runtime intra-op threads', 'N'),
    'base-format': s(
      `frozen base weights as a node with infer.weightFormat serves them: ${WEIGHT_FORMATS.join('|')} (default fp32; int8/int4 QLoRA-style, less memory)`,
      'FMT'
    ),
    ...configOptions,
    json: { type: 'boolean', description: 'print JSON events; the last line is {"event":"done",…}' }
  },
  async run({ values }) {
    if (typeof values.remote === 'string' || Array.isArray(values.bootstrap)) return remote(values)
    const modelDir = requireString(values, 'model')
    const outDir = requireString(values, 'out')
    const sources = (['tokens', 'data', 'datanet'] as const).filter((k) => typeof values[k] === 'string')
    if (sources.length !== 1)
      throw new UsageError(
        'give exactly one of --tokens FILE.json, --data FILE.jsonl and --datanet ID[@VERSION]'
      )
    const optimizer = values.optimizer
    if (optimizer !== 'sgd' && optimizer !== 'adamw')
      throw new UsageError(`--optimizer must be sgd or adamw, got "${optimizer ?? ''}"`)
    const baseFormat = baseFormatOf(values['base-format'])
    if (optimizer === 'sgd' && values['weight-decay'] !== undefined)
      throw new UsageError('--weight-decay applies to adamw only (sgd here is plain SGD)')
    const initAdapter = values['init-adapter'] as string | undefined
    if (initAdapter && (values.rank ?? values.alpha ?? values.targets ?? values.rslora) !== undefined)
      throw new UsageError(
        '--init-adapter sets rank, alpha, targets and rsLoRA from its config; drop those options'
      )
    const schedule = (values.schedule ?? 'constant') as ScheduleName
    if (!SCHEDULES.includes(schedule))
      throw new UsageError(`--schedule must be one of ${SCHEDULES.join(', ')}, got "${values.schedule}"`)
    const evalFraction = num(values, 'eval-fraction', 0)!
    if (evalFraction >= 1)
      throw new UsageError(`--eval-fraction must be in [0, 1), got "${values['eval-fraction']}"`)
    const seqLen = optInt(values, 'seq-len', 2)
    if (values.packing === true && seqLen === undefined) throw new UsageError('--packing needs --seq-len L')
    const rank = int(values, 'rank', 1, 8)
    const json = values.json === true
    const steps = int(values, 'steps', 1)
    const warmup = int(values, 'warmup', 0, 0)
    if (warmup > steps) throw new UsageError(`--warmup ${warmup} is more than --steps ${steps}`)
    const lr = num(values, 'lr')
    if (lr === undefined) throw new UsageError('--lr is required')
    const config = configFromFlags(values)
    const src =
      sources[0] === 'tokens'
        ? await readTokens(String(values.tokens))
        : sources[0] === 'data'
          ? await readData(modelDir, String(values.data))
          : await readDatanet(config, modelDir, String(values.datanet), {
              from: (values.from as string[] | undefined) ?? [],
              roots: rootsOf(values.root),
              unverified: values.unverified === true,
              values,
              json
            })
    if (src.ensured?.fetched) {
      const e = src.ensured
      const d = src.datanets[0]!
      if (json)
        console.log(
          JSON.stringify({ event: 'datanet', ...d, fetched: true, rootsFrom: e.rootsFrom, bytes: e.bytes })
        )
      else
        process.stderr.write(
          `fetched datanet ${d.id}@${d.version} (root ${d.root}, ${e.bytes} bytes copied, ${e.rootsFrom === 'none' ? 'UNVERIFIED' : `roots from ${e.rootsFrom === 'chain' ? 'the chain' : '--root'}`})\n`
        )
    }
    // the record is signed with this node's libp2p key (created on first use, as `openlora id` does)
    const keysDir = join(config.dataDir, 'keys')
    mkdirSync(keysDir, { recursive: true, mode: 0o700 })
    const id = await loadIdentity(keysDir, createLogger('train', { level: config.log.level }))
    const record = {
      signer: { peerId: id.peerId.toString(), sign: (d: Uint8Array) => id.privateKey.sign(d) },
      data: src.data,
      datanets: src.datanets
    }
    const progress = startProgress('training', steps, 'steps', { json })
    const result = await runTraining({
      modelDir,
      outDir,
      tokens: src.seqs,
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
      batch: optInt(values, 'batch', 1),
      seqLen,
      packing: values.packing === true,
      warmup,
      schedule,
      evalFraction,
      checkpointEvery: optInt(values, 'checkpoint-every', 1),
      resume: values.resume as string | undefined,
      record,
      dumpGrads: values['dump-grads'] as string | undefined,
      threads: optInt(values, 'threads', 1),
      baseFormat,
      onEval: ({ step, loss }) => {
        if (json) console.log(JSON.stringify({ event: 'eval', step, loss }))
        else process.stderr.write(`\neval loss after step ${step}: ${loss.toFixed(4)}\n`)
      },
      onStep: ({ step, loss, lr, tokens, ms }) => {
        if (json) {
          console.log(
            JSON.stringify({ event: 'step', step, loss, lr, tokensPerSecond: (tokens * 1000) / ms })
          )
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
          evalLoss: result.evalLoss,
          adapter: result.adapter,
          cid: result.cid
        })
      )
    } else {
      const ev = result.evalLoss === null ? '' : `; eval loss ${result.evalLoss.toFixed(4)}`
      console.log(
        `adapter ${result.adapter} (${result.cid}); final loss ${result.losses.at(-1)!.toFixed(4)}${ev}`
      )
    }
    return 0
  }
}
