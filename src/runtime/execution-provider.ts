// Picks the ONNX Runtime execution provider. CPU is always there (it ships inside the npm
// package). CUDA exists only where onnxruntime-node was installed with its CUDA files
// (`ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci` on a GPU host with internet); asking for it elsewhere
// falls back to CPU with a warning, and the node reports what really runs.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { InvalidParametersError } from '../common/errors.ts'
import { createLogger, type Logger } from '../common/log.ts'

export type ExecutionProviderName = 'cpu' | 'cuda'
export const EXECUTION_PROVIDERS: readonly ExecutionProviderName[] = ['cpu', 'cuda']

export function parseExecutionProvider(v: unknown): ExecutionProviderName {
  if (v === undefined || v === null) return 'cpu'
  if (typeof v === 'string' && (EXECUTION_PROVIDERS as readonly string[]).includes(v)) {
    return v as ExecutionProviderName
  }
  throw new InvalidParametersError(
    `execution provider ${JSON.stringify(v)} is not supported; allowed: ${EXECUTION_PROVIDERS.join(', ')}`,
    { field: 'executionProvider', value: v }
  )
}

/** Where the CUDA provider library lands when onnxruntime-node's installer fetched it. */
function cudaLibraryPresent(): boolean {
  try {
    const pkg = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'))
    const dir = join(pkg, 'bin', 'napi-v6', process.platform, process.arch)
    const lib =
      process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so'
    return existsSync(join(dir, lib))
  } catch {
    return false
  }
}

/**
 * Backends this onnxruntime-node install can run, e.g. ['cpu'] or ['cpu', 'cuda']. The binding
 * lists CUDA even when its files were never downloaded (bundled: false), so that case is checked
 * on disk.
 */
export function availableExecutionProviders(): string[] {
  const out = ['cpu']
  try {
    const cuda = ort.listSupportedBackends().find((b) => b.name === 'cuda')
    if (cuda && (cuda.bundled || cudaLibraryPresent())) out.push('cuda')
  } catch {
    // an old binding without listSupportedBackends: CPU only
  }
  return out
}

/**
 * Resolves a requested provider to one that is available here. CUDA without its files gives a
 * warning that says how to install them, then CPU.
 */
export function resolveExecutionProvider(
  requested: ExecutionProviderName,
  log: Logger = createLogger('runtime:ep'),
  available: string[] = availableExecutionProviders()
): ExecutionProviderName {
  if (requested === 'cpu') return 'cpu'
  if (available.includes(requested)) return requested
  log.warn(
    'CUDA execution provider is not available in this onnxruntime-node install; running on CPU. ' +
      'To use a GPU, reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci on a host with CUDA 12 and internet',
    { requested, available }
  )
  return 'cpu'
}

/** Session options for a provider: CUDA sessions keep CPU as the fallback for ops CUDA lacks. */
export function sessionProviders(ep: ExecutionProviderName): ort.InferenceSession.ExecutionProviderConfig[] {
  return ep === 'cuda' ? ['cuda', 'cpu'] : ['cpu']
}
