// The shapes of what the synthetic worlds produce (DESIGN §2.2).
import type { RGBAImage } from './image.js';

export type WorldName = 'general' | 'inspection';

/**
 * A labelled box in normalised image coordinates: x grows right, y grows down, (0, 0) is the
 * image's top-left corner and (1, 1) its bottom-right one; x0 ≤ x1, y0 ≤ y1. A box is the
 * tight bounding box of the pixels an object covers (coverage ≥ 0.5): pixel (i, j) spans
 * [i/W, (i+1)/W] × [j/H, (j+1)/H].
 */
export interface LabeledBox {
  label: string;
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** One object drawn in a scene (a shape, a defect) with its box and attributes. */
export interface SceneObject {
  label: string;
  box: LabeledBox;
  /** general: shape, color, size; inspection: kind, severity. */
  attributes: Record<string, string>;
  /** Where it was drawn, normalised (general: centre cx, cy and size r; inspection: centre cx, cy). */
  geometry: Record<string, number>;
}

/**
 * One question-answer sample. `answer` is the answer text without location tokens (for a
 * location question: the label of the box); `boxes` are the boxes the answer points at
 * (empty unless the question asks where something is). formatAnswer(sample, codec) gives
 * the text a model is trained to emit, location tokens included.
 */
export interface Sample {
  world: WorldName;
  seed: number;
  /** The question form id (GENERAL_TYPES / INSPECTION_TYPES). */
  type: string;
  image: RGBAImage;
  question: string;
  answer: string;
  boxes: LabeledBox[];
  /** Everything drawn, in drawing order (for captioners, evaluation and tests). */
  objects: SceneObject[];
  /** general: { background }; inspection: { surface }. */
  scene: Record<string, string>;
}

export interface WorldOptions {
  /** Square image side in pixels (default 64, at least 16). */
  size?: number;
  /** The question forms to draw from, uniformly (default: all forms of the world). */
  types?: readonly string[];
  /**
   * General world: easier scenes (a plain grey background, large and extra-large shapes, the
   * shape of a colour question alone) for the start
   * of pretraining, so the model learns to see before it meets gradients and small shapes.
   */
  easy?: boolean;
}
