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
// Every image row also names the object covering it (region words, PRETRAIN_REGION_TARGETS), or,
// on some samples, says whether it is the object the question asks about (match targets).
// Before all that, an encoder phase of `encoderSteps` steps trains the vision encoder alone with
// a linear head on its rows (EncoderTrainer; PRETRAIN_ENCODER_FRACTION).
// After the VLM's `steps`, a refine phase of `refineSteps` more VLM steps restarts the learning
// rate (a second warmup and cosine, PRETRAIN_REFINE_LR) on fresh samples of its own mix; the
// steps before it are those of a run without it, bit for bit. A locate phase of `locateSteps` more
// then trains everything with a fresh optimizer state on a mix that leans on `where is …?`
// (PRETRAIN_LOCATE_MIX); a stem skip (vision.stemSkip), frozen at zero until then, trains with it.
// Steps are numbered across the phases: 1 … E the encoder's, E + 1 … E + steps the VLM's, then
// E + steps + 1 … E + steps + R the refine phase's, then the locate phase's.
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { formatAnswer } from '../data/answer.js';
import { sampleSplit } from '../data/worlds.js';
import { buildTokenizerJSON } from '../data/vocab.js';
import { Tokenizer } from '../model/tokenizer.js';
import { readBlobFiles, smokeVlmConfig, tinyVlmConfig, VLM, writeBlobFiles, type VlmConfig } from '../model/vlm.js';
import { vlmBatch, VlmTrainer, type VlmBatch } from './vlm_trainer.js';
import { loadPackageWeights, savePackage } from '../model/package.js';
import type { LabelKernel } from '../kernels/grounding_labels.js';
import type { Param } from '../nn/module.js';
import type { Dense } from '../nn/dense.js';
import type { AdamW } from './optimizer.js';
import { REGION_WORDS, regionMatches, regionObjects, regionTargets, regionWords, type RegionWord } from './region_targets.js';
import { destroyHead, EncoderTrainer, regionHead, regionHeadParams, type EncoderBatch } from './encoder_pretrain.js';

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
  /** Targets on the image rows (regionWords, regionAttribute; default PRETRAIN_REGION_TARGETS). */
  regionTargets?: boolean;
  /** Which words the image rows name (default PRETRAIN_REGION_WORDS). */
  regionWords?: RegionWordChoice;
  /** Steps of the encoder phase before the `steps` of the VLM (default round(PRETRAIN_ENCODER_FRACTION · steps); 0: none). */
  encoderSteps?: number;
  /** Keep the region head on the vision rows through the VLM phase (default PRETRAIN_REGION_HEAD). */
  regionHead?: boolean;
  /** VLM steps of the refine phase after `steps` (default round(PRETRAIN_REFINE_FRACTION · steps); 0: none). */
  refineSteps?: number;
  /** Peak learning rate of the refine phase (default PRETRAIN_REFINE_LR · lr). */
  refineLr?: number;
  /** Question forms of the refine phase (default PRETRAIN_REFINE_MIX). */
  refineMix?: readonly string[];
  /** Image-row targets of the refine phase (default PRETRAIN_REFINE_WORDS). */
  refineWords?: RegionWordChoice;
  /**
   * Steps of the locate phase after the refine phase (default round(PRETRAIN_LOCATE_FRACTION ·
   * steps); 0: none). A stem skip stays frozen at zero until this phase, or, without one, trains
   * from the VLM phase on.
   */
  locateSteps?: number;
  /** Peak learning rate of the locate phase (default PRETRAIN_LOCATE_LR · lr). */
  locateLr?: number;
  /** Question forms of the locate phase (default PRETRAIN_LOCATE_MIX). */
  locateMix?: readonly string[];
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
  /**
   * Start at the locate phase with the weights of a trained model: a directory with weights.json
   * (VLM.saveWeights) or a model package (its ONNX files' weights). The phase depends on the weights alone (a
   * fresh optimizer state and region head), so this gives what a whole run gives from the model
   * it wrote at the end of its refine phase. Not with `resume`.
   */
  locateFrom?: string;
  /** Stop after this step (numbered across both phases) without writing the final weights (tests: an interrupted run). */
  stopAt?: number;
  /** Steps between progress lines (default 10). */
  logEvery?: number;
  log?: (line: string) => void;
}

export interface PretrainResult {
  vlm: VLM;
  /** Loss of every step this call ran, by step (1-based, across both phases). */
  losses: Map<number, number>;
  /** The step reached (encoder steps included). */
  step: number;
  /** Mean wall time of a VLM step in this call (ms; of an encoder step when it ran only those), a phase's first step (pipeline compilation) excluded when possible. */
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
 * Every image row names the object covering it (regionWords): a dense signal for the vision
 * encoder and the decoder. The decoder's image rows each take one word (regionAttribute: the
 * shape or colour word, or the first or last location token of the object's box); the region
 * head (PRETRAIN_REGION_HEAD) takes all four at once.
 */
export const PRETRAIN_REGION_TARGETS = true;

/**
 * What pretraining's image rows name: the decoder's rows one of `rows` per sample
 * (regionAttribute), the region head all of `head` at once (null: the decoder rows' word). On a
 * share `match` of the samples whose question names a colour or shape (matchSample), the
 * decoder's rows answer instead whether their object is the one asked about (regionMatches);
 * the region head keeps its words.
 */
export interface RegionWordChoice {
  rows: readonly RegionWord[];
  head: readonly RegionWord[] | null;
  /** Share of samples in [0, 1] (default 0). */
  match?: number;
  /** `how many …?` samples always take match targets (their anchors), whatever `match` draws. */
  countMatch?: boolean;
}
export const PRETRAIN_REGION_WORDS: RegionWordChoice = { rows: REGION_WORDS, head: REGION_WORDS, match: 0.5 };

/** Whether train sample i's image rows take regionMatches (a fixed hash of i, independent of regionAttribute's, against `share`). */
export function matchSample(i: number, share: number): boolean {
  if (!(share >= 0 && share <= 1)) throw new EdgeTuneError('INVALID_ARGUMENT', `the share of match targets must be in [0, 1], got ${share}`);
  return (Math.imul(i + 1, 0xc2b2ae35) >>> 0) / 2 ** 32 < share;
}

/** The word the decoder's image rows of train sample i name: a fixed hash, an equal share each of `rows`. */
export function regionAttribute(i: number, rows: readonly RegionWord[] = PRETRAIN_REGION_WORDS.rows): RegionWord {
  if (rows.length === 0) throw new EdgeTuneError('INVALID_ARGUMENT', 'regionAttribute needs at least one word kind');
  return rows[(Math.imul(i + 1, 0x85ebca6b) >>> 0) % rows.length]!;
}

/** Columns `pick` of a (P·|REGION_WORDS|) regionWords table, as a (P·|pick|) table. */
function pickWords(all: Int32Array, P: number, pick: readonly RegionWord[]): Int32Array {
  const K = REGION_WORDS.length, cols = pick.map((w) => REGION_WORDS.indexOf(w));
  return Int32Array.from({ length: P * cols.length }, (_, j) => all[Math.floor(j / cols.length) * K + cols[j % cols.length]!]!);
}

/**
 * Encoder phase (EncoderTrainer): its length as a share of the VLM's steps. A from-scratch
 * encoder behind the connector and decoder stays at chance on shapes for the whole budget;
 * with a linear head straight on its rows, single-shape scenes and each row's shape word as
 * target, it learns them in a few hundred steps (README: The tiny VLM).
 */
export const PRETRAIN_ENCODER_FRACTION = 1 / 3;
/**
 * The encoder phase's head stays on through the VLM phase, its CE (each image row's region words,
 * PRETRAIN_REGION_WORDS.head) added to the loss: the encoder keeps what it learnt while the
 * decoder learns to read it.
 */
export const PRETRAIN_REGION_HEAD = true;
/** The encoder phase's learning rate: linear warm-up over this share of its steps, then constant. */
export const ENCODER_WARMUP_FRACTION = 0.15;
/** First train-split index of the encoder phase's samples, far from the VLM phase's 0 … steps·B − 1. */
export const ENCODER_SAMPLE_OFFSET = 2 ** 29;

/**
 * The encoder batch of encoder step t (1-based): single-shape scenes, every vision row's target
 * the shape word of the object covering it. (All four region words on scenes of every form
 * instead left shape at 22% per cell after 500 steps, colour at 100%: README, Pretraining.)
 */
export function encoderBatch(vlm: VLM, t: number, B: number): EncoderBatch {
  const size = vlm.cfg.vision.imageSize, P = vlm.vision.patches, per = 3 * size * size;
  const pixels = new Float32Array(B * per);
  const targets = new Int32Array(B * P);
  for (let k = 0; k < B; k++) {
    const s = sampleSplit('general', 'train', ENCODER_SAMPLE_OFFSET + (t - 1) * B + k, { size, types: ['shape'] });
    pixels.set(vlm.pixelValues(s.image), k * per);
    targets.set(regionTargets(vlm.tokenizer, s, P, 'shape'), k * P);
  }
  return { batch: B, pixels, targets };
}

/**
 * Refine phase: its length as a share of the VLM's steps, and its peak learning rate as a share
 * of the VLM's. It restarts the schedule (5% warmup, cosine to a tenth of its peak) on samples
 * not seen before, no easy scenes, with its own mix and image-row targets (PRETRAIN_REFINE_MIX,
 * PRETRAIN_REFINE_WORDS), after the VLM phase has taught the rows to compare themselves with the
 * question: what the curriculum built stays, what it left weak gets the steps.
 */
export const PRETRAIN_REFINE_FRACTION = 5 / 16;
export const PRETRAIN_REFINE_LR = 0.75;
/**
 * The refine phase's question forms: more than half of them `how many …?`, then `where is …?`.
 * After the VLM phase, colours, shapes and yes/no are right nine times in ten or more, but counts
 * stay near chance: the answer counts every object, whatever its shape. Counting is learnable by
 * this model (the replica, refined on counts alone: 76%), but PRETRAIN_MIX's share of counts
 * (3 of 13) leaves it at 32% and 4 of 13 at 32% too; this mix (15 of 25) took it to 58% in the
 * engine with the other forms kept (README: Quality, the refine recipes).
 */
export const PRETRAIN_REFINE_MIX: readonly string[] = ['color', 'shape', 'exists', 'exists', 'locate', 'locate', 'locate', 'locate', 'locate', 'caption', ...Array<string>(15).fill('count')];
/** The refine phase's image-row targets: PRETRAIN_REGION_WORDS, and match targets on every count sample. */
export const PRETRAIN_REFINE_WORDS: RegionWordChoice = { ...PRETRAIN_REGION_WORDS, countMatch: true };

/**
 * Locate phase (`locateSteps`): its length as a share of the VLM's steps (5/8: 1000 steps), its
 * peak learning rate as a share of the VLM's, and its mix: the refine phase's with three times the
 * `where is …?` samples (15 of 35; counts 15). After the refine phase, boxes are the weak answers
 * (IoU ≥ 0.5 on about a third): this phase restarts training with a fresh optimizer state and a
 * new region head (VlmTrainer in full mode, everything trains) on samples of its own, and gives
 * boxes the steps (README: Pretraining, the locate phase). A stem skip (vision.stemSkip) starts at
 * zero and stays frozen there before this phase, so that the phases before it are exactly those
 * of the model without it; then it trains with everything else.
 */
export const PRETRAIN_LOCATE_FRACTION = 5 / 8;
export const PRETRAIN_LOCATE_LR = 0.5;
export const PRETRAIN_LOCATE_MIX: readonly string[] = [...PRETRAIN_REFINE_MIX, ...Array<string>(10).fill('locate')];

/** The stem skip's parameter name in a VLM. */
const SKIP_PARAM = 'vision_model.embeddings.stem_skip.weight';

/** Share of a phase's steps over which the VLM and refine phases warm their learning rate up. */
const WARMUP_FRACTION = 0.05;

/** Soft targets at location tokens: a Gaussian of 0.7 cells, half of the mass on the hard cell's one-hot. */
export const PRETRAIN_GROUNDING = { kernel: { kind: 'gaussian', sigma: 0.7 } as LabelKernel, mix: 0.5 };

export function resolveConfig(c: PretrainOptions['config'], vocab: number): VlmConfig {
  if (c === undefined || c === 'tiny') return tinyVlmConfig(vocab);
  if (c === 'smoke') return smokeVlmConfig(vocab);
  return c;
}

/** The micro-batch of step t (1-based). */
export function pretrainBatch(vlm: VLM, t: number, B: number, mix: readonly string[] = PRETRAIN_MIX, easy: (i: number) => boolean = () => false, regions = PRETRAIN_REGION_TARGETS, words: RegionWordChoice = PRETRAIN_REGION_WORDS): VlmBatch {
  const P = vlm.patches;
  const size = vlm.cfg.vision.imageSize;
  const items = Array.from({ length: B }, (_, k) => {
    const i = (t - 1) * B + k;
    const s = sampleSplit('general', 'train', i, { size, types: mix, easy: easy(i) });
    const item = { image: s.image, question: s.question, answer: formatAnswer(s, vlm.tokenizer.codec), boxes: s.boxes };
    if (!regions) return item;
    // Which object each row names, once for the words and the match targets.
    const objs = regionObjects(s, P);
    const all = regionWords(vlm.tokenizer, s, P, REGION_WORDS, objs);
    const matches = matchSample(i, words.match ?? 0) || (words.countMatch && s.type === 'count') ? regionMatches(vlm.tokenizer, s, P, objs) : null;
    const word = pickWords(all, P, [regionAttribute(i, words.rows)]);
    // The region head does not see the question: it keeps the words (with head null, the rows' word).
    return { ...item, imageTargets: matches ?? word, regionWords: words.head ? pickWords(all, P, words.head) : word };
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

interface StepTrainer {
  vlm: VLM;
  optimizer: AdamW;
  step: number;
}

interface CheckpointTensor {
  name: string;
  size: number;
  /** Offsets (floats) of its Adam moments and, for a region head, of its value. */
  m: number;
  v: number;
  value?: number;
}

/**
 * The model's weights, plus `<name>.json/.bin`: the optimizer state (m, v, t), the phase's step,
 * the run's lengths, and the values of `extra` parameters that are not part of the model (the
 * region head).
 */
async function saveCheckpoint(dir: string, name: 'optimizer' | 'encoder' | 'locate', trainer: StepTrainer, meta: Record<string, number>, extra: Param[] = []): Promise<void> {
  await trainer.vlm.saveWeights(dir);
  const st = await trainer.optimizer.state();
  const values = new Map<string, Float32Array>();
  for (const p of extra) values.set(p.name, await p.value.read());
  let total = 0;
  const index: CheckpointTensor[] = Object.keys(st.m).map((n) => {
    const size = st.m[n]!.length;
    const e: CheckpointTensor = { name: n, size, m: total, v: total + size };
    total += 2 * size;
    if (values.has(n)) {
      e.value = total;
      total += size;
    }
    return e;
  });
  const data = new Float32Array(total);
  for (const e of index) {
    data.set(st.m[e.name]!, e.m);
    data.set(st.v[e.name]!, e.v);
    if (e.value !== undefined) data.set(values.get(e.name)!, e.value);
  }
  await writeBlobFiles(dir, name, { ...meta, t: st.t, step: trainer.step, tensors: index }, data);
}

async function loadCheckpoint(dir: string, name: 'optimizer' | 'encoder' | 'locate', trainer: StepTrainer, extra: Param[] = []): Promise<Record<string, number>> {
  await trainer.vlm.loadWeights(dir);
  const { json, data } = await readBlobFiles(dir, name);
  const j = json as { t: number; step: number; tensors: CheckpointTensor[] } & Record<string, number>;
  if (!j || !Array.isArray(j.tensors)) throw new EdgeTuneError('BAD_CONFIG', `${dir}/${name}.json is not an optimizer checkpoint`);
  const m: Record<string, Float32Array> = {}, v: Record<string, Float32Array> = {};
  const values = new Map<string, Float32Array>();
  for (const e of j.tensors) {
    m[e.name] = data.subarray(e.m, e.m + e.size);
    v[e.name] = data.subarray(e.v, e.v + e.size);
    if (e.value !== undefined) values.set(e.name, data.subarray(e.value, e.value + e.size));
  }
  for (const p of extra) {
    const x = values.get(p.name);
    if (!x || x.length !== p.value.size) throw new EdgeTuneError('BAD_CONFIG', `${dir}/${name}.json has no ${p.value.size} values for ${p.name}`);
    p.value.write(x);
  }
  trainer.optimizer.loadState({ t: j.t, m, v });
  trainer.step = j.step;
  return j;
}

/** Removes a checkpoint's `<name>.json` and `<name>.bin` (a later phase's, stale once an earlier one is saved). */
async function removeCheckpoint(dir: string, name: 'optimizer' | 'locate'): Promise<void> {
  const fs = await import('node:fs/promises');
  await fs.rm(`${dir}/${name}.json`, { force: true });
  await fs.rm(`${dir}/${name}.bin`, { force: true });
}

const fmtTime = (s: number) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`);

export async function pretrain(rt: Runtime, o: PretrainOptions): Promise<PretrainResult> {
  const tok = Tokenizer.fromJSON(buildTokenizerJSON());
  const cfg = resolveConfig(o.config, tok.vocabSize);
  const B = o.batch ?? 16;
  const steps = o.steps;
  if (!(Number.isInteger(steps) && steps >= 1)) throw new EdgeTuneError('INVALID_ARGUMENT', `steps must be a positive integer, got ${String(steps)}`);
  const E = o.encoderSteps ?? Math.round(steps * PRETRAIN_ENCODER_FRACTION);
  if (!(Number.isInteger(E) && E >= 0)) throw new EdgeTuneError('INVALID_ARGUMENT', `encoderSteps must be a non-negative integer, got ${String(o.encoderSteps)}`);
  const R = o.refineSteps ?? Math.round(steps * PRETRAIN_REFINE_FRACTION);
  if (!(Number.isInteger(R) && R >= 0)) throw new EdgeTuneError('INVALID_ARGUMENT', `refineSteps must be a non-negative integer, got ${String(o.refineSteps)}`);
  const hasSkip = cfg.vision.stemSkip !== undefined;
  const L = o.locateSteps ?? Math.round(steps * PRETRAIN_LOCATE_FRACTION);
  if (!(Number.isInteger(L) && L >= 0)) throw new EdgeTuneError('INVALID_ARGUMENT', `locateSteps must be a non-negative integer, got ${String(o.locateSteps)}`);
  const all = E + steps + R + L;
  /** First step of the locate phase. */
  const L0 = E + steps + R + 1;
  const locateMix = o.locateMix ?? PRETRAIN_LOCATE_MIX;
  const lr = o.lr ?? 2e-3;
  const refineLr = o.refineLr ?? lr * PRETRAIN_REFINE_LR;
  const locateLr = o.locateLr ?? lr * PRETRAIN_LOCATE_LR;
  const refineMix = o.refineMix ?? PRETRAIN_REFINE_MIX;
  const refineWords = o.refineWords ?? PRETRAIN_REFINE_WORDS;
  const warmupOf = (n: number) => Math.max(1, Math.round(n * WARMUP_FRACTION));
  const warmup = o.warmup ?? warmupOf(steps);
  const log = o.log ?? ((l: string) => console.log(l));
  const logEvery = o.logEvery ?? 10;
  const ckDir = o.checkpointDir ?? `${o.out}/checkpoint`;
  const mix = o.mix ?? PRETRAIN_MIX;
  const easyFraction = o.easyFraction ?? PRETRAIN_EASY_FRACTION;
  const warmSteps = Math.round(steps * (o.warmFraction ?? PRETRAIN_WARM_FRACTION));
  const regions = o.regionTargets ?? PRETRAIN_REGION_TARGETS;
  const words = o.regionWords ?? PRETRAIN_REGION_WORDS;
  const grounding = o.grounding === undefined ? PRETRAIN_GROUNDING : (o.grounding ?? undefined);
  const ckEvery = o.checkpointEvery ?? 200;
  const weightDecay = o.weightDecay ?? 0.01;
  const vlm = new VLM(rt, cfg, tok, o.seed ?? 0);
  const keepHead = o.regionHead ?? PRETRAIN_REGION_HEAD;
  const head = E > 0 || keepHead ? regionHead(vlm, o.seed ?? 0) : null;
  /** The head in the VLM phase (if it stays on), and its parameters, checkpointed with that phase. */
  const vlmHead = keepHead ? head! : undefined;
  const vlmHeadParams = vlmHead ? regionHeadParams(vlmHead) : [];
  // The stem skip stays frozen at zero until the locate phase when there is one, else until the
  // VLM phase: the encoder phase teaches shapes, which must not depend on where a shape is
  // (features bound to positions stalled it: README, coordinate channels).
  const frozen = L > 0 && hasSkip ? [SKIP_PARAM] : [];
  let encoder = E > 0 ? new EncoderTrainer(vlm, { lr, weightDecay, schedule: { lr, warmup: Math.max(1, Math.round(E * ENCODER_WARMUP_FRACTION)), total: E, minLr: lr }, head: head!, frozen: hasSkip ? [SKIP_PARAM] : [] }) : null;
  let trainer = null as VlmTrainer | null;
  /** Whether `trainer` is the locate phase's (its steps count from the phase's start). */
  let locating = false;
  const vlmTrainer = () => (trainer ??= new VlmTrainer(vlm, { mode: 'full', lr, weightDecay, schedule: { lr, warmup, total: steps, minLr: lr / 10, ...(R > 0 && { then: { lr: refineLr, warmup: warmupOf(R), total: R, minLr: refineLr / 10 } }) }, grounding, regionHead: vlmHead, frozen }));
  /**
   * The locate phase's trainer: a fresh optimizer state, its own schedule, and a new region head
   * (initialised as the encoder phase's was), so that the phase depends on the model's weights
   * alone; a stem skip trains too.
   */
  let locateHead: Dense | null = null;
  const locateTrainer = () => {
    if (!locating) {
      trainer?.destroy();
      locateHead = keepHead ? regionHead(vlm, o.seed ?? 0) : null;
      trainer = new VlmTrainer(vlm, { mode: 'full', lr: locateLr, weightDecay, schedule: { lr: locateLr, warmup: warmupOf(L), total: L, minLr: locateLr / 10 }, grounding, regionHead: locateHead ?? undefined });
      locating = true;
    }
    return trainer!;
  };
  const locateHeadParams = () => (locateHead ? regionHeadParams(locateHead) : []);
  /** Steps done, across the phases. */
  const done = () => (trainer ? E + (locating ? steps + R : 0) + trainer.step : (encoder?.step ?? 0));
  /** The encoder phase's head and optimizer state go once the VLM phase starts. */
  const dropEncoder = () => {
    encoder?.destroy();
    encoder = null;
  };
  if (o.locateFrom !== undefined) {
    if (o.resume) throw new EdgeTuneError('INVALID_ARGUMENT', 'locateFrom starts a run at the locate phase: it cannot also resume one');
    if (L === 0) throw new EdgeTuneError('INVALID_ARGUMENT', 'locateFrom needs a locate phase (locateSteps > 0)');
    dropEncoder();
    if (await exists(`${o.locateFrom}/weights.json`)) await vlm.loadWeights(o.locateFrom);
    else await loadPackageWeights(vlm, o.locateFrom);
    locateTrainer();
    log(`starting the locate phase at step ${done()} from the weights of ${o.locateFrom}`);
  }
  if (o.resume) {
    // A checkpoint of the locate phase supersedes one of the VLM phase, which supersedes one of the
    // encoder phase (saving a phase's checkpoint removes the later phases').
    let j: Record<string, number> | null = null;
    if (await exists(`${ckDir}/locate.json`)) {
      dropEncoder();
      const tr = locateTrainer();
      j = await loadCheckpoint(ckDir, 'locate', tr, locateHeadParams());
    } else if (await exists(`${ckDir}/optimizer.json`)) {
      dropEncoder();
      j = await loadCheckpoint(ckDir, 'optimizer', vlmTrainer(), vlmHeadParams);
    } else if (encoder && (await exists(`${ckDir}/encoder.json`))) j = await loadCheckpoint(ckDir, 'encoder', encoder, regionHeadParams(encoder.head));
    if (j) {
      log(`resumed from ${ckDir} at step ${done()}`);
      // The schedule depends on the totals: other --steps give another run than the original.
      // The refine phase's length matters only once it has begun.
      const refineDiffers = (j.refineSteps ?? 0) !== R && done() > E + steps;
      const locateDiffers = (j.locateSteps ?? 0) !== L && done() >= L0;
      if ((j.totalSteps !== undefined && j.totalSteps !== steps) || (j.encoderSteps ?? E) !== E || refineDiffers || locateDiffers) {
        log(`warning: the checkpoint was written by a run of ${j.encoderSteps ?? 0} + ${j.totalSteps} + ${j.refineSteps ?? 0} + ${j.locateSteps ?? 0} steps; this run has ${E} + ${steps} + ${R} + ${L} (another lr schedule)`);
      }
    }
  }
  const meta = { totalSteps: steps, encoderSteps: E, refineSteps: R, locateSteps: L };
  const losses = new Map<number, number>();
  const last = Math.min(all, o.stopAt ?? all);
  let window = 0, regionWindow = 0, windowN = 0, first = true;
  /** Wall time, steps and rows timed, per phase (the encoder's steps are faster: eta and ms/step are the current phase's). */
  const timing = { encoder: { ms: 0, steps: 0, rows: 0 }, vlm: { ms: 0, steps: 0, rows: 0 } };
  const t0 = performance.now();
  while (done() < last) {
    const g = done() + 1;
    const ts = performance.now();
    let r: { loss: number; lr: number; gradNorm: number; skipped: boolean; regionCe?: number };
    let n: number;
    if (g <= E) {
      const mb = encoderBatch(vlm, g, B);
      r = await encoder!.trainStep(mb);
      n = mb.targets.length;
    } else {
      dropEncoder();
      const t = g - E;
      const mb =
        t <= warmSteps ? pretrainBatch(vlm, t, B, PRETRAIN_WARM_MIX, () => true, regions, words)
        : t <= steps ? pretrainBatch(vlm, t, B, mix, (i) => easySample(i, t, steps, easyFraction, warmSteps), regions, words)
        : pretrainBatch(vlm, t, B, g < L0 ? refineMix : locateMix, () => false, regions, refineWords);
      r = await (g < L0 ? vlmTrainer() : locateTrainer()).trainStep(mb);
      n = mb.batch * mb.seq;
    }
    const dt = performance.now() - ts;
    const phase = g <= E ? 'encoder' : 'vlm';
    const tm = timing[phase];
    // The first step of a call and of a phase compiles pipelines: timed only when it is the only one.
    if ((!first && g !== E + 1 && g !== L0) || tm.steps === 0 && (last - g === 0 || g === E)) {
      tm.ms += dt;
      tm.steps++;
      tm.rows += n;
    }
    losses.set(g, r.loss);
    window += r.loss;
    regionWindow += r.regionCe ?? 0;
    windowN++;
    if (g % logEvery === 0 || g === last || g === E) {
      const msStep = tm.steps ? tm.ms / tm.steps : dt;
      const tps = tm.ms > 0 ? (tm.rows / tm.ms) * 1000 : 0;
      const eta = phase === 'encoder' ? `${fmtTime(((E - g) * msStep) / 1000)} + the VLM phase` : fmtTime(((all - g) * msStep) / 1000);
      const region = g > E && vlmHead ? `  region ${(regionWindow / windowN).toFixed(4)}` : '';
      log(`step ${g}/${all} ${g >= L0 ? 'locate' : g > E + steps ? 'refine' : phase}  loss ${(window / windowN).toFixed(4)}${region}  lr ${r.lr.toExponential(2)}  |g| ${r.gradNorm.toFixed(3)}${r.skipped ? ' (skipped)' : ''}  ${tps.toFixed(0)} rows/s  ${msStep.toFixed(0)} ms/step  eta ${eta}`);
      window = 0;
      regionWindow = 0;
      windowN = 0;
    }
    if (ckEvery > 0 && g % ckEvery === 0 && g < all) {
      if (g <= E) {
        await saveCheckpoint(ckDir, 'encoder', encoder!, meta, regionHeadParams(encoder!.head));
        await removeCheckpoint(ckDir, 'optimizer');
        await removeCheckpoint(ckDir, 'locate');
      } else if (g < L0) {
        await saveCheckpoint(ckDir, 'optimizer', trainer!, meta, vlmHeadParams);
        await removeCheckpoint(ckDir, 'locate');
      } else {
        await saveCheckpoint(ckDir, 'locate', trainer!, meta, locateHeadParams());
        await removeCheckpoint(ckDir, 'optimizer');
      }
    }
    first = false;
  }
  if (done() >= all) {
    await savePackage(vlm, o.out);
    log(`wrote the model package ${o.out} after ${E} + ${steps} + ${R}${L > 0 ? ` + ${L}` : ''} steps (${fmtTime((performance.now() - t0) / 1000)} in this run)`);
  }
  const reached = done();
  dropEncoder();
  trainer?.destroy();
  if (head) destroyHead(head);
  if (locateHead) destroyHead(locateHead);
  const tm = timing.vlm.steps > 0 ? timing.vlm : timing.encoder;
  return { vlm, losses, step: reached, msPerStep: tm.steps ? tm.ms / tm.steps : 0, tokensPerSecond: tm.ms > 0 ? (tm.rows / tm.ms) * 1000 : 0 };
}
