#!/usr/bin/env node
// `npm run pretrain -- [--steps N] [--encoder-steps E] [--refine-steps R] [--locate-steps L] [--locate-from DIR] [--out DIR] [--batch B] [--lr X] [--resume] [--smoke]
//                      [--checkpoint-every K] [--seed S]`
//                      [--checkpoints DIR]
// Deterministic pretraining of the tiny VLM on the general world (README: The tiny VLM). --smoke runs a
// few steps of a tiny config (CI). Runs the built SDK (npm run pretrain builds it first). Writes the
// model package into --out (default models/tiny-vlm, the embedded model); checkpoints go to --checkpoints.
import * as et from '../dist/edgetune.js';

const args = process.argv.slice(2);
const has = (name) => args.includes(`--${name}`);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const smoke = has('smoke');
/** The embedded model's run: steps × batch 16. */
const STEPS = 1600;
const rt = await et.createRuntime();
const a = rt.adapter;
console.log(`adapter: ${a.vendor || '?'} / ${a.architecture || '?'}${a.software ? ' [software]' : ''}`);
const o = {
  config: smoke ? 'smoke' : 'tiny',
  steps: Number(opt('steps', smoke ? 6 : STEPS)),
  encoderSteps: opt('encoder-steps') === undefined ? undefined : Number(opt('encoder-steps')),
  refineSteps: opt('refine-steps') === undefined ? undefined : Number(opt('refine-steps')),
  locateSteps: opt('locate-steps') === undefined ? undefined : Number(opt('locate-steps')),
  out: opt('out', smoke ? 'scratch/pretrain-smoke' : 'models/tiny-vlm'),
  checkpointDir: opt('checkpoints', smoke ? 'scratch/pretrain-smoke/checkpoint' : 'scratch/pretrain-checkpoint'),
  batch: Number(opt('batch', smoke ? 4 : 16)),
  lr: Number(opt('lr', 2e-3)),
  seed: Number(opt('seed', 0)),
  checkpointEvery: Number(opt('checkpoint-every', smoke ? 3 : 100)),
  logEvery: Number(opt('log-every', smoke ? 1 : 10)),
  resume: has('resume'),
  locateFrom: opt('locate-from'),
};
console.log(`pretrain: ${o.config} config, ${o.encoderSteps ?? Math.round(o.steps * et.PRETRAIN_ENCODER_FRACTION)} encoder + ${o.steps} + ${o.refineSteps ?? Math.round(o.steps * et.PRETRAIN_REFINE_FRACTION)} refine + ${o.locateSteps ?? Math.round(o.steps * et.PRETRAIN_LOCATE_FRACTION)} locate steps of ${o.batch}, lr ${o.lr}, out ${o.out}${o.resume ? ', resume' : ''}${o.locateFrom ? `, locate phase from ${o.locateFrom}` : ''}`);
const r = await et.pretrain(rt, o);
console.log(`done: step ${r.step}, ${r.msPerStep.toFixed(0)} ms/step, ${r.tokensPerSecond.toFixed(0)} tokens/s`);
rt.destroy();
process.exit(0);
