// npm run make-adapter -- --model DIR --out DIR --rank 8 --targets q_proj,v_proj [--seed S]
//   [--alpha A] [--rslora] [--layers 0,1] [--rank-pattern JSON] [--alpha-pattern JSON] [--dtype F32|F16|BF16]
// Writes a PEFT LoRA adapter for the checkpoint in --model (see src/runtime/fixtures/make-adapter.ts).
import { parseArgs } from 'node:util'
import { makeAdapter } from '../src/runtime/fixtures/make-adapter.ts'
import type { FloatDtype } from '../src/runtime/formats/safetensors.ts'

const USAGE =
  'usage: npm run make-adapter -- --model DIR --out DIR --rank R --targets q_proj,v_proj [--seed S] [--alpha A] ' +
  "[--rslora] [--layers 0,1] [--rank-pattern '{\"q_proj\":4}'] [--alpha-pattern '{...}'] [--dtype F32|F16|BF16]"

function ints(s: string, what: string): number[] {
  const out = s.split(',').map((x) => Number(x.trim()))
  if (out.some((n) => !Number.isInteger(n)))
    throw new Error(`${what} must be comma-separated integers, got "${s}"`)
  return out
}

function pattern(s: string | undefined, what: string): Record<string, number> | undefined {
  if (s === undefined) return undefined
  const v = JSON.parse(s) as unknown
  if (typeof v !== 'object' || v === null || Object.values(v).some((x) => typeof x !== 'number')) {
    throw new Error(`${what} must be a JSON object of pattern → number`)
  }
  return v as Record<string, number>
}

async function run(): Promise<number> {
  let values: Record<string, string | boolean | undefined>
  try {
    ;({ values } = parseArgs({
      options: {
        model: { type: 'string' },
        out: { type: 'string' },
        rank: { type: 'string' },
        targets: { type: 'string' },
        seed: { type: 'string' },
        alpha: { type: 'string' },
        rslora: { type: 'boolean' },
        layers: { type: 'string' },
        'rank-pattern': { type: 'string' },
        'alpha-pattern': { type: 'string' },
        dtype: { type: 'string' },
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
  const { model, out, rank, targets } = values
  if (
    typeof model !== 'string' ||
    typeof out !== 'string' ||
    typeof rank !== 'string' ||
    typeof targets !== 'string'
  ) {
    console.error(`--model, --out, --rank and --targets are required\n${USAGE}`)
    return 2
  }
  try {
    const a = await makeAdapter({
      model,
      out,
      rank: Number(rank),
      targets: targets.split(',').map((t) => t.trim()),
      seed: values.seed === undefined ? 0 : Number(values.seed),
      alpha: values.alpha === undefined ? undefined : Number(values.alpha),
      rslora: values.rslora === true,
      layersToTransform: typeof values.layers === 'string' ? ints(values.layers, '--layers') : undefined,
      rankPattern: pattern(values['rank-pattern'] as string | undefined, '--rank-pattern'),
      alphaPattern: pattern(values['alpha-pattern'] as string | undefined, '--alpha-pattern'),
      dtype: values.dtype as FloatDtype | undefined
    })
    console.log(`wrote PEFT adapter (${a.tensors.length} tensors, r=${rank}, targets ${targets}) to ${a.dir}`)
    return 0
  } catch (err) {
    console.error(`make-adapter: ${(err as Error).message}`)
    return 1
  }
}

process.exitCode = await run()
