// Learning-rate schedule: linear warmup, then cosine decay to `minLr`; optionally a second cycle
// (`then`) after `total` steps, with its own warmup, peak and length (a warm restart).

export interface LrSchedule {
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warmup from lr/warmup to lr (0: none). */
  warmup?: number;
  /** Total steps; after warmup the rate follows a half cosine to minLr at this step. */
  total: number;
  /** Final rate (default lr / 10). */
  minLr?: number;
  /** A cycle after this one: step total + u follows `then` at step u (u ≥ 1). Absent: minLr from `total` on. */
  then?: LrSchedule;
}

/** The learning rate at 1-based step `t`. */
export function learningRate(s: LrSchedule, t: number): number {
  if (s.then && t > s.total) return learningRate(s.then, t - s.total);
  const warmup = s.warmup ?? 0;
  const minLr = s.minLr ?? s.lr / 10;
  if (t <= warmup) return (s.lr * t) / warmup;
  if (t >= s.total) return minLr;
  const progress = (t - warmup) / Math.max(1, s.total - warmup);
  return minLr + 0.5 * (s.lr - minLr) * (1 + Math.cos(Math.PI * progress));
}
