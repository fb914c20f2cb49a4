// When ONNX Runtime's intra-op threads spin-wait for work instead of sleeping (infer.threadSpinning).
// Spinning removes the wake-up latency between a step's ~600 kernels (issue 17 measured fp32 decode
// 0.76 → 0.99× llama.cpp with it), but a spinning pool takes cores from everything else on the
// machine, and without a stop it keeps spinning after a run ends. ORT fixes spinning per session,
// so the policy is per run: `in-run` lets the workers spin while a step is in flight and tells
// ORT to park them as soon as each run returns (session.force_spinning_stop), so a node with no
// step in flight sleeps. `always` is ORT's own spinning (no stop), `off` never spins.
// scripts/bench/idle-cpu.ts measures each policy's CPU while idle.

export type SpinPolicy = 'off' | 'in-run' | 'always'
export const SPIN_POLICIES: readonly SpinPolicy[] = ['off', 'in-run', 'always']

/** ORT session config entries (LoadModelOptions.sessionConfig) that give the policy. */
export function spinningSessionConfig(policy: SpinPolicy): Record<string, string> {
  switch (policy) {
    case 'off':
      return { 'session.intra_op.allow_spinning': '0' }
    case 'in-run':
      return { 'session.intra_op.allow_spinning': '1', 'session.force_spinning_stop': '1' }
    case 'always':
      return { 'session.intra_op.allow_spinning': '1', 'session.force_spinning_stop': '0' }
  }
}

/** infer.threadSpinning as configured: a policy name, or a boolean (true = `in-run`, never `always`). */
export function spinPolicyOf(v: boolean | SpinPolicy | undefined): SpinPolicy {
  if (v === undefined || v === false) return 'off'
  if (v === true) return 'in-run'
  return v
}
