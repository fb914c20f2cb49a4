// LoRA training benchmark (issue 21): tokens/s and peak RSS of `openlora train`'s runtime
// (src/runtime/training/) on a random checkpoint of SmolLM2-135M's shape, rank 8 on q_proj,v_proj,
// fp32, AdamW, a batch of 4 × 128 tokens, 2 threads; with --python PY (a venv with torch,
// transformers and peft) the same run in PyTorch + PEFT beside it, in a child process so each
// side's peak RSS is its own. The first step (graph optimisation, allocator warm-up) is excluded.
// --base-format int8|int4 trains over a quantized frozen base (QLoRA-style, docs/TRAINING.md);
// PyTorch's side stays fp32 (it has no identical int4 format).
//
//   npm run bench:train -- [--json] [--steps N] [--python /path/to/venv/bin/python] [--preset P]
//     [--base-format fp32|int8|int4]
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeModel, type Preset } from '../../src/runtime/fixtures/make-model.ts'
import { readModelConfig } from '../../src/runtime/model/index.ts'
import { freshLora } from '../../src/runtime/training/lora.ts'
import { makeOptimizer, Trainer } from '../../src/runtime/training/trainer.ts'
import { parseWeightFormat } from '../../src/runtime/weight-format.ts'
import { benchArgs } from './args.ts'

const values = benchArgs(
  'npm run bench:train -- [--json] [--steps N] [--python PY] [--preset P] [--base-format fp32|int8|int4]',
  {
    json: { type: 'boolean' },
    steps: { type: 'string', default: '4' },
    python: { type: 'string' },
    preset: { type: 'string', default: 'smollm2-135m' },
    'base-format': { type: 'string', default: 'fp32' }
  }
)
const baseFormat = parseWeightFormat(values['base-format'])
const steps = Number(values.steps)
const [B, T, THREADS] = [4, 128, 2]
const dir = join(tmpdir(), `openlora-bench-train-${values.preset}`)
if (!existsSync(join(dir, 'config.json')))
  await makeModel({ out: dir, preset: values.preset as Preset, dtype: 'F32' })
const cfg = await readModelConfig(dir)
const seqs = Array.from({ length: B }, (_, b) =>
  Array.from({ length: T }, (_, i) => (i * 31 + b * 7) % cfg.vocabSize)
)
const say = (s: string) => {
  if (!values.json) console.log(s)
}

const state = freshLora(cfg, {
  rank: 8,
  alpha: 16,
  targets: ['q_proj', 'v_proj'],
  rslora: false,
  seed: 1,
  baseModel: 'bench'
})
const t0 = performance.now()
const tr = await Trainer.create(dir, cfg, state, seqs, { threads: THREADS, baseFormat })
const buildMs = performance.now() - t0
const opt = makeOptimizer('adamw', 1e-3)
const times: number[] = []
for (let s = 0; s <= steps; s++) {
  const t = performance.now()
  await tr.step(opt)
  if (s > 0) times.push(performance.now() - t)
}
const tokens = tr.tokensPerStep
await tr.close()
const ours = {
  tokensPerSecond: (tokens * 1000 * times.length) / times.reduce((a, b) => a + b, 0),
  peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  buildMs: Math.round(buildMs)
}
say(
  `onnxruntime (${baseFormat} base): ${ours.tokensPerSecond.toFixed(1)} tok/s, peak RSS ${ours.peakRssMB} MB, build ${ours.buildMs} ms`
)

let torch: { tokensPerSecond: number; peakRssMB: number } | null = null
if (values.python) {
  const py = `
import time, resource, torch, transformers as T
from peft import LoraConfig, get_peft_model
torch.set_num_threads(${THREADS})
m = T.AutoModelForCausalLM.from_pretrained(${JSON.stringify(dir)}, attn_implementation='eager', dtype=torch.float32)
pm = get_peft_model(m, LoraConfig(r=8, lora_alpha=16, target_modules=['q_proj', 'v_proj'], lora_dropout=0.0))
ids = torch.tensor(${JSON.stringify(seqs)})
opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-3)
ts = []
for s in range(${steps + 1}):
    t = time.time(); opt.zero_grad(); pm(input_ids=ids, labels=ids).loss.backward(); opt.step()
    if s > 0: ts.append(time.time() - t)
print(${tokens} * len(ts) / sum(ts), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
`
  const r = spawnSync(values.python, ['-c', py], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr.slice(-2000)}`)
  const [tps, rss] = r.stdout.trim().split('\n').at(-1)!.split(' ').map(Number)
  torch = { tokensPerSecond: tps!, peakRssMB: rss! }
  say(
    `torch + peft: ${tps!.toFixed(1)} tok/s, peak RSS ${rss} MB → ratio ${(ours.tokensPerSecond / tps!).toFixed(2)}×`
  )
} else say('PyTorch not run (give --python PY with torch, transformers, peft installed)')

if (values.json)
  console.log(
    JSON.stringify({
      preset: values.preset,
      baseFormat,
      batch: B,
      seqLen: T,
      threads: THREADS,
      steps,
      ours,
      torch,
      ratio: torch ? ours.tokensPerSecond / torch.tokensPerSecond : null,
      // issue 21's goals, from this run (null without --python: nothing to compare against)
      goals: torch
        ? [
            {
              name: 'tokens_per_s_vs_torch',
              value: ours.tokensPerSecond / torch.tokensPerSecond,
              target: '>= 1.0',
              met: ours.tokensPerSecond >= torch.tokensPerSecond
            },
            {
              name: 'peak_rss_vs_torch',
              value: ours.peakRssMB / torch.peakRssMB,
              target: '<= 1.0',
              met: ours.peakRssMB <= torch.peakRssMB
            }
          ]
        : null
    })
  )
