// `npm run bench -- profile [encoder|vlm|locate] [steps]`: where a pretraining step's time goes,
// kernel by kernel, on the tiny VLM (random init) at pretraining's batch of 16: the step as it
// runs (one submit), then the same step with `rt.profiler` set, each op submitted and waited for
// alone (Batch.submit). Prints the two step times (their difference is what batching saves: a
// submit and a wait per op), then the ops' time per kernel (shader#entry, defines left out) and
// per kernel and grid, largest first, as a mean over `steps` steps (default 3) after two.
import * as et from '../dist/edgetune.js';
import { B, tinyPretrainSetup } from './_pretrain.mjs';

export default async function (rt, args) {
  const which = args[0] ?? 'locate';
  const steps = Number(args[1] ?? 3);
  if (!['encoder', 'vlm', 'locate'].includes(which) || !(steps >= 1)) throw new Error('usage: npm run bench -- profile [encoder|vlm|locate] [steps]');
  const { vlm, head, encoderTrainer, vlmTrainer } = tinyPretrainSetup(rt);
  let step, trainer;
  if (which === 'encoder') {
    trainer = encoderTrainer();
    step = (i) => trainer.trainStep(et.encoderBatch(vlm, i, B));
  } else {
    trainer = vlmTrainer();
    const mix = which === 'locate' ? et.PRETRAIN_LOCATE_MIX : et.PRETRAIN_MIX;
    step = (i) => trainer.trainStep(et.pretrainBatch(vlm, 2000 + i, B, mix, () => false));
  }
  await step(1);
  await step(2);
  let t0 = performance.now();
  for (let i = 0; i < steps; i++) await step(10 + i);
  const batched = (performance.now() - t0) / steps;
  const ops = [];
  rt.profiler = (op) => ops.push(op);
  t0 = performance.now();
  for (let i = 0; i < steps; i++) await step(10 + i);
  const alone = (performance.now() - t0) / steps;
  rt.profiler = null;
  const kernel = (op) => op.label.split('#').slice(0, 2).join('#');
  const sum = (key) => {
    const m = new Map();
    for (const op of ops) {
      const k = key(op), e = m.get(k) ?? { ms: 0, n: 0 };
      e.ms += op.ms;
      e.n++;
      m.set(k, e);
    }
    return [...m].sort((a, b) => b[1].ms - a[1].ms);
  };
  const total = ops.reduce((s, op) => s + op.ms, 0) / steps;
  console.log(`${which} step of ${B}: ${batched.toFixed(0)} ms as it runs; ${alone.toFixed(0)} ms with each of its ${(ops.length / steps).toFixed(0)} ops alone (their own times add up to ${total.toFixed(0)} ms)`);
  const show = (rows, top) => {
    for (const [k, e] of rows.slice(0, top)) console.log(`${(e.ms / steps).toFixed(1).padStart(8)} ms ${(e.ms / steps / total * 100).toFixed(1).padStart(5)}% ${(e.n / steps).toFixed(e.n % steps ? 1 : 0).padStart(5)}×  ${k}`);
  };
  console.log('-- per kernel');
  show(sum(kernel), 25);
  console.log('-- per kernel and grid (workgroups)');
  show(sum((op) => `${kernel(op)} ${op.groups ? op.groups.join('×') : ''}${/TRANS_A: bool = true/.test(op.label) ? ' (Aᵀ)' : ''}${/TRANS_B: bool = true/.test(op.label) ? ' (Bᵀ)' : ''}`), 25);
  trainer.destroy();
  et.destroyHead(head);
  await vlm.destroy();
}
