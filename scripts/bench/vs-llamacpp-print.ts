// bench:vs-llamacpp's human-readable report (without --json): the 135M scenario table, each
// format pair of each shape, the goals, and a warning when the machine was busy.
import { availableParallelism } from 'node:os'
import type { run1b } from './vs-llamacpp-1b.ts'
import type { run135m } from './vs-llamacpp-135m.ts'
import type { PairResult } from './vs-llamacpp-formats.ts'
import type { issue17Goals } from './vs-llamacpp-goals.ts'

export function humanReport(
  out: { machine: { busy: boolean; loadAvg1m: { start: number; end: number } } },
  small: Awaited<ReturnType<typeof run135m>> | null,
  big: Awaited<ReturnType<typeof run1b>> | null,
  goals: ReturnType<typeof issue17Goals>
): string {
  type Stat = { p50: number; max: number }
  const row = (name: string, a: Stat, b: Stat, r: number, rb: number) =>
    `${name.padEnd(20)} ${`${a.p50} / ${a.max}`.padStart(15)} ${`${b.p50} / ${b.max}`.padStart(15)} ${`${r} / ${rb}`.padStart(12)}`
  const lines: string[] = []
  if (small) {
    const R = small
    lines.push(
      `${'tok/s median / best'.padEnd(20)} ${'ours'.padStart(15)} ${'llama.cpp'.padStart(15)} ${'ratio'.padStart(12)}`,
      row(
        'prompt (32 tokens)',
        R.ours.promptTokensPerSec,
        R.llamaCpp.promptTokensPerSec,
        R.ratios.prompt,
        R.ratios.ofBest.prompt
      ),
      row(
        'decode, batch 1',
        R.ours.decodeTokensPerSec,
        R.llamaCpp.decodeTokensPerSec,
        R.ratios.decode,
        R.ratios.ofBest.decode
      ),
      row(
        '8 seq, one adapter',
        R.ours.oneAdapter8TokensPerSec,
        R.llamaCpp.oneAdapter8TokensPerSec,
        R.ratios.oneAdapter8,
        R.ratios.ofBest.oneAdapter8
      ),
      row(
        '8 seq, 8 adapters',
        R.ours.distinctAdapters8TokensPerSec,
        R.llamaCpp.distinctAdapters8TokensPerSec,
        R.ratios.distinctAdapters8,
        R.ratios.ofBest.distinctAdapters8
      ),
      `llama.cpp F16: prompt ${R.llamaCppF16.promptTokensPerSec.p50}, decode ${R.llamaCppF16.decodeTokensPerSec.p50} tok/s`,
      `bandwidth ${R.bandwidth.copyGBps.p50} GB/s copy → decode bound f32 ${R.bandwidth.boundDecodeTokensPerSec.f32}, f16 ${R.bandwidth.boundDecodeTokensPerSec.f16}, int8 ${R.bandwidth.boundDecodeTokensPerSec.int8} tok/s`
    )
  }
  const pairLines = (shape: string, pairs: Partial<Record<string, PairResult>>) =>
    Object.entries(pairs).map(
      ([f, r]) =>
        `${shape} ${f.padEnd(5)} decode ${r!.decodeTokS.ours} vs ${r!.decodeTokS.llama} tok/s = ${r!.decodeRatio}×; prompt ${r!.promptTokS.tokens} ${r!.promptRatio}×` +
        (r!.longPromptTokS ? `, ${r!.longPromptTokS.tokens} ${r!.longPromptRatio}×` : '') +
        (r!.promptKernels ? ` (${r!.promptKernels})` : '') +
        (r!.nativeVsPrefillGraph
          ? `; prompts native ÷ prefill graph ${r!.nativeVsPrefillGraph.promptSpeedup}` +
            (r!.nativeVsPrefillGraph.longPromptSpeedup === null
              ? ''
              : `, ${r!.nativeVsPrefillGraph.longPromptSpeedup}`)
          : '') +
        (r!.int8BlockAB ? `; int8 fitted ÷ block 128 decode ${r!.int8BlockAB.fittedVs128Decode}` : '') +
        (r!.decodeKernelsAB
          ? `; decode native ÷ ORT ${r!.decodeKernelsAB.nativeVsOrt} (ORT ${r!.decodeKernelsAB.ortDecodeTokS} tok/s)`
          : '') +
        (r!.errorVsFp32
          ? `; KL vs fp32 ours ${r!.errorVsFp32.ours.kl} (decode step ${r!.errorVsFp32.oursDecodeStep.kl}), llama.cpp ${r!.errorVsFp32.llama.kl}`
          : '')
    )
  if (small) lines.push(...pairLines('135m', small.formats))
  if (big) {
    lines.push(...pairLines('1b  ', big.formats))
    lines.push(
      `1b bandwidth ${big.bandwidth.readGBps} GB/s read (${big.bandwidth.copyGBps} copy); decode ÷ read bound: int4 ${big.bandwidth.decodeFractionOfBound.int4}, Q4_0 ${big.bandwidth.decodeFractionOfBound.Q4_0}, int8 ${big.bandwidth.decodeFractionOfBound.int8}, Q8_0 ${big.bandwidth.decodeFractionOfBound.Q8_0}`
    )
  }
  lines.push(...goals.map((x) => `${x.met ? 'MET ' : 'MISS'} ${x.name} = ${x.value} (${x.target})`))
  if (out.machine.busy)
    lines.push(
      `WARNING: load average ${out.machine.loadAvg1m.start} → ${out.machine.loadAvg1m.end} on ${availableParallelism()} cores: ratios are not trustworthy`
    )
  return lines.join('\n') + '\n'
}
