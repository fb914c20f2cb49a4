// The rule one config key obeys (checked by src/node/config/schema.ts). It lives here, at the
// bottom, because every layer that adds a config section states its rules with it.
export type Spec =
  | { type: 'string'; enum?: readonly string[]; pattern?: RegExp; hint?: string }
  | { type: 'int'; min?: number; max?: number }
  | { type: 'bool' }
  | { type: 'strings'; pattern?: RegExp; maxItems?: number; hint?: string }
  | { type: 'json'; check: (v: unknown) => string | null; hint: string }
  | { type: 'section'; fields: Record<string, Spec> }
