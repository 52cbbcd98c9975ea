// Shared by the nn kernel wrappers: 2D workgroup grids for flat index spaces, and the buffer
// size checks that stand in for robust buffer access (Node runs Dawn with robustness off).
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';

/**
 * A grid of `groups` workgroups folded into x·y with x ≤ the per-dimension limit. Shaders read
 * the flat workgroup index as wid.y · nwg.x + wid.x and bounds-check what overshoots.
 */
export function grid2d(rt: Runtime, groups: number): [number, number] {
  const max = rt.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const gy = Math.ceil(groups / max);
  if (gy > max) throw new EdgeTuneError('TOO_LARGE', `${groups} workgroups exceed this device's ${max}×${max} grid; split the work`);
  return [Math.ceil(groups / gy), gy];
}

/** Throws SHAPE_MISMATCH unless `buf` holds at least `floats` 4-byte elements. */
export function expectFloats(what: string, buf: GPUBuffer, floats: number): void {
  if (buf.size < floats * 4) {
    throw new EdgeTuneError('SHAPE_MISMATCH', `${what} holds ${buf.size / 4} elements, the kernel needs ${floats}`);
  }
}

/** True when every value is a multiple of 4, so quads are aligned vec4 accesses. */
export function aligned4(...xs: number[]): boolean {
  return xs.every((x) => x % 4 === 0);
}
