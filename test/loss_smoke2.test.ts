import { describe, it } from 'vitest';
import { ops } from '../sdk/index.js';
import { testRuntime } from './helpers/runtime.js';
import { randn } from './helpers/reference.js';

describe('timing', () => {
  it('compile vs run', async () => {
    const rt = await testRuntime();
    for (const V of [7, 1000, 65537]) {
      const rows = 4;
      const logits = randn(rows * V, 1, -3, 3);
      const targets = Int32Array.from([1, -100, 6, 0]);
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        await ops.gemLoss(rt, { logits, rows, vocab: V, targets, beta: 0.7, h: 'logsigmoid' });
        console.log(V, i, (performance.now() - t0).toFixed(0), 'ms');
      }
    }
  });
});
