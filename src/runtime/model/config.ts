// The normalised model config every part of the runtime reads. Each family file under
// families/ maps its config.json onto it (families/index.ts picks the file by architecture);
// anything the runtime cannot compute faithfully is refused there, naming the field, so a user
// never gets silently wrong logits from an unsupported option.
import { basename, resolve } from 'node:path'
import { familyOf } from './families/index.ts'
import { type ModelConfig, ModelConfigError, PROJECTIONS, type Projection } from './families/types.ts'

export { familyOf, parseModelConfig, SUPPORTED_ARCHITECTURES } from './families/index.ts'
export {
  type Activation,
  type ModelConfig,
  ModelConfigError,
  type NormKind,
  PROJECTIONS,
  type Projection,
  type RopeScaling
} from './families/types.ts'

/** The projections this model has (no gate_proj in a plain MLP), in PROJECTIONS order. */
export function projectionsOf(cfg: ModelConfig): Projection[] {
  const have = new Set(
    familyOf(cfg)
      .layer(cfg, 0)
      .modules.flatMap((m) => m.parts.map((p) => p.proj))
  )
  return PROJECTIONS.filter((p) => have.has(p))
}

/** Input/output feature sizes of each LoRA-targetable projection, as [in, out]. */
export function projectionShape(cfg: ModelConfig, target: string): [number, number] {
  const q = cfg.numHeads * cfg.headDim
  const kv = cfg.numKvHeads * cfg.headDim
  switch (target) {
    case 'q_proj':
      return [cfg.hiddenSize, q]
    case 'k_proj':
    case 'v_proj':
      return [cfg.hiddenSize, kv]
    case 'o_proj':
      return [q, cfg.hiddenSize]
    case 'gate_proj':
    case 'up_proj':
      return [cfg.hiddenSize, cfg.intermediateSize]
    case 'down_proj':
      return [cfg.intermediateSize, cfg.hiddenSize]
    default:
      throw new ModelConfigError(
        `unknown projection "${target}"; allowed: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj`,
        { field: 'target', value: target }
      )
  }
}

/**
 * A served model's id (docs/INTERFACES.md modelId): the checkpoint's `_name_or_path`, else the
 * name of its directory. The one definition: adverts, jobs, adapter stores and attribution all
 * name a model by it.
 */
export function modelIdOf(config: Pick<ModelConfig, 'nameOrPath'>, dir: string): string {
  return config.nameOrPath ?? basename(resolve(dir))
}
