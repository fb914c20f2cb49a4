// The family registry: config.json's `architectures[0]` (and `model_type`) pick the family file
// that parses the config and names the weights, as vLLM's model registry does. Adding a family
// is one file in this directory plus a line here (docs/RUNTIME-MODEL.md, "Adding a family").

import { bloom } from './bloom.ts'
import { falcon } from './falcon.ts'
import { isObject } from './fields.ts'
import { gemma } from './gemma.ts'
import { gemma2 } from './gemma2.ts'
import { gemma3 } from './gemma3.ts'
import { glm, glm4 } from './glm.ts'
import { llama } from './llama.ts'
import { phi3 } from './phi3.ts'
import { qwen2 } from './qwen2.ts'
import { qwen3 } from './qwen3.ts'
import { type Family, type ModelConfig, ModelConfigError } from './types.ts'

export const FAMILIES: readonly Family[] = [
  llama,
  qwen2,
  qwen3,
  gemma,
  gemma2,
  gemma3,
  phi3,
  falcon,
  bloom,
  glm,
  glm4
]

/** Families the network names that the runtime refuses (so the error can say so). */
const REFUSED: Record<string, string> = {
  chatglm: 'ChatGLM (remote-code ChatGLMModel)'
}

const byArchitecture = new Map<string, Family>()
const byName = new Map<string, Family>()
for (const f of FAMILIES) {
  byName.set(f.name, f)
  for (const a of f.architectures) byArchitecture.set(a, f)
}

export const SUPPORTED_ARCHITECTURES: readonly string[] = [...byArchitecture.keys()]

/** The family file of a parsed config. */
export function familyOf(cfg: Pick<ModelConfig, 'family'>): Family {
  const f = byName.get(cfg.family)
  if (!f)
    throw new ModelConfigError(`unknown model family "${cfg.family}"`, { field: 'family', value: cfg.family })
  return f
}

/**
 * Parses config.json (and, when given, generation_config.json, whose eos/bos ids win because
 * chat models often list several eos ids only there) with the family its architecture names.
 */
export function parseModelConfig(json: unknown, generationConfig?: unknown): ModelConfig {
  if (!isObject(json)) throw new ModelConfigError('config.json must be a JSON object')
  const archs = json.architectures
  if (!Array.isArray(archs) || archs.length !== 1 || typeof archs[0] !== 'string') {
    throw new ModelConfigError(
      `config.json: "architectures" must list exactly one architecture; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`,
      { field: 'architectures', value: archs }
    )
  }
  const family = byArchitecture.get(archs[0])
  if (!family) {
    const refused = typeof json.model_type === 'string' ? REFUSED[json.model_type] : undefined
    throw new ModelConfigError(
      `config.json: architecture "${archs[0]}"${refused ? ` (${refused}) is not implemented yet` : ' is not supported'}; supported: ${SUPPORTED_ARCHITECTURES.join(', ')}`,
      { field: 'architectures', value: archs[0] }
    )
  }
  const mt = json.model_type
  if (mt !== undefined && mt !== null && !family.modelTypes.includes(mt as string)) {
    throw new ModelConfigError(
      `config.json: "model_type" ${JSON.stringify(mt)} does not belong to architecture ${archs[0]}; allowed: ${family.modelTypes.join(', ')}`,
      { field: 'model_type', value: mt }
    )
  }
  return family.parse(json, generationConfig)
}
