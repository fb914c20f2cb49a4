// compileNative (runtime/native/compile.ts): a real g++ build of a small Node-API source into the
// cache, loaded and called; the cache hit; concurrent builds; and the typed errors for a broken
// source and a missing compiler.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { compileNative, NativeUnavailableError } from '../../src/runtime/native/compile.ts'

const root = mkdtempSync(join(tmpdir(), 'openlora-native-compile-'))
const cacheDir = join(root, 'cache')
const require = createRequire(import.meta.url)

// a function add(a, b) -> a + b, in plain Node-API C
const ADDON = `
#include <node_api.h>
static napi_value Add(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; double a, b; napi_value out;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_get_value_double(env, argv[0], &a);
  napi_get_value_double(env, argv[1], &b);
  napi_create_double(env, a + b + SHIFT, &out);
  return out;
}
NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "add", NAPI_AUTO_LENGTH, Add, nullptr, &fn);
  napi_set_named_property(env, exports, "add", fn);
  return exports;
}
`

function source(name: string, shift: number): string {
  const path = join(root, name)
  writeFileSync(path, `#define SHIFT ${shift}\n${ADDON}`)
  return path
}

test.after(() => rmSync(root, { recursive: true, force: true }))

test('compiles a Node-API source, loads it, and reuses the cached build', async () => {
  const src = source('add.cc', 0)
  const path = await compileNative({ source: src, cacheDir })
  const addon = require(path) as { add(a: number, b: number): number }
  assert.is(addon.add(2, 3.5), 5.5)
  assert.is(await compileNative({ source: src, cacheDir }), path, 'same source: the cached file')
  const other = await compileNative({ source: source('add2.cc', 10), cacheDir })
  assert.is.not(other, path, 'a changed source is a new build')
  assert.is((require(other) as { add(a: number, b: number): number }).add(2, 3), 15)
})

test('editing a header beside the source rebuilds', async () => {
  const dir = join(root, 'with-header')
  mkdirSync(dir)
  writeFileSync(join(dir, 'shift.h'), '#define SHIFT 100\n')
  const src = join(dir, 'add.cc')
  writeFileSync(src, `#include "shift.h"\n${ADDON}`)
  const first = await compileNative({ source: src, cacheDir })
  assert.is((require(first) as { add(a: number, b: number): number }).add(1, 2), 103)
  writeFileSync(join(dir, 'shift.h'), '#define SHIFT 200\n')
  const second = await compileNative({ source: src, cacheDir })
  assert.is.not(second, first)
  assert.is((require(second) as { add(a: number, b: number): number }).add(1, 2), 203)
})

test('concurrent builds of one source all return the one complete file, no temp left', async () => {
  const dir = join(root, 'concurrent')
  const src = source('add3.cc', 1)
  const paths = await Promise.all([1, 2, 3].map(() => compileNative({ source: src, cacheDir: dir })))
  assert.is(new Set(paths).size, 1)
  assert.equal(readdirSync(dir), [paths[0]!.slice(dir.length + 1)])
  assert.is((require(paths[0]!) as { add(a: number, b: number): number }).add(1, 1), 3)
})

test('a broken source: NativeUnavailableError with the compiler message', async () => {
  const src = join(root, 'broken.cc')
  writeFileSync(src, 'int main( { return undefined_symbol_xyz; }\n')
  try {
    await compileNative({ source: src, cacheDir })
    assert.unreachable('a broken source must not compile')
  } catch (err) {
    assert.instance(err, NativeUnavailableError)
    assert.is((err as NativeUnavailableError).code, 'NATIVE_UNAVAILABLE')
    assert.match((err as Error).message, /compiling the native decoder .*broken\.cc.* failed: .*error/s)
  }
  assert.ok(
    readdirSync(cacheDir).every((f) => !f.includes('.tmp-')),
    'no half-written file is left in the cache'
  )
})

test('no compiler / no source: NativeUnavailableError saying so', async () => {
  try {
    await compileNative({ source: source('add4.cc', 0), cacheDir, compiler: 'openlora-no-such-cxx' })
    assert.unreachable()
  } catch (err) {
    assert.instance(err, NativeUnavailableError)
    assert.match((err as Error).message, /openlora-no-such-cxx is not installed/)
  }
  try {
    await compileNative({ source: join(root, 'missing.cc'), cacheDir })
    assert.unreachable()
  } catch (err) {
    assert.instance(err, NativeUnavailableError)
    assert.match((err as Error).message, /cannot read the native decoder source .*missing\.cc/)
  }
})

test.run()
