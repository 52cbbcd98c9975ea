// Entry point of the synthetic worlds: sample(world, seed) and the train/val/test splits.
//
// Seeds are unsigned 32-bit integers. A sample is a pure function of (world, seed, size,
// types): the world name is hashed into the generator's seed, so general seed 7 and
// inspection seed 7 are unrelated scenes. Splits own disjoint seed ranges:
//   train: [0, 2^30)   val: [2^30, 2^31)   test: [2^31, 3·2^30)
// so splitSeed(split, i) = base(split) + i with 0 ≤ i < 2^30.
import { EdgeTuneError } from '../errors.js';
import { GENERAL_TYPES, generalSample, generalWords } from './general.js';
import { INSPECTION_TYPES, inspectionSample, inspectionWords } from './inspection.js';
import type { Sample, WorldName, WorldOptions } from './types.js';

export const WORLDS = ['general', 'inspection'] as const satisfies readonly WorldName[];
export const SPLITS = ['train', 'val', 'test'] as const;
export type Split = (typeof SPLITS)[number];
/** Number of seeds each split owns. */
export const SPLIT_SIZE = 2 ** 30;

export const DEFAULT_IMAGE_SIZE = 64;

function checkWorld(world: unknown): WorldName {
  if (world !== 'general' && world !== 'inspection') {
    throw new EdgeTuneError('INVALID_ARGUMENT', `unknown world ${JSON.stringify(world)}; use 'general' or 'inspection'`);
  }
  return world;
}

/** The question form ids of a world. */
export function worldTypes(world: WorldName): readonly string[] {
  return checkWorld(world) === 'general' ? GENERAL_TYPES : INSPECTION_TYPES;
}

/** Every word (no punctuation) a world's questions and answers can contain, sorted, unique. */
export function worldWords(world: WorldName): string[] {
  const words = checkWorld(world) === 'general' ? generalWords() : inspectionWords();
  return [...new Set(words)].sort();
}

/** The seed of the i-th sample of a split (disjoint ranges, see the file comment). */
export function splitSeed(split: Split, i: number): number {
  const k = SPLITS.indexOf(split);
  if (k < 0) throw new EdgeTuneError('INVALID_ARGUMENT', `unknown split ${JSON.stringify(split)}; use 'train', 'val' or 'test'`);
  if (!Number.isInteger(i) || i < 0 || i >= SPLIT_SIZE) throw new EdgeTuneError('OUT_OF_RANGE', `split index must be an integer in [0, 2^30), got ${String(i)}`);
  return k * SPLIT_SIZE + i;
}

/** The split a seed belongs to. */
export function seedSplit(seed: number): Split {
  const k = Math.floor(seed / SPLIT_SIZE);
  if (k > 2) throw new EdgeTuneError('OUT_OF_RANGE', `seed ${seed} is above every split's range`);
  return SPLITS[k]!;
}

/** One sample of a world. */
export function sample(world: WorldName, seed: number, options: WorldOptions = {}): Sample {
  checkWorld(world);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new EdgeTuneError('INVALID_ARGUMENT', `seed must be an integer in [0, 2^32), got ${String(seed)}`);
  }
  const size = options.size ?? DEFAULT_IMAGE_SIZE;
  if (!Number.isInteger(size) || size < 16 || size > 2048) {
    throw new EdgeTuneError('INVALID_ARGUMENT', `image size must be an integer in [16, 2048], got ${String(size)}`);
  }
  const all = worldTypes(world);
  const types = options.types ?? all;
  if (types.length === 0 || types.some((t) => !all.includes(t))) {
    throw new EdgeTuneError('INVALID_ARGUMENT', `question types for the ${world} world must be a non-empty subset of ${all.join(', ')}; got ${JSON.stringify(types)}`);
  }
  return world === 'general' ? generalSample(seed, size, types, options.easy ?? false) : inspectionSample(seed, size, types);
}

/** The i-th sample of a split. */
export function sampleSplit(world: WorldName, split: Split, i: number, options: WorldOptions = {}): Sample {
  return sample(world, splitSeed(split, i), options);
}
