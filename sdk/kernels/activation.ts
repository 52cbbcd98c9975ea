// Typed wrappers of shaders/activation.wgsl: SwiGLU and exact (erf) GELU, forward and backward,
// fused elementwise over n elements.
import shader from '../../shaders/activation.wgsl';
import type { Runtime } from '../gpu/runtime.js';
import { Params, type Batch } from '../gpu/launch.js';
import { expectFloats, grid2d } from './grid.js';

const WG = 64;

async function launch(rt: Runtime, batch: Batch, entry: string, n: number, ins: (GPUBuffer | undefined)[], outs: GPUBuffer[]): Promise<void> {
  if (n === 0) return;
  for (const b of ins) if (b) expectFloats(`${entry} input`, b, n);
  for (const b of outs) expectFloats(`${entry} output`, b, n);
  const pipe = await rt.pipelines.get(shader, entry, { VEC: n % 4 === 0 });
  const [in0, in1, in2] = ins;
  batch.dispatch(pipe, new Params().u32(n).u32(0).u32(0).u32(0), [in0, in1, outs[0], in2, outs[1]], grid2d(rt, Math.ceil(n / 4 / WG)));
}

/** h = silu(gate) ⊙ up. */
export function recordSwigluForward(rt: Runtime, batch: Batch, a: { gate: GPUBuffer; up: GPUBuffer; h: GPUBuffer; n: number }): Promise<void> {
  return launch(rt, batch, 'swiglu_forward', a.n, [a.gate, a.up], [a.h]);
}

/** dgate, dup from dh (written, not accumulated). */
export function recordSwigluBackward(rt: Runtime, batch: Batch, a: { gate: GPUBuffer; up: GPUBuffer; dh: GPUBuffer; dgate: GPUBuffer; dup: GPUBuffer; n: number }): Promise<void> {
  return launch(rt, batch, 'swiglu_backward', a.n, [a.gate, a.up, a.dh], [a.dgate, a.dup]);
}

/** y = gelu(z), the exact erf form. */
export function recordGeluForward(rt: Runtime, batch: Batch, a: { z: GPUBuffer; y: GPUBuffer; n: number }): Promise<void> {
  return launch(rt, batch, 'gelu_forward', a.n, [a.z], [a.y]);
}

/** dz = dy ⊙ gelu'(z). */
export function recordGeluBackward(rt: Runtime, batch: Batch, a: { z: GPUBuffer; dy: GPUBuffer; dz: GPUBuffer; n: number }): Promise<void> {
  return launch(rt, batch, 'gelu_backward', a.n, [a.z, a.dy], [a.dz]);
}
