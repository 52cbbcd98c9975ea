// Kernel launch: a Batch records dispatches and encodes them into ONE command encoder and
// ONE compute pass on submit. Each dispatch's parameters live in a 256-byte slot of one
// uniform arena per batch (a single writeBuffer), bound at @binding(0); storage buffers
// follow at @binding(1..n) in the order given.
import { EdgeTuneError } from '../errors.js';
import type { Runtime } from './runtime.js';

/** Packs a params struct of 4-byte scalars in declaration order. */
export class Params {
  private readonly view: DataView;
  private offset = 0;
  constructor(maxFields = 64) {
    this.view = new DataView(new ArrayBuffer(maxFields * 4));
  }
  u32(v: number): this {
    this.view.setUint32(this.offset, v >>> 0, true);
    this.offset += 4;
    return this;
  }
  i32(v: number): this {
    this.view.setInt32(this.offset, v | 0, true);
    this.offset += 4;
    return this;
  }
  f32(v: number): this {
    this.view.setFloat32(this.offset, v, true);
    this.offset += 4;
    return this;
  }
  /** The bytes, padded to 16 (uniform structs round up to 16). */
  bytes(): Uint8Array {
    const n = Math.max(16, Math.ceil(this.offset / 16) * 16);
    return new Uint8Array(this.view.buffer, 0, n);
  }
}

export type Binding = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number } | undefined;

interface Op {
  kind: 'dispatch';
  pipeline: GPUComputePipeline;
  params: Uint8Array | null;
  buffers: Binding[];
  groups: [number, number, number];
}
interface Copy {
  kind: 'copy';
  src: GPUBuffer;
  srcOffset: number;
  dst: GPUBuffer;
  dstOffset: number;
  size: number;
}
interface Clear {
  kind: 'clear';
  buffer: GPUBuffer;
  offset: number;
  size?: number;
}

const SLOT = 256;

/** One op of a profiled batch (`rt.profiler`): its pipeline's label (shader#entry#defines) or 'copy' / 'clear', its grid, and the wall time of its own submit and wait. */
export interface OpProfile {
  kind: 'dispatch' | 'copy' | 'clear';
  label: string;
  groups?: [number, number, number];
  ms: number;
}

export type OpProfiler = (op: OpProfile) => void;

export class Batch {
  private readonly rt: Runtime;
  private readonly label: string | undefined;
  private readonly ops: (Op | Copy | Clear)[] = [];
  private readonly after: (() => void)[] = [];
  private submitted = false;

  constructor(rt: Runtime, label?: string) {
    this.rt = rt;
    this.label = label;
  }

  get size(): number {
    return this.ops.length;
  }

  dispatch(pipeline: GPUComputePipeline, params: Params | Uint8Array | null, buffers: Binding[], groups: [number, number?, number?]): this {
    const [x, y = 1, z = 1] = groups;
    const max = this.rt.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new EdgeTuneError('TOO_LARGE', `dispatch of ${x}×${y}×${z} workgroups exceeds this device's limit of ${max} per dimension; split the work`);
    }
    if (x === 0 || y === 0 || z === 0) return this;
    const p = params instanceof Params ? params.bytes() : params;
    this.ops.push({ kind: 'dispatch', pipeline, params: p ? p.slice() : null, buffers, groups: [x, y, z] });
    return this;
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): this {
    this.ops.push({ kind: 'copy', src, srcOffset, dst, dstOffset, size });
    return this;
  }

  clear(buffer: GPUBuffer, offset = 0, size?: number): this {
    this.ops.push({ kind: 'clear', buffer, offset, size });
    return this;
  }

  /** Runs `fn` after the batch's work completed (e.g. to release temporaries). */
  onDone(fn: () => void): this {
    this.after.push(fn);
    return this;
  }

  /**
   * Encodes everything into one command encoder and submits it. With a profiler on the runtime
   * (`rt.profiler`), each op is encoded, submitted and waited for alone and reported with its time:
   * the same work in the same order, so the same results, at the cost of a submit per op.
   */
  submit(): Promise<void> {
    if (this.submitted) throw new EdgeTuneError('INVALID_ARGUMENT', 'a batch can be submitted once');
    this.submitted = true;
    this.rt.assertAlive();
    const report = this.rt.profiler;
    const done = report ? this.runEach(report) : this.run(this.ops);
    const after = () => {
      for (const fn of this.after) fn();
    };
    return done.then(after, (e: unknown) => {
      after();
      throw e;
    });
  }

  private async runEach(report: OpProfiler): Promise<void> {
    for (const o of this.ops) {
      const t0 = performance.now();
      await this.run([o]);
      const ms = performance.now() - t0;
      if (o.kind === 'dispatch') report({ kind: 'dispatch', label: o.pipeline.label, groups: o.groups, ms });
      else report({ kind: o.kind, label: o.kind, ms });
    }
  }

  /** Encodes `ops` into one command encoder (one compute pass per run of dispatches), submits it and waits. */
  private run(ops: (Op | Copy | Clear)[]): Promise<void> {
    const device = this.rt.device;
    const nParams = ops.filter((o) => o.kind === 'dispatch' && o.params).length;
    let arena: GPUBuffer | null = null;
    if (nParams > 0) {
      const host = new Uint8Array(nParams * SLOT);
      arena = device.createBuffer({ size: host.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'params' });
      let slot = 0;
      for (const o of ops) if (o.kind === 'dispatch' && o.params) host.set(o.params, SLOT * slot++);
      device.queue.writeBuffer(arena, 0, host);
    }
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const enc = device.createCommandEncoder({ label: this.label });
    let pass: GPUComputePassEncoder | null = null;
    let slot = 0;
    for (const o of ops) {
      if (o.kind === 'dispatch') {
        const entries: GPUBindGroupEntry[] = [];
        if (o.params) entries.push({ binding: 0, resource: { buffer: arena!, offset: SLOT * slot++, size: o.params.byteLength } });
        o.buffers.forEach((b, i) => {
          if (!b) return;
          entries.push({ binding: i + 1, resource: 'buffer' in b ? b : { buffer: b } });
        });
        const group = device.createBindGroup({ layout: o.pipeline.getBindGroupLayout(0), entries });
        if (!pass) pass = enc.beginComputePass();
        pass.setPipeline(o.pipeline);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(...o.groups);
      } else {
        if (pass) {
          pass.end();
          pass = null;
        }
        if (o.kind === 'copy') enc.copyBufferToBuffer(o.src, o.srcOffset, o.dst, o.dstOffset, o.size);
        else enc.clearBuffer(o.buffer, o.offset, o.size);
      }
    }
    if (pass) pass.end();
    device.queue.submit([enc.finish()]);
    const validation = device.popErrorScope();
    const oom = device.popErrorScope();
    const label = this.label ?? 'batch';
    return this.rt.settle(Promise.all([validation, oom, device.queue.onSubmittedWorkDone()])).then(([v, o]) => {
      arena?.destroy();
      if (o) throw new EdgeTuneError('TOO_LARGE', `${label}: the GPU ran out of memory (${o.message}); use smaller batches or inputs`);
      if (v) throw new EdgeTuneError('GPU_ERROR', `${label}: WebGPU rejected the work: ${v.message}`);
    });
  }
}
