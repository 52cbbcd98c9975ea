// Deterministic pretraining of the tiny VLM on the general world's train split (Node: it
// writes files). Step t (1-based) trains on train samples (t−1)·B … t·B−1, so a run is a pure
// function of (config, seed, batch, schedule, steps). Every `checkpointEvery` steps the
// weights, the optimizer state (m, v, t) and the step go to `<out>/checkpoint/`; `resume`
// continues from there and reproduces the losses of an uninterrupted run bit for bit.
// At the end the model package goes to `<out>` (savePackage: config.json, tokenizer.json and
// the three ONNX files).
// A curriculum (easy colour/shape questions, then easy scenes fading out: see PRETRAIN_WARM_FRACTION), the mix of
// question forms leans on the hard ones (PRETRAIN_MIX), and the location tokens of
// `where is …?` answers get soft targets (PRETRAIN_GROUNDING, DESIGN §1.5).
// Every image row also names the object covering it (region targets, PRETRAIN_REGION_TARGETS).
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { formatAnswer } from '../data/answer.js';
import { sampleSplit } from '../data/worlds.js';
import { buildTokenizerJSON } from '../data/vocab.js';
import { Tokenizer } from '../model/tokenizer.js';
import { readBlobFiles, smokeVlmConfig, tinyVlmConfig, VLM, writeBlobFiles, type VlmConfig } from '../model/vlm.js';
import { vlmBatch, VlmTrainer, type VlmBatch } from './vlm_trainer.js';
import { savePackage } from '../model/package.js';
import type { LabelKernel } from '../kernels/grounding_labels.js';
import { regionTargets } from './region_targets.js';

export interface PretrainOptions {
  /** 'tiny' (the embedded model), 'smoke' (CI) or a config. Default 'tiny'. */
  config?: 'tiny' | 'smoke' | VlmConfig;
  steps: number;
  /** Output directory: the model package. */
  out: string;
  /** Checkpoint directory (default `<out>/checkpoint`). */
  checkpointDir?: string;
  /** Question forms of the general world, repeats weighting them (default PRETRAIN_MIX). */
  mix?: readonly string[];
  /** Share of the steps over which easy scenes fade out (default PRETRAIN_EASY_FRACTION; 0: none). */
  easyFraction?: number;
  /** Share of the steps, before the fade, of easy colour and shape questions only (default PRETRAIN_WARM_FRACTION). */
  warmFraction?: number;
  /** Soft location targets (default PRETRAIN_GROUNDING; null: hard targets). */
  grounding?: { kernel: LabelKernel; mix?: number } | null;
  /** Colour- or shape-word targets on the image rows (regionTargets; default PRETRAIN_REGION_TARGETS). */
  regionTargets?: boolean;
  /** Sequences per step (default 16). */
  batch?: number;
  /** Peak learning rate (default 2e-3), linear warmup (default 5% of steps), cosine to lr/10. */
  lr?: number;
  warmup?: number;
  weightDecay?: number;
  /** Model init seed (default 0). */
  seed?: number;
  /** Steps between checkpoints (default 200; 0: none). */
  checkpointEvery?: number;
  /** Continue from `<out>/checkpoint` when it exists. */
  resume?: boolean;
  /** Stop after this step without writing the final weights (tests: an interrupted run). */
  stopAt?: number;
  /** Steps between progress lines (default 10). */
  logEvery?: number;
  log?: (line: string) => void;
}

export interface PretrainResult {
  vlm: VLM;
  /** Loss of every step this call ran, by step (1-based). */
  losses: Map<number, number>;
  /** The step reached. */
  step: number;
  /** Mean wall time of a step in this call (ms), its first step (pipeline compilation) excluded when possible. */
  msPerStep: number;
  /** Mean sequence rows (B·S) processed per second. */
  tokensPerSecond: number;
}

/** Pretraining's question forms: every general form, the hard ones (count, locate) repeated. */
export const PRETRAIN_MIX: readonly string[] = ['color', 'color', 'shape', 'count', 'count', 'count', 'exists', 'exists', 'locate', 'locate', 'locate', 'locate', 'caption'];

/**
 * Curriculum. From scratch, a model fed the whole world at once learns the language's priors
 * (answer forms, frequent words) and then ignores the image rows for good. So:
 * 1. warm-up (the first PRETRAIN_WARM_FRACTION of the steps): only `what color is the …?` and
 *    `what shape is this?` about one medium or large shape on a plain background — answers the
 *    question alone cannot guess, so the only way down is to look;
 * 2. every question form, each sample easy with probability 1 − (t − t₀)/(fraction · steps),
 *    fading out over the next PRETRAIN_EASY_FRACTION of the steps;
 * 3. the whole general world.
 */
export const PRETRAIN_WARM_FRACTION = 0.1;
export const PRETRAIN_EASY_FRACTION = 0.4;
export const PRETRAIN_WARM_MIX: readonly string[] = ['color', 'shape'];

/** Whether sample `i` of step t (t > warm-up steps t₀) is easy (a fixed hash of i against the fading probability). */
export function easySample(i: number, t: number, steps: number, fraction: number, warmSteps = 0): boolean {
  if (fraction <= 0) return false;
  const p = 1 - (t - 1 - warmSteps) / (fraction * steps);
  if (p <= 0) return false;
  const h = Math.imul(i + 1, 0x9e3779b1) >>> 0;
  return h / 2 ** 32 < p;
}

/**
 * Every image row names the object covering it (regionTargets): a dense signal for the vision
 * encoder. Colour words make the image rows informative within ~50 steps; shape words are what
 * the encoder learns slowest. Each sample takes one of the two (regionAttribute), so a row's best
 * prediction is half its colour, half its shape.
 */
export const PRETRAIN_REGION_TARGETS = true;

/** The attribute the image rows of train sample i name: a fixed hash, half 'color', half 'shape'. */
export function regionAttribute(i: number): 'shape' | 'color' {
  return (Math.imul(i + 1, 0x85ebca6b) >>> 0) % 2 === 0 ? 'shape' : 'color';
}

/** Soft targets at location tokens: a Gaussian of 0.7 cells, half of the mass on the hard cell's one-hot. */
export const PRETRAIN_GROUNDING = { kernel: { kind: 'gaussian', sigma: 0.7 } as LabelKernel, mix: 0.5 };

export function resolveConfig(c: PretrainOptions['config'], vocab: number): VlmConfig {
  if (c === undefined || c === 'tiny') return tinyVlmConfig(vocab);
  if (c === 'smoke') return smokeVlmConfig(vocab);
  return c;
}

/** The micro-batch of step t (1-based). */
export function pretrainBatch(vlm: VLM, t: number, B: number, mix: readonly string[] = PRETRAIN_MIX, easy: (i: number) => boolean = () => false, regions = PRETRAIN_REGION_TARGETS): VlmBatch {
  const size = vlm.cfg.vision.imageSize;
  const items = Array.from({ length: B }, (_, k) => {
    const i = (t - 1) * B + k;
    const s = sampleSplit('general', 'train', i, { size, types: mix, easy: easy(i) });
    const imageTargets = regions ? regionTargets(vlm.tokenizer, s, vlm.patches, regionAttribute(i)) : undefined;
    return { image: s.image, question: s.question, answer: formatAnswer(s, vlm.tokenizer.codec), boxes: s.boxes, imageTargets };
  });
  return vlmBatch(vlm, items);
}

async function exists(path: string): Promise<boolean> {
  const fs = await import('node:fs/promises');
  try {
    await fs.access(path);
    return true;
  } catch {
    return false;
  }
}

async function saveCheckpoint(dir: string, trainer: VlmTrainer, totalSteps: number): Promise<void> {
  await trainer.vlm.saveWeights(dir);
  const st = await trainer.optimizer.state();
  const names = Object.keys(st.m);
  let total = 0;
  const index = names.map((n) => {
    const e = { name: n, size: st.m[n]!.length, m: total, v: total + st.m[n]!.length };
    total += 2 * st.m[n]!.length;
    return e;
  });
  const data = new Float32Array(total);
  for (const e of index) {
    data.set(st.m[e.name]!, e.m);
    data.set(st.v[e.name]!, e.v);
  }
  await writeBlobFiles(dir, 'optimizer', { t: st.t, step: trainer.step, totalSteps, tensors: index }, data);
}

async function loadCheckpoint(dir: string, trainer: VlmTrainer): Promise<number | undefined> {
  await trainer.vlm.loadWeights(dir);
  const { json, data } = await readBlobFiles(dir, 'optimizer');
  const j = json as { t: number; step: number; totalSteps?: number; tensors: { name: string; size: number; m: number; v: number }[] };
  if (!j || !Array.isArray(j.tensors)) throw new EdgeTuneError('BAD_CONFIG', `${dir}/optimizer.json is not an optimizer checkpoint`);
  const m: Record<string, Float32Array> = {}, v: Record<string, Float32Array> = {};
  for (const e of j.tensors) {
    m[e.name] = data.subarray(e.m, e.m + e.size);
    v[e.name] = data.subarray(e.v, e.v + e.size);
  }
  trainer.optimizer.loadState({ t: j.t, m, v });
  trainer.step = j.step;
  return j.totalSteps;
}

const fmtTime = (s: number) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`);

export async function pretrain(rt: Runtime, o: PretrainOptions): Promise<PretrainResult> {
  const tok = Tokenizer.fromJSON(buildTokenizerJSON());
  const cfg = resolveConfig(o.config, tok.vocabSize);
  const B = o.batch ?? 16;
  const steps = o.steps;
  if (!(Number.isInteger(steps) && steps >= 1)) throw new EdgeTuneError('INVALID_ARGUMENT', `steps must be a positive integer, got ${String(steps)}`);
  const lr = o.lr ?? 2e-3;
  const warmup = o.warmup ?? Math.max(1, Math.round(steps * 0.05));
  const log = o.log ?? ((l: string) => console.log(l));
  const logEvery = o.logEvery ?? 10;
  const ckDir = o.checkpointDir ?? `${o.out}/checkpoint`;
  const mix = o.mix ?? PRETRAIN_MIX;
  const easyFraction = o.easyFraction ?? PRETRAIN_EASY_FRACTION;
  const warmSteps = Math.round(steps * (o.warmFraction ?? PRETRAIN_WARM_FRACTION));
  const regions = o.regionTargets ?? PRETRAIN_REGION_TARGETS;
  const grounding = o.grounding === undefined ? PRETRAIN_GROUNDING : (o.grounding ?? undefined);
  const ckEvery = o.checkpointEvery ?? 200;
  const vlm = new VLM(rt, cfg, tok, o.seed ?? 0);
  const trainer = new VlmTrainer(vlm, { mode: 'full', lr, weightDecay: o.weightDecay ?? 0.01, schedule: { lr, warmup, total: steps, minLr: lr / 10 }, grounding });
  if (o.resume && (await exists(`${ckDir}/optimizer.json`))) {
    const total = await loadCheckpoint(ckDir, trainer);
    log(`resumed from ${ckDir} at step ${trainer.step}`);
    // The schedule depends on the total: another --steps gives another run than the original.
    if (total !== undefined && total !== steps) log(`warning: the checkpoint was written by a run of ${total} steps; this run has ${steps} (another lr schedule)`);
  }
  const losses = new Map<number, number>();
  const last = Math.min(steps, o.stopAt ?? steps);
  let window = 0, windowN = 0, rows = 0, timed = 0, timedSteps = 0, first = true;
  const t0 = performance.now();
  while (trainer.step < last) {
    const t = trainer.step + 1;
    const mb = t <= warmSteps ? pretrainBatch(vlm, t, B, PRETRAIN_WARM_MIX, () => true, regions) : pretrainBatch(vlm, t, B, mix, (i) => easySample(i, t, steps, easyFraction, warmSteps), regions);
    const ts = performance.now();
    const r = await trainer.trainStep(mb);
    const dt = performance.now() - ts;
    // The first step of a call compiles the pipelines: timed only when it is the only one.
    if (!first || last - r.step === 0) {
      timed += dt;
      timedSteps++;
      rows += mb.batch * mb.seq;
    }
    losses.set(r.step, r.loss);
    window += r.loss;
    windowN++;
    if (r.step % logEvery === 0 || r.step === last) {
      const msStep = timedSteps ? timed / timedSteps : dt;
      const tps = timed > 0 ? (rows / timed) * 1000 : 0;
      log(`step ${r.step}/${steps}  loss ${(window / windowN).toFixed(4)}  lr ${r.lr.toExponential(2)}  |g| ${r.gradNorm.toFixed(3)}${r.skipped ? ' (skipped)' : ''}  ${tps.toFixed(0)} tokens/s  ${msStep.toFixed(0)} ms/step  eta ${fmtTime(((steps - r.step) * msStep) / 1000)}`);
      window = 0;
      windowN = 0;
    }
    if (ckEvery > 0 && r.step % ckEvery === 0 && r.step < steps) await saveCheckpoint(ckDir, trainer, steps);
    first = false;
  }
  if (trainer.step >= steps) {
    await savePackage(vlm, o.out);
    log(`wrote the model package ${o.out} after ${steps} steps (${fmtTime((performance.now() - t0) / 1000)} in this run)`);
  }
  trainer.destroy();
  return { vlm, losses, step: trainer.step, msPerStep: timedSteps ? timed / timedSteps : 0, tokensPerSecond: timed > 0 ? (rows / timed) * 1000 : 0 };
}
