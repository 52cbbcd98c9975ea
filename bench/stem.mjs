// `npm run bench -- stem [reps]`: each kernel of the tiny VLM's convolutional stem (4 stages of
// 16, 32, 64, 96 channels over 64×64 pixels) at pretraining's batch of 16 images, forward and
// backward, one kernel per submit: ms (median of `reps` after one) and GFLOP/s for the products.
// The columns' rows are padded to a multiple of 4 (colsPitch: 27 → 28 on stage 0), as ConvStem's.
// The GELUs are left out (elementwise, under a few ms).
import * as et from '../dist/edgetune.js';
import { timeIt } from './_time.mjs';

export default async function (rt, args) {
  const reps = Number(args[0] ?? 3);
  const B = 16, channels = [16, 32, 64, 96];
  const time = async (label, flops, record) => {
    const ms = await timeIt(async () => {
      const b = rt.batch(label);
      await record(b);
      await b.submit();
    }, { reps });
    console.log(`${label.padEnd(46)} ${ms.toFixed(1).padStart(7)} ms${flops ? `  ${(flops / ms / 1e6).toFixed(2)} GFLOP/s` : ''}`);
    return ms;
  };
  let total = 0, cin = 3, side = 64;
  for (let s = 0; s < channels.length; s++) {
    const cout = channels[s], rows = B * side * side, K = 9 * cin, Kp = et.colsPitch(K), flops = 2 * rows * K * cout;
    const T = (n) => et.Tensor.empty(rt, [n]);
    const x = T(rows * cin), cols = T(rows * Kp), z = T(rows * cout), a = T(rows * cout), y = T((rows / 4) * cout), W = T(Kp * cout), bias = T(cout);
    const d = { batch: B, channels: cin, height: side, width: side };
    const pd = { ...d, channels: cout };
    total += await time(`stage ${s}: columns (${rows}×${Kp})`, 0, (b) => et.recordConvCols(rt, b, d, s === 0 ? 'nchw' : 'rows', x.buffer, cols.buffer, undefined, Kp));
    total += await time(`stage ${s}: cols·W (${rows}×${Kp}×${cout})`, flops, (b) => et.recordMatmul(rt, b, { a: cols.buffer, b: W.buffer, c: z.buffer, bias: bias.buffer, m: rows, k: Kp, n: cout }));
    total += await time(`stage ${s}: max pool`, 0, (b) => et.recordMaxPool2(rt, b, pd, a.buffer, y.buffer));
    total += await time(`stage ${s}: max pool backward`, 0, (b) => et.recordMaxPool2Backward(rt, b, pd, a.buffer, y.buffer, z.buffer));
    total += await time(`stage ${s}: dW = colsᵀ·dz`, flops, (b) => et.recordMatmul(rt, b, { a: cols.buffer, b: z.buffer, c: W.buffer, m: Kp, k: rows, n: cout, transA: true }));
    if (s > 0) {
      total += await time(`stage ${s}: dcols = dz·Wᵀ`, flops, (b) => et.recordMatmul(rt, b, { a: z.buffer, b: W.buffer, c: cols.buffer, m: rows, k: cout, n: Kp, transB: true }));
      total += await time(`stage ${s}: columns backward (onto the input)`, 0, (b) => et.recordConvColsBackward(rt, b, d, cols.buffer, x.buffer, undefined, Kp));
    }
    for (const t of [x, cols, z, a, y, W, bias]) t.release();
    cin = cout;
    side /= 2;
  }
  console.log(`all of the above: ${total.toFixed(0)} ms per step of ${B} images`);
}
