// `openlora generate`: run one base model (plus, optionally, one PEFT adapter) on a prompt,
// locally, without a network: streams the text, or prints ids and text as JSON, and can write the
// logits at the last prompt position so anyone can compare our numbers with another runtime.
import { writeFile } from 'node:fs/promises'
import { loadPeftAdapter } from '../../../runtime/adapters/peft.ts'
import {
  DECODE_KERNELS,
  PROMPT_KERNELS,
  parseDecodeKernels,
  parsePromptKernels
} from '../../../runtime/decode-kernels.ts'
import { parseExecutionProvider } from '../../../runtime/execution-provider.ts'
import { type GenerationParams, generate, type TokenEvent } from '../../../runtime/generate.ts'
import { loadModel, readModelConfig } from '../../../runtime/model/index.ts'
import { parseWeightFormat, WEIGHT_FORMATS } from '../../../runtime/weight-format.ts'
import { type Command, requireString, UsageError } from '../command.ts'
import { type ProgressTask, startProgress } from '../progress.ts'

function int(
  values: Record<string, unknown>,
  name: string,
  min: number,
  fallback?: number
): number | undefined {
  const v = values[name]
  if (v === undefined) return fallback
  const n = Number(v)
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer ≥ ${min}, got "${v}"`)
  return n
}

function num(values: Record<string, unknown>, name: string): number | undefined {
  const v = values[name]
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${v}"`)
  return n
}

export const generateCommand: Command = {
  name: 'generate',
  summary: 'generate text locally with a Hugging Face checkpoint and an optional PEFT adapter',
  options: {
    model: { type: 'string', description: 'Hugging Face checkpoint directory', valueName: 'DIR' },
    adapter: { type: 'string', description: 'PEFT adapter directory', valueName: 'DIR' },
    prompt: { type: 'string', description: 'prompt text', valueName: 'TEXT' },
    chat: { type: 'boolean', description: "wrap --prompt as a user message in the model's chat template" },
    'prompt-ids': { type: 'string', description: 'prompt as token ids, e.g. 1,2,3', valueName: 'IDS' },
    'max-tokens': { type: 'string', description: 'new tokens at most (default 64)', valueName: 'N' },
    temperature: { type: 'string', description: '0 = greedy (default)', valueName: 'T' },
    'top-k': { type: 'string', description: 'sample from the k most likely tokens', valueName: 'K' },
    'top-p': { type: 'string', description: 'nucleus sampling mass in (0, 1]', valueName: 'P' },
    seed: { type: 'string', description: 'sampling seed (same seed, same tokens)', valueName: 'S' },
    stop: { type: 'string', multiple: true, description: 'stop string', valueName: 'TEXT' },
    'stop-id': {
      type: 'string',
      multiple: true,
      description: 'stop token id (besides eos)',
      valueName: 'ID'
    },
    json: { type: 'boolean', description: 'print token ids, text and timings as one JSON object' },
    logits: {
      type: 'string',
      description: 'write the logits at the last prompt position (float32 little-endian)',
      valueName: 'FILE'
    },
    'execution-provider': { type: 'string', description: 'cpu (default) or cuda', valueName: 'EP' },
    threads: { type: 'string', description: 'ONNX Runtime intra-op threads', valueName: 'N' },
    weights: {
      type: 'string',
      description: `base weights in the graph: ${WEIGHT_FORMATS[0]} (default, exact) or ${WEIGHT_FORMATS.slice(1).join(' or ')} (block-quantized, faster)`,
      valueName: 'FORMAT'
    },
    'decode-kernels': {
      type: 'string',
      description: `what runs decode steps: ${DECODE_KERNELS.join(', ')} (default auto: the native engine where the model and machine allow)`,
      valueName: 'K'
    },
    'prompt-kernels': {
      type: 'string',
      description: `what runs the prompt when decode runs natively: ${PROMPT_KERNELS.join(', ')} (default auto: native for fp32 weights on the engine's AVX-512 kernels; native: int8/int4 on AMX where the CPU has it, from a second int8 copy)`,
      valueName: 'K'
    },
    'cache-dir': {
      type: 'string',
      description: 'where built graphs are kept (default ~/.cache/openlora/models)',
      valueName: 'DIR'
    }
  },
  async run({ values }) {
    const modelDir = requireString(values, 'model')
    const hasText = typeof values.prompt === 'string'
    const hasIds = typeof values['prompt-ids'] === 'string'
    if (hasText === hasIds) throw new UsageError('give exactly one of --prompt and --prompt-ids')
    if (values.chat === true && !hasText) throw new UsageError('--chat needs --prompt')
    let promptIds: number[] | undefined
    if (hasIds) {
      promptIds = String(values['prompt-ids'])
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')
        .map((s) => {
          const n = Number(s)
          if (!Number.isInteger(n) || n < 0) throw new UsageError(`--prompt-ids: "${s}" is not a token id`)
          return n
        })
      if (promptIds.length === 0) throw new UsageError('--prompt-ids is empty')
    }
    const maxNewTokens = int(values, 'max-tokens', 1, 64)!
    const params: GenerationParams = {
      maxNewTokens,
      temperature: num(values, 'temperature'),
      topK: int(values, 'top-k', 0),
      topP: num(values, 'top-p'),
      seed: int(values, 'seed', 0),
      stopStrings: values.stop as string[] | undefined,
      stopTokenIds: ((values['stop-id'] as string[] | undefined) ?? []).map((s) => {
        const n = Number(s)
        if (!Number.isInteger(n) || n < 0) throw new UsageError(`--stop-id: "${s}" is not a token id`)
        return n
      })
    }

    const config = await readModelConfig(modelDir)
    const adapter =
      typeof values.adapter === 'string' ? await loadPeftAdapter(values.adapter, config) : undefined
    // shown only when the graph is built (first use of a checkpoint), not when it is cached
    let progress: ProgressTask | undefined
    const weights = parseWeightFormat(values.weights)
    const model = await loadModel(modelDir, {
      onTensor: (done, total) => {
        progress ??= startProgress(
          weights === 'fp32' ? 'import' : `import + quantize ${weights}`,
          total,
          'tensors',
          {
            json: values.json === true
          }
        )
        progress.update(done, { total })
      },
      cacheDir: values['cache-dir'] as string | undefined,
      executionProvider: parseExecutionProvider(values['execution-provider']),
      intraOpThreads: int(values, 'threads', 1),
      weightFormat: weights,
      decodeKernels: parseDecodeKernels(values['decode-kernels']),
      promptKernels: parsePromptKernels(values['prompt-kernels']),
      maxBatch: 1,
      maxSeqLen: Math.min(config.maxPositionEmbeddings, 4096),
      // a graph with pools only for what this adapter targets (none without an adapter)
      pool: { slots: 2, maxRank: adapter?.maxRank ?? 1, targets: adapter?.config.targets ?? [] }
    })
    progress?.done()
    const abort = new AbortController()
    const onSigint = () => abort.abort()
    process.once('SIGINT', onSigint)
    try {
      const tok = model.tokenizer
      if (!promptIds) {
        if (!tok) throw new UsageError(`${modelDir} has no tokenizer.json; use --prompt-ids`)
        const text = String(values.prompt)
        promptIds =
          values.chat === true
            ? tok.encodeChat([{ role: 'user', content: text }], { addGenerationPrompt: true })
            : tok.encode(text)
      }
      if (promptIds.length + maxNewTokens > model.maxSeqLen) {
        throw new UsageError(
          `prompt (${promptIds.length} tokens) + --max-tokens ${maxNewTokens} exceeds the model's ${model.maxSeqLen} positions`
        )
      }
      if (adapter) model.pools.write(1, adapter)
      let promptLogits: Float32Array | undefined
      let done: Extract<TokenEvent, { type: 'done' }> | undefined
      for await (const ev of generate(model, {
        promptIds,
        params,
        slot: adapter ? 1 : 0,
        signal: abort.signal,
        decode: tok ? (ids) => tok.decode(ids, { skipSpecialTokens: true }) : undefined,
        onPromptLogits: (l) => {
          promptLogits = l.slice()
        }
      })) {
        if (ev.type === 'token' && values.json !== true) process.stdout.write(ev.text)
        if (ev.type === 'done') done = ev
      }
      if (typeof values.logits === 'string' && promptLogits) {
        // Float32Array is little-endian on every platform Node runs on
        await writeFile(
          values.logits,
          new Uint8Array(promptLogits.buffer, promptLogits.byteOffset, promptLogits.byteLength)
        )
      }
      if (values.json === true) {
        console.log(
          JSON.stringify({
            model: model.modelId,
            weightsHash: model.weightsHash,
            adapter: adapter?.cid ?? null,
            executionProvider: model.executionProvider,
            decodeKernels: model.decodeKernels,
            promptKernels: model.promptKernels,
            promptIds: done!.promptIds,
            outputIds: done!.outputIds,
            text: done!.text,
            finishReason: done!.finishReason,
            usage: done!.usage,
            timings: done!.timings
          })
        )
      } else process.stdout.write('\n')
      return done?.finishReason === 'abort' ? 130 : 0
    } finally {
      process.off('SIGINT', onSigint)
      await model.dispose()
    }
  }
}
