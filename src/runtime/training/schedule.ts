// Learning-rate schedules as transformers' get_{constant,linear,cosine}_schedule_with_warmup
// compute them (the Trainer's `lr_scheduler_type`), so a run here follows the same lr curve as a
// TRL/PEFT run with the same warmup and steps. Step s (0-based) trains with lr · factor(s): the
// scheduler is stepped after each optimizer step, so step 0 uses factor(0), which is 0 when
// warmup > 0, exactly as in PyTorch.

export const SCHEDULES = ['constant', 'linear', 'cosine'] as const
export type ScheduleName = (typeof SCHEDULES)[number]

export function lrFactor(schedule: ScheduleName, step: number, warmup: number, total: number): number {
  if (step < warmup) return step / Math.max(1, warmup)
  if (schedule === 'constant') return 1
  const progress = (step - warmup) / Math.max(1, total - warmup)
  if (schedule === 'linear') return Math.max(0, (total - step) / Math.max(1, total - warmup))
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)))
}
