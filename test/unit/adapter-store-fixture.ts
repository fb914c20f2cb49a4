// Small real PEFT-layout adapters (adapter_config.json + adapter_model.safetensors) for the
// AdapterStore's unit tests, and a narrow loader that decodes them without a base model.
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadSafetensors, type WriteTensor, writeSafetensors } from '../../src/runtime/formats/safetensors.ts'

export interface TestAdapter {
  name: string
  layers: Map<number, Map<string, { A: Float32Array; B: Float32Array; r: number }>>
}

const HIDDEN = 16
const LAYERS = 2

export async function writeTestAdapter(
  root: string,
  name: string,
  opts: { rank?: number; targets?: string[] } = {}
): Promise<string> {
  const r = opts.rank ?? 8
  const targets = opts.targets ?? ['q_proj', 'v_proj']
  const dir = join(root, 'src', name)
  await mkdir(dir, { recursive: true })
  await writeFile(
    join(dir, 'adapter_config.json'),
    JSON.stringify({ peft_type: 'LORA', r, lora_alpha: 2 * r, target_modules: targets, name })
  )
  const tensors: Record<string, WriteTensor> = {}
  let seed = [...name].reduce((a, c) => a * 31 + c.charCodeAt(0), 7)
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 0.02 - 0.01
  for (let l = 0; l < LAYERS; l++) {
    for (const t of targets) {
      const p = `base_model.model.model.layers.${l}.self_attn.${t}`
      tensors[`${p}.lora_A.weight`] = {
        shape: [r, HIDDEN],
        data: Float32Array.from({ length: r * HIDDEN }, rand)
      }
      tensors[`${p}.lora_B.weight`] = {
        shape: [HIDDEN, r],
        data: Float32Array.from({ length: r * HIDDEN }, rand)
      }
    }
  }
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors)
  return dir
}

export function testAdapterLoader(): { load: (dir: string) => Promise<TestAdapter>; calls: number } {
  const state = {
    calls: 0,
    async load(dir: string): Promise<TestAdapter> {
      state.calls += 1
      const config = JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'))
      const tensors = await loadSafetensors(join(dir, 'adapter_model.safetensors'))
      const layers: TestAdapter['layers'] = new Map()
      for (const [key, t] of tensors) {
        const m = /layers\.(\d+)\.self_attn\.(\w+)\.lora_A\.weight$/.exec(key)
        if (m === null) continue
        const B = tensors.get(key.replace('lora_A', 'lora_B'))!
        const layer = layers.get(Number(m[1])) ?? new Map()
        layer.set(m[2]!, { A: t.data, B: B.data, r: t.shape[0]! })
        layers.set(Number(m[1]), layer)
      }
      return { name: config.name, layers }
    }
  }
  return state
}
