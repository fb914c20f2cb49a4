// Writes a Hugging Face checkpoint of any family llama.cpp has an architecture for (llama/mistral/
// deepseek, qwen2, qwen3, gemma, gemma2, gemma3, phi3, falcon, bloom, glm → chatglm, glm4), and
// optionally PEFT adapters, as GGUF files that llama.cpp loads, so both engines can run the very
// same weights. A checkpoint llama.cpp would compute differently is refused with the reason.
//
//   node scripts/export-gguf.ts MODEL_DIR --out model.gguf [--dtype f32|f16] [--pre NAME]
//        [--adapter ADAPTER_DIR --adapter-out adapter.gguf]...
import { parseArgs } from 'node:util'
import { OpenLoraError } from '../src/common/errors.ts'
import { loadPeftAdapter } from '../src/runtime/adapters/peft.ts'
import { exportModelToGguf } from '../src/runtime/export/gguf-families.ts'
import { loadModelConfigFromDir } from '../src/runtime/export/gguf-llama.ts'
import { exportLoraToGguf } from '../src/runtime/export/gguf-lora.ts'

const USAGE =
  'usage: node scripts/export-gguf.ts MODEL_DIR --out FILE.gguf [--dtype f32|f16] [--pre NAME]\n' +
  '         [--adapter ADAPTER_DIR --adapter-out FILE.gguf]... [--adapter-dtype f32|f16]'

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse()
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  const dtype = (values.dtype ?? 'f32').toUpperCase()
  const adapterDtype = (values['adapter-dtype'] ?? 'f32').toUpperCase()
  const adapters = values.adapter ?? []
  const adapterOuts = values['adapter-out'] ?? []
  const problem =
    positionals.length !== 1
      ? 'exactly one MODEL_DIR is required'
      : values.out === undefined && adapters.length === 0
        ? '--out (or at least one --adapter) is required'
        : dtype !== 'F32' && dtype !== 'F16'
          ? `--dtype ${values.dtype} is not allowed; allowed: f32, f16`
          : adapterDtype !== 'F32' && adapterDtype !== 'F16'
            ? `--adapter-dtype ${values['adapter-dtype']} is not allowed; allowed: f32, f16`
            : adapters.length !== adapterOuts.length
              ? 'each --adapter needs its own --adapter-out'
              : null
  if (problem !== null) {
    process.stderr.write(`${problem}\n${USAGE}\n`)
    return 2
  }
  const dir = positionals[0]
  if (values.out !== undefined) {
    const r = await exportModelToGguf(dir, values.out, {
      dtype: dtype as 'F32' | 'F16',
      pre: values.pre
    })
    for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`)
    process.stdout.write(
      `${values.out}: llama.cpp ${r.arch}, ${r.tensors} tensors, ${r.bytes} bytes (${dtype})\n`
    )
  }
  const cfg = await loadModelConfigFromDir(dir)
  for (let i = 0; i < adapters.length; i++) {
    // shapes are checked against the model; the recorded base model name may differ from a copy's
    const lora = await loadPeftAdapter(adapters[i], cfg, { checkBaseModel: false })
    const r = await exportLoraToGguf(lora, cfg, adapterOuts[i], { dtype: adapterDtype as 'F32' | 'F16' })
    process.stdout.write(`${adapterOuts[i]}: ${r.tensors} tensors, ${r.bytes} bytes, alpha ${r.alpha}\n`)
  }
  return 0
}

function parse() {
  return parseArgs({
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      dtype: { type: 'string' },
      pre: { type: 'string' },
      adapter: { type: 'string', multiple: true },
      'adapter-out': { type: 'string', multiple: true },
      'adapter-dtype': { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
}

process.exitCode = await main().catch((err: unknown) => {
  // a refusal (NotSupportedError: what llama.cpp cannot compute, and which key says so) or a bad
  // checkpoint is the user's answer, not a crash: print it without a stack
  if (!(err instanceof OpenLoraError)) throw err
  process.stderr.write(`export-gguf: ${err.message}\n`)
  return 1
})
