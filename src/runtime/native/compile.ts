// Builds the native decode kernels (decoder.cc, a Node-API addon) on the machine that runs them.
// Compiled here rather than shipped prebuilt: -march=native picks the host's SIMD (AVX-512 VNNI,
// AVX2, NEON), which is most of their speed, and a node already needs a C++ toolchain for nothing
// else, so a missing g++ only turns the native path off (NativeUnavailableError; the loader falls
// back to ONNX Runtime). The result is cached by what decides the binary (source, flags, compiler,
// CPU, Node-API headers), so only a node's first start on a machine pays the ~10-30 s build.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { OpenLoraError } from '../../common/errors.ts'
import { sha256Hex } from '../../crypto/hash.ts'

export class NativeUnavailableError extends OpenLoraError<'NATIVE_UNAVAILABLE'> {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('NATIVE_UNAVAILABLE', message, details)
  }
}

/** The decode engine's source (written beside this file). */
export const DECODER_SOURCE = fileURLToPath(new URL('./decoder.cc', import.meta.url))

export const NATIVE_FLAGS = ['-O3', '-march=native', '-std=c++20', '-shared', '-fPIC', '-pthread'] as const

/** Where compiled addons are kept: OPENLORA_NATIVE_CACHE, else <tmpdir>/openlora-native. */
export function nativeCacheDir(): string {
  return process.env.OPENLORA_NATIVE_CACHE || join(tmpdir(), 'openlora-native')
}

export interface CompileOptions {
  /** the C++ source; default DECODER_SOURCE */
  source?: string
  /** default nativeCacheDir() */
  cacheDir?: string
  /** the compiler; default $CXX, else g++ */
  compiler?: string
}

/** stderr lines kept in an error message: the first error and its context, not a page of notes */
const STDERR_TAIL = 2000

function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr: String(stderr) }))
      else resolve({ stdout: String(stdout), stderr: String(stderr) })
    })
  })
}

/**
 * The headers beside the source (what its `#include "…"` lines can reach): part of the cache key,
 * so editing a header rebuilds the addon as editing the source does.
 */
async function headerHashes(source: string): Promise<Record<string, string>> {
  const dir = dirname(source)
  const out: Record<string, string> = {}
  for (const name of (await readdir(dir)).sort())
    if (/\.(h|hh|hpp|inc)$/.test(name)) out[name] = sha256Hex(await readFile(join(dir, name)))
  return out
}

const tail = (s: string) => (s.length > STDERR_TAIL ? `…${s.slice(-STDERR_TAIL)}` : s).trim()

function napiHeaders(): { include: string; version: string } {
  const require = createRequire(import.meta.url)
  const { include_dir } = require('node-api-headers') as { include_dir: string }
  const { version } = require('node-api-headers/package.json') as { version: string }
  return { include: include_dir, version }
}

/**
 * Compiles `source` into a loadable `.node` file (cached by its text and its directory's headers)
 * and returns its path. Concurrent callers
 * (several processes starting at once) each compile into a private file and rename it into place,
 * so a reader never sees a half-written addon.
 */
export async function compileNative(opts: CompileOptions = {}): Promise<string> {
  const source = opts.source ?? DECODER_SOURCE
  const compiler = opts.compiler ?? (process.env.CXX || 'g++')
  let code: Buffer
  try {
    code = await readFile(source)
  } catch (err) {
    throw new NativeUnavailableError(
      `cannot read the native decoder source ${source}: ${(err as Error).message}`,
      {
        source
      }
    )
  }
  let version: string
  try {
    version = (await run(compiler, ['--version'])).stdout.split('\n')[0] ?? ''
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string }
    const why =
      e.code === 'ENOENT' ? `${compiler} is not installed (or not on PATH)` : tail(e.stderr || e.message)
    throw new NativeUnavailableError(`no C++ compiler for the native decoder: ${why}`, { compiler })
  }
  const headers = napiHeaders()
  const key = sha256Hex(
    JSON.stringify({
      source: sha256Hex(code),
      headers: await headerHashes(source),
      flags: NATIVE_FLAGS,
      compiler: version,
      // -march=native makes the binary this CPU's: a cache dir shared between machines must not mix them
      cpu: cpus()[0]?.model ?? '',
      arch: process.arch,
      napi: headers.version
    })
  ).slice(2, 34)
  const dir = opts.cacheDir ?? nativeCacheDir()
  const out = join(dir, `decoder-${key}.node`)
  try {
    await stat(out)
    return out
  } catch {}
  await mkdir(dir, { recursive: true })
  const tmp = join(dir, `decoder-${key}.tmp-${process.pid}-${randomBytes(6).toString('hex')}.node`)
  try {
    await run(compiler, [...NATIVE_FLAGS, '-I', headers.include, '-o', tmp, source])
    await rename(tmp, out)
  } catch (err) {
    await rm(tmp, { force: true })
    const e = err as Error & { stderr?: string }
    throw new NativeUnavailableError(
      `compiling the native decoder (${source}) with ${compiler} failed: ${tail(e.stderr || e.message)}`,
      { source, compiler }
    )
  }
  return out
}
