import { describe, it, expect } from 'vitest';
import { ops } from '../sdk/index.js';
import { testRuntime } from './helpers/runtime.js';
import { randn } from './helpers/reference.js';
import { lossRef, maxRelErr } from './helpers/loss_ref.js';

describe('smoke', () => {
  for (const V of [7, 8]) for (const h of ['linear', 'logsigmoid'] as const) for (const soft of [false, true]) it(`V=${V} ${h} soft=${soft}`, async () => {
    const rt = await testRuntime();
    const rows = 4;
    const logits = randn(rows * V, 1, -3, 3);
    let targets: any = Int32Array.from([1, -100, 6, 0]);
    if (soft) {
      const q = new Float32Array(rows * V);
      q[0 * V + 1] = 0.25; q[0 * V + 2] = 0.75; q[2 * V + 5] = 1; q[3 * V + 0] = 0.5; q[3 * V + 6] = 0.5;
      targets = { soft: q };
    }
    const r = await ops.gemLoss(rt, { logits, rows, vocab: V, targets, beta: 0.7, h });
    const ref = lossRef(logits, rows, V, targets, 0.7, h);
    console.log(r.loss, ref.gem, r.ce, ref.ce, r.count, maxRelErr(r.grad, ref.grad));
    expect(maxRelErr(r.grad, ref.grad)).toBeLessThan(1e-4);
  });
});
