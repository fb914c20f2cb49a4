// npm run make-model -- --out DIR --preset tiny|llama3-tiny|qwen2-tiny|smollm2-135m [--seed S]
//   [--dtype F32|F16|BF16] [--shards N]
// Writes a random checkpoint in the Hugging Face layout (see src/runtime/fixtures/make-model.ts).
import { parseArgs } from 'node:util'
import { makeModel, PRESETS, type Preset } from '../src/runtime/fixtures/make-model.ts'
import type { FloatDtype } from '../src/runtime/formats/safetensors.ts'

const USAGE = `usage: npm run make-model -- --out DIR --preset ${PRESETS.join('|')} [--seed S] [--dtype F32|F16|BF16] [--shards N]`

async function run(): Promise<number> {
  let values: Record<string, string | boolean | undefined>
  try {
    ;({ values } = parseArgs({
      options: {
        out: { type: 'string' },
        preset: { type: 'string' },
        seed: { type: 'string' },
        dtype: { type: 'string' },
        shards: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    }))
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`)
    return 2
  }
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  if (typeof values.out !== 'string' || typeof values.preset !== 'string') {
    console.error(`--out and --preset are required\n${USAGE}`)
    return 2
  }
  if (values.dtype !== undefined && !['F32', 'F16', 'BF16'].includes(values.dtype as string)) {
    console.error(`--dtype must be F32, F16 or BF16, got ${values.dtype}\n${USAGE}`)
    return 2
  }
  try {
    const m = await makeModel({
      out: values.out,
      preset: values.preset as Preset,
      seed: values.seed === undefined ? 0 : Number(values.seed),
      dtype: values.dtype as FloatDtype | undefined,
      shards: values.shards === undefined ? undefined : Number(values.shards)
    })
    console.log(
      `wrote ${m.config.architecture} (${values.preset}: ${m.config.numLayers} layers, hidden ${m.config.hiddenSize}, vocab ${m.config.vocabSize}) to ${m.dir}: ${m.files.join(', ')}`
    )
    return 0
  } catch (err) {
    console.error(`make-model: ${(err as Error).message}`)
    return 1
  }
}

process.exitCode = await run()
