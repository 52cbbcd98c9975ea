// The engine's logits for a VLM micro-batch (forward only), for float64 checks of the loss; and
// trained parameters' gradients against central differences of a loss.
import { expect } from 'vitest';
import { Tensor } from '../../sdk/gpu/tensor.js';
import type { Param } from '../../sdk/nn/module.js';
import type { VlmBatch, VlmTrainer } from '../../sdk/train/vlm_trainer.js';
import { rng } from './reference.js';

/** (B·S, V) logits of `mb` under the trainer's model. */
export async function batchLogits(tr: VlmTrainer, mb: VlmBatch): Promise<Float32Array> {
  const out = Tensor.empty(tr.rt, [4]);
  const batch = tr.rt.batch('logits');
  const lg = await tr.recordMicro(batch, mb, out, { backward: false });
  await batch.submit();
  const logits = await lg.read();
  out.release();
  return logits;
}

/**
 * For each named parameter, its largest-gradient entry and a random one (seeded): the central
 * difference of `loss` with step `eps` against `grads`, within atol + 3e-2·|g|. Returns the
 * number of entries checked.
 */
export async function checkGradients(params: Param[], grads: Map<string, Float32Array>, names: string[], loss: () => Promise<number>, o: { eps: number; atol: number; seed: number }): Promise<number> {
  const byName = new Map(params.map((p) => [p.name, p]));
  const r = rng(o.seed);
  let checked = 0;
  for (const name of names) {
    const p = byName.get(name);
    expect(p, `${name} is trained`).toBeDefined();
    const grad = grads.get(name)!;
    const value = await p!.value.read();
    let arg = 0;
    for (let i = 1; i < grad.length; i++) if (Math.abs(grad[i]!) > Math.abs(grad[arg]!)) arg = i;
    expect(Math.abs(grad[arg]!), `${name} has a gradient`).toBeGreaterThan(1e-3);
    for (const i of [arg, Math.floor(r() * grad.length)]) {
      const orig = value[i]!;
      value[i] = orig + o.eps;
      p!.value.write(value);
      const lp = await loss();
      value[i] = orig - o.eps;
      p!.value.write(value);
      const lm = await loss();
      value[i] = orig;
      p!.value.write(value);
      const fd = (lp - lm) / (2 * o.eps);
      expect(Math.abs(fd - grad[i]!), `${name}[${i}] fd ${fd} analytic ${grad[i]}`).toBeLessThanOrEqual(o.atol + 3e-2 * Math.abs(grad[i]!));
      checked++;
    }
  }
  return checked;
}
