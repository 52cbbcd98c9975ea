// The runtime: adapter info, shared devices, device loss, compile errors that name
// file:line, the pipeline cache and the batch recorder.
import { describe, expect, test } from 'vitest';
import { createRuntime, EdgeTuneError, Params, Tensor, type OpProfile } from '../sdk/index.js';
import { testRuntime } from './helpers/runtime.js';

describe('runtime', () => {
  test('reports the adapter, limits and features', async () => {
    const rt = await testRuntime();
    expect(typeof rt.adapter.vendor).toBe('string');
    expect(rt.adapter.vendor.length + rt.adapter.architecture.length + rt.adapter.description.length).toBeGreaterThan(0);
    expect(rt.limits.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(16384);
    expect(rt.features).toBeInstanceOf(Set);
    if (rt.adapter.architecture === 'swiftshader') expect(rt.adapter.software).toBe(true);
  });

  test('without the software fallback: a hardware adapter or NO_WEBGPU', async () => {
    let rt2;
    try {
      rt2 = await createRuntime({ allowSoftware: false });
    } catch (e) {
      expect(e).toBeInstanceOf(EdgeTuneError);
      expect((e as EdgeTuneError).code).toBe('NO_WEBGPU');
      expect((e as Error).message).toMatch(/setup-webgpu|VK_ICD_FILENAMES/);
      return;
    }
    expect(rt2.device).toBeDefined();
    rt2.destroy();
  });

  test('accepts an existing device and shares it', async () => {
    const rt = await testRuntime();
    const shared = await createRuntime({ device: rt.device });
    expect(shared.device).toBe(rt.device);
    const t = Tensor.from(shared, new Float32Array([1, 2, 3]), [3]);
    expect(Array.from(await rt.readF32(t.buffer, 3))).toEqual([1, 2, 3]);
    t.release();
  });

  test('device loss is exposed, and later work throws DEVICE_LOST', async () => {
    const rt = await createRuntime();
    rt.destroy();
    const info = await rt.lost;
    expect(info.reason).toBe('destroyed');
    expect(rt.isDeviceLost).toBe(true);
    expect(() => rt.batch()).toThrow(EdgeTuneError);
    try {
      rt.upload(new Float32Array(4));
    } catch (e) {
      expect((e as EdgeTuneError).code).toBe('DEVICE_LOST');
    }
    expect(() => rt.upload(new Float32Array(4))).toThrow(/lost/);
  });
});

describe('pipelines and batches', () => {
  const good = {
    name: 'scale.wgsl',
    code: `struct P { n: u32, s: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < p.n) { x[g.x] = x[g.x] * p.s + OFFSET; }
}`,
  };

  test('each shader + constants combination compiles once', async () => {
    const rt = await testRuntime();
    const before = rt.pipelines.compiled;
    const p1 = await rt.pipelines.get(good, 'main', { OFFSET: 1.5 });
    const p2 = await rt.pipelines.get(good, 'main', { OFFSET: 1.5 });
    const p3 = await rt.pipelines.get(good, 'main', { OFFSET: 2.5 });
    expect(p1).toBe(p2);
    expect(p3).not.toBe(p1);
    expect(rt.pipelines.compiled - before).toBe(2);
  });

  test('one batch runs many dispatches in order with their own params', async () => {
    const rt = await testRuntime();
    const pipe = await rt.pipelines.get(good, 'main', { OFFSET: 0.5 });
    const x = Tensor.from(rt, new Float32Array([1, 2, 3, 4, 5]), [5]);
    const batch = rt.batch('two steps');
    batch.dispatch(pipe, new Params().u32(5).f32(2), [x.buffer], [1]);
    batch.dispatch(pipe, new Params().u32(3).f32(10), [x.buffer], [1]);
    expect(batch.size).toBe(2);
    await batch.submit();
    // first: 2x + 0.5; second (first 3 only): 10y + 0.5
    expect(Array.from(await x.read())).toEqual([25.5, 45.5, 65.5, 8.5, 10.5]);
    x.release();
  });

  test('a profiled batch (rt.profiler) runs the same ops in order, reports each with its time, and runs onDone once', async () => {
    const rt = await testRuntime();
    const pipe = await rt.pipelines.get(good, 'main', { OFFSET: 0.5 });
    const record = (x: Tensor, y: Tensor, done: () => void) => {
      const b = rt.batch('profiled');
      b.dispatch(pipe, new Params().u32(5).f32(2), [x.buffer], [1]);
      b.copy(x.buffer, 0, y.buffer, 0, 12);
      b.dispatch(pipe, new Params().u32(3).f32(10), [x.buffer], [1]);
      b.clear(x.buffer, 16, 4);
      b.onDone(done);
      return b;
    };
    const run = async (profile: boolean) => {
      const x = Tensor.from(rt, new Float32Array([1, 2, 3, 4, 5]), [5]), y = Tensor.zeros(rt, [5]);
      const ops: OpProfile[] = [];
      let done = 0;
      rt.profiler = profile ? (op) => ops.push(op) : null;
      try {
        await record(x, y, () => done++).submit();
      } finally {
        rt.profiler = null;
      }
      const out = [Array.from(await x.read()), Array.from(await y.read())];
      x.release();
      y.release();
      return { out, ops, done };
    };
    const plain = await run(false), profiled = await run(true);
    expect(plain.out).toEqual([[25.5, 45.5, 65.5, 8.5, 0], [2.5, 4.5, 6.5, 0, 0]]);
    expect(profiled.out).toEqual(plain.out);
    expect(plain.ops).toEqual([]);
    expect(profiled.ops.map((o) => o.kind)).toEqual(['dispatch', 'copy', 'dispatch', 'clear']);
    expect(profiled.ops[0]!.label).toMatch(/^scale\.wgsl#main/);
    expect(profiled.ops[0]!.groups).toEqual([1, 1, 1]);
    for (const o of profiled.ops) expect(o.ms).toBeGreaterThanOrEqual(0);
    expect([plain.done, profiled.done]).toEqual([1, 1]);
    // A failing op still rejects as an EdgeTuneError when profiled.
    rt.profiler = () => {};
    try {
      const bad = rt.batch('bad binding, profiled');
      bad.dispatch(pipe, new Params().u32(1).f32(1), [], [1]);
      await expect(bad.submit()).rejects.toMatchObject({ code: 'GPU_ERROR' });
    } finally {
      rt.profiler = null;
    }
  });

  test('a compile error names the WGSL file and line', async () => {
    const rt = await testRuntime();
    const bad = { name: 'broken.wgsl', code: 'fn ok() {}\n\n@compute @workgroup_size(1)\nfn main() {\n  let x: f32 = undefined_thing;\n}\n' };
    await expect(rt.pipelines.get(bad, 'main', { A: 1 })).rejects.toThrow(/broken\.wgsl:5:/);
    await expect(rt.pipelines.get(bad, 'main')).rejects.toMatchObject({ code: 'SHADER_COMPILE' });
  });

  test('a validation error at submit is an EdgeTuneError', async () => {
    const rt = await testRuntime();
    const pipe = await rt.pipelines.get(good, 'main', { OFFSET: { f32: 0 } });
    const batch = rt.batch('bad binding');
    batch.dispatch(pipe, new Params().u32(1).f32(1), [], [1]); // missing binding 1
    await expect(batch.submit()).rejects.toMatchObject({ code: 'GPU_ERROR' });
  });

  test('dispatches over the per-dimension limit are refused', async () => {
    const rt = await testRuntime();
    const pipe = await rt.pipelines.get(good, 'main', { OFFSET: { f32: 0 } });
    expect(() => rt.batch().dispatch(pipe, null, [], [rt.limits.maxComputeWorkgroupsPerDimension + 1])).toThrow(/exceeds/);
  });

  test('the buffer pool recycles buffers by size class', async () => {
    const rt = await testRuntime();
    const a = rt.pool.acquire(1000);
    expect(a.size % 16).toBe(0);
    expect(a.size).toBeGreaterThanOrEqual(1000);
    rt.pool.release(a);
    const b = rt.pool.acquire(996);
    expect(b).toBe(a);
    rt.pool.release(b);
  });

  test('tensors check their shapes', async () => {
    const rt = await testRuntime();
    expect(() => Tensor.from(rt, new Float32Array(5), [2, 3])).toThrow(EdgeTuneError);
    const t = Tensor.from(rt, new Int32Array([7, -8]), [2]);
    expect(t.dtype).toBe('i32');
    expect(Array.from(await t.readInt())).toEqual([7, -8]);
    t.release();
  });
});

describe('waiting for the GPU in Node (sdk/gpu/wait.ts)', () => {
  test('settle resolves and rejects as the promise does, and timers run while it waits', async () => {
    const { settle } = await import('../sdk/gpu/wait.js');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const v = await settle(new Promise<number>((r) => setTimeout(() => r(42), 60)), 1);
    clearInterval(timer);
    expect(v).toBe(42);
    expect(ticks).toBeGreaterThan(0);
    const err = new Error('boom');
    await expect(settle(Promise.reject(err), 1)).rejects.toBe(err);
  });

  test('a runtime waits in slices of 1 ms by default; waitSliceMs 0 gives the same results; a bad value is INVALID_ARGUMENT', async () => {
    const rt = await testRuntime();
    expect(rt.waitSliceMs).toBe(1);
    await expect(createRuntime({ waitSliceMs: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(createRuntime({ waitSliceMs: Number.NaN })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const spin = await createRuntime({ waitSliceMs: 0 });
    expect(spin.waitSliceMs).toBe(0);
    const { ops } = await import('../sdk/index.js');
    const m = 37, k = 29, n = 19;
    const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i)), b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
    const c1 = await ops.matmul(rt, a, b, { m, k, n });
    const c0 = await ops.matmul(spin, a, b, { m, k, n });
    expect(Array.from(c1)).toEqual(Array.from(c0));
    spin.destroy();
  });
});
