// `npm run bench -- matmul`: GFLOP/s of the matmul kernel with data already on the GPU
// (median of 5 batches of `reps` products), for both schedules.
import { recordMatmul } from '../dist/edgetune.js';
import { timeIt } from './_time.mjs';

const SHAPES = [
  [128, 128, 128],
  [512, 512, 512],
  [1024, 1024, 1024],
  [1024, 1024, 64],
  // the tiny VLM's first stem stage at pretraining's batch: 65,536 pixels × 28 columns → 16 channels
  [65536, 28, 16],
];

export default async function (rt) {
  const auto = rt.adapter.software ? 'direct' : 'tiled';
  console.log(`default schedule on this adapter: ${auto}`);
  console.log('shape (m×k×n)        schedule   ms/product   GFLOP/s');
  for (const [m, k, n] of SHAPES) {
    const a = rt.upload(new Float32Array(m * k).fill(0.5));
    const b = rt.upload(new Float32Array(k * n).fill(0.25));
    const c = rt.pool.acquire(m * n * 4);
    const flop = 2 * m * n * k;
    // Several products per batch (one submit), so that the fixed cost of a submit and its
    // completion does not count: about 2 GFLOP per batch, at least 2 and at most 50 products.
    for (const schedule of ['direct', 'tiled']) {
      const reps = Math.max(2, Math.min(50, Math.round(2e9 / flop)));
      const run = async () => {
        const batch = rt.batch('bench.matmul');
        for (let r = 0; r < reps; r++) await recordMatmul(rt, batch, { a, b, c, m, n, k, schedule });
        await batch.submit();
      };
      const ms = (await timeIt(run, { warmup: 1, reps: 3 })) / reps;
      const mark = schedule === auto ? '*' : ' ';
      console.log(`${`${m}×${k}×${n}`.padEnd(20)} ${mark}${schedule.padEnd(9)} ${ms.toFixed(2).padStart(10)}   ${(flop / ms / 1e6).toFixed(2).padStart(7)}`);
    }
    rt.pool.release(a);
    rt.pool.release(b);
    rt.pool.release(c);
  }
  console.log('(* = the schedule ops.matmul picks on this adapter)');
}
