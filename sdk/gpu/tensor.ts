// Tensor: a pooled GPU buffer with a shape. Data stays on the GPU; `read` is for tests,
// results and checkpoints.
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from './runtime.js';

export type DType = 'f32' | 'i32' | 'u32';

export class Tensor {
  readonly rt: Runtime;
  readonly buffer: GPUBuffer;
  readonly shape: readonly number[];
  readonly dtype: DType;
  private released = false;

  constructor(rt: Runtime, buffer: GPUBuffer, shape: readonly number[], dtype: DType = 'f32') {
    this.rt = rt;
    this.buffer = buffer;
    this.shape = [...shape];
    this.dtype = dtype;
  }

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** A new uninitialised tensor (zeroed when `zero`). */
  static empty(rt: Runtime, shape: readonly number[], opts: { dtype?: DType; zero?: boolean; label?: string } = {}): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    return new Tensor(rt, rt.pool.acquire(n * 4, opts.label, opts.zero), shape, opts.dtype ?? 'f32');
  }

  static zeros(rt: Runtime, shape: readonly number[], dtype: DType = 'f32'): Tensor {
    return Tensor.empty(rt, shape, { dtype, zero: true });
  }

  /** Uploads host data; its length must match the shape. */
  static from(rt: Runtime, data: Float32Array | Int32Array | Uint32Array, shape: readonly number[]): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) {
      throw new EdgeTuneError('SHAPE_MISMATCH', `data has ${data.length} elements but shape [${shape.join(', ')}] needs ${n}`);
    }
    const dtype: DType = data instanceof Int32Array ? 'i32' : data instanceof Uint32Array ? 'u32' : 'f32';
    return new Tensor(rt, rt.upload(data), shape, dtype);
  }

  /** Overwrites the contents from host data of the same size. */
  write(data: Float32Array | Int32Array | Uint32Array): void {
    if (data.length !== this.size) throw new EdgeTuneError('SHAPE_MISMATCH', `write of ${data.length} elements into a tensor of ${this.size}`);
    this.rt.device.queue.writeBuffer(this.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
  }

  async read(): Promise<Float32Array> {
    return this.rt.readF32(this.buffer, this.size);
  }

  async readInt(): Promise<Int32Array> {
    return this.rt.readI32(this.buffer, this.size);
  }

  /** Returns the buffer to the pool; the tensor must not be used afterwards. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.rt.pool.release(this.buffer);
  }
}
