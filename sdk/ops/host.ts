// Shared pieces of the host-array wrappers (`ops.*`): argument checks, upload/readback.
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from '../gpu/runtime.js';

/** Checks that `x` is a Float32Array of `length` elements; `shape` names it in the message. */
export function expectF32(name: string, x: unknown, length: number, shape: string): Float32Array {
  if (!(x instanceof Float32Array)) {
    throw new EdgeTuneError('INVALID_ARGUMENT', `${name} must be a Float32Array (${shape}), got ${x === null ? 'null' : typeof x}`);
  }
  if (x.length !== length) {
    throw new EdgeTuneError('SHAPE_MISMATCH', `${name} has ${x.length} elements but ${shape} needs ${length}`);
  }
  return x;
}

/** Uploads host arrays, runs `record`, reads back the outputs and frees everything. */
export async function withBuffers<T>(rt: Runtime, inputs: (Float32Array | Int32Array | Uint32Array)[], record: (bufs: GPUBuffer[]) => Promise<T>): Promise<T> {
  const bufs = inputs.map((x) => rt.upload(x));
  try {
    return await record(bufs);
  } finally {
    for (const b of bufs) rt.pool.release(b);
  }
}

