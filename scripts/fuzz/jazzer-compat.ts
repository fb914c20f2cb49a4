// Makes Jazzer.js 4's prebuilt libFuzzer addon load on glibc 2.36 (Debian 12, this project's
// machines and CI).
//
// Why: @jazzer.js/fuzzer 4.0.0 ships only prebuilt addons (no sources; building 2.x from source
// downloads LLVM from GitHub, which CI cannot reach). The linux-x64 prebuild was linked on a
// newer system and asks the dynamic loader for versions Debian 12 lacks:
//   GLIBC_2.38:     __isoc23_strtol, __isoc23_strtoul  (C23 strtol: also parses "0b" numbers;
//                   libFuzzer calls it only to parse its own -flag=N options)
//   GLIBCXX_3.4.32: std::ios_base_library_init()       (GCC 13 <iostream> references it so the
//                   linker pulls in libstdc++'s stream set-up; Debian 12's libstdc++ is 3.4.30)
// The loader refuses the whole addon for one missing version. So:
//   1. mark those two version needs VER_FLG_WEAK in the addon's .gnu.version_r (a 2-byte flag
//      per entry, patched here in place; a weak need that is missing is not an error);
//   2. compile a 5-line shim with the machine's g++ that defines the three symbols (the C23
//      functions forward to the C ones, whose behaviour is the same for libFuzzer's decimal
//      flags), and load it with LD_PRELOAD into the fuzz process only (scripts/fuzz.ts).
// Idempotent: the patch checks the flags first, the shim is rebuilt only when its source changes,
// and nothing is done where the addon already loads (a newer glibc).
// Remove when: CI and the project's machines run Debian 13 (glibc 2.41), or a Jazzer.js release
// ships prebuilds linked against glibc <= 2.36; then drop this file and its call in scripts/fuzz.ts.
//
//   node scripts/fuzz/jazzer-compat.ts    prints what it did and checks that the addon loads
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const ROOT = join(import.meta.dirname, '..', '..')
const CACHE = join(ROOT, 'node_modules', '.cache', 'openlora-jazzer-compat')

/** The version needs the prebuild has and Debian 12 lacks; each is provided by SHIM below. */
export const MISSING_VERSIONS = ['GLIBC_2.38', 'GLIBCXX_3.4.32']

const SHIM = `// built by scripts/fuzz/jazzer-compat.ts; see there for why
#include <cstdlib>
#include <ios>
extern "C" long __isoc23_strtol(const char *s, char **e, int b) { return std::strtol(s, e, b); }
extern "C" unsigned long __isoc23_strtoul(const char *s, char **e, int b) { return std::strtoul(s, e, b); }
namespace std { void ios_base_library_init() { static ios_base::Init init; } }
`

export interface JazzerCompat {
  /** The path of the shim to LD_PRELOAD into the fuzz process; undefined where none is needed. */
  preload?: string
  /** What was done, for the log. */
  steps: string[]
}

export function addonPath(): string {
  const require = createRequire(import.meta.url)
  const pkg = dirname(require.resolve('@jazzer.js/fuzzer/package.json'))
  return join(pkg, 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`)
}

/**
 * Loads the addon in a child process (a failed dlopen cannot be undone in this one).
 * LD_BIND_NOW: node dlopens lazily, so a patched addon without the shim would load and then die
 * at its first strtol call; binding every symbol at load time makes that fail here instead.
 */
function tryLoad(addon: string, preload?: string): { ok: boolean; error: string } {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addon)})`], {
    encoding: 'utf8',
    env: { ...process.env, LD_BIND_NOW: '1', ...(preload ? { LD_PRELOAD: preload } : {}) }
  })
  return { ok: r.status === 0, error: (r.stderr ?? '').split('\n').find((l) => /Error/.test(l)) ?? r.stderr }
}

const VER_FLG_WEAK = 2

/** The version needs (ELF64 little-endian .gnu.version_r) of an ELF file: name, flags, where. */
export function versionNeeds(elf: Uint8Array): { name: string; flags: number; at: number }[] {
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength)
  if (dv.getUint32(0, false) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1)
    throw new Error('not a 64-bit little-endian ELF file')
  const shoff = Number(dv.getBigUint64(0x28, true))
  const shentsize = dv.getUint16(0x3a, true)
  const shnum = dv.getUint16(0x3c, true)
  const section = (i: number) => {
    const at = shoff + i * shentsize
    return {
      type: dv.getUint32(at + 4, true),
      offset: Number(dv.getBigUint64(at + 0x18, true)),
      link: dv.getUint32(at + 0x28, true)
    }
  }
  const cstr = (at: number) => new TextDecoder().decode(elf.subarray(at, elf.indexOf(0, at)))
  const SHT_GNU_VERNEED = 0x6ffffffe
  const out: { name: string; flags: number; at: number }[] = []
  for (let i = 0; i < shnum; i++) {
    const s = section(i)
    if (s.type !== SHT_GNU_VERNEED) continue
    const strtab = section(s.link).offset
    for (let vn = s.offset; ; ) {
      // Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32
      let aux = vn + dv.getUint32(vn + 8, true)
      for (let k = dv.getUint16(vn + 2, true); k > 0; k--) {
        // Elf64_Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32
        out.push({
          name: cstr(strtab + dv.getUint32(aux + 8, true)),
          flags: dv.getUint16(aux + 4, true),
          at: aux
        })
        aux += dv.getUint32(aux + 12, true)
      }
      const next = dv.getUint32(vn + 12, true)
      if (next === 0) break
      vn += next
    }
  }
  return out
}

/**
 * Sets VER_FLG_WEAK on the version needs whose name is in `names` (a weak need that the system
 * lacks is not a load error). Returns the names changed now; an entry already weak stays as it is.
 */
export function weakenVersionNeeds(elf: Uint8Array, names: string[]): string[] {
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength)
  const changed: string[] = []
  for (const n of versionNeeds(elf))
    if (names.includes(n.name) && (n.flags & VER_FLG_WEAK) === 0) {
      dv.setUint16(n.at + 4, n.flags | VER_FLG_WEAK, true)
      changed.push(n.name)
    }
  return changed
}

function buildShim(steps: string[]): string {
  const hash = createHash('sha256').update(SHIM).digest('hex').slice(0, 12)
  const so = join(CACHE, `libjazzer-compat-${hash}.so`)
  if (existsSync(so)) return so
  mkdirSync(CACHE, { recursive: true })
  const src = join(CACHE, `jazzer-compat-${hash}.cc`)
  writeFileSync(src, SHIM)
  const cxx = process.env.CXX ?? 'g++'
  // built under a temporary name and renamed: another fuzz run may be loading the shim right now
  const tmp = `${so}.${process.pid}.tmp`
  const r = spawnSync(cxx, ['-shared', '-fPIC', '-O2', '-o', tmp, src], { encoding: 'utf8' })
  if (r.error || r.status !== 0)
    throw new Error(
      `jazzer-compat: compiling the glibc 2.38 shim with ${cxx} failed (install g++: apt-get install g++): ${r.error?.message ?? r.stderr}`
    )
  renameSync(tmp, so)
  steps.push(`compiled ${so} with ${cxx}`)
  return so
}

/** Makes the addon loadable here; throws, saying why, when it cannot. */
export function ensureJazzerCompat(): JazzerCompat {
  const steps: string[] = []
  const addon = addonPath()
  if (!existsSync(addon))
    throw new Error(`jazzer-compat: Jazzer.js has no prebuilt addon for this platform (${addon})`)
  const plain = tryLoad(addon)
  // loads with every symbol bound: a newer glibc; nothing to do
  if (plain.ok) return { steps: ['the addon loads as it is'] }
  if (process.platform !== 'linux' || !/GLIBC|GLIBCXX|undefined symbol/.test(plain.error))
    throw new Error(
      `jazzer-compat: the Jazzer.js addon does not load, and not for the glibc reason: ${plain.error}`
    )
  const elf = new Uint8Array(readFileSync(addon))
  const changed = weakenVersionNeeds(elf, MISSING_VERSIONS)
  if (changed.length > 0) {
    // written beside and renamed over: a concurrent fuzz run never loads a half-written addon
    writeFileSync(`${addon}.${process.pid}.tmp`, elf)
    renameSync(`${addon}.${process.pid}.tmp`, addon)
    steps.push(`marked ${changed.join(', ')} weak in ${addon}`)
  }
  const preload = buildShim(steps)
  const shimmed = tryLoad(addon, preload)
  if (!shimmed.ok)
    throw new Error(`jazzer-compat: the addon still does not load with the shim: ${shimmed.error}`)
  steps.push('the addon loads with the shim preloaded')
  return { preload, steps }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const r = ensureJazzerCompat()
    for (const s of r.steps) console.log(`jazzer-compat: ${s}`)
    if (r.preload) console.log(`jazzer-compat: LD_PRELOAD=${r.preload}`)
  } catch (err) {
    console.error((err as Error).message)
    process.exit(1)
  }
}
