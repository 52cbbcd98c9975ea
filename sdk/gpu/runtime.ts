// The Runtime: one GPUDevice plus what every kernel needs (pipeline cache, buffer pool).
import { EdgeTuneError } from '../errors.js';
import { BufferPool } from './buffers.js';
import { PipelineCache } from './pipelines.js';
import { Batch, type OpProfiler } from './launch.js';
import { settle } from './wait.js';

export interface RuntimeOptions {
  /** An existing device, e.g. the one onnxruntime-web uses, so that both share buffers. */
  device?: GPUDevice;
  /** Adapter preference for a new device. */
  powerPreference?: GPUPowerPreference;
  /** Node only: allow the SwiftShader software fallback (default true). */
  allowSoftware?: boolean;
  /**
   * Node only: keep Dawn's robust buffer access (default false: edgetune's kernels check
   * their own bounds, and the clamps cost ~10% of software-adapter matmul throughput).
   * Browsers always keep robustness.
   */
  robust?: boolean;
  /**
   * Node only: how the runtime waits for the GPU. Dawn's Node binding polls for as long as a GPU
   * promise is pending, which keeps a core busy; the runtime sleeps the thread between polls
   * instead, at most this many ms at a time (default 1; 0 leaves Dawn's polling as it is).
   * Ignored in browsers.
   */
  waitSliceMs?: number;
}

export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for a CPU-emulated adapter (SwiftShader). */
  software: boolean;
}

export class Runtime {
  readonly device: GPUDevice;
  readonly adapter: AdapterSummary;
  readonly limits: GPUSupportedLimits;
  readonly features: ReadonlySet<string>;
  /** Resolves when the device is lost (or destroyed); never swallowed. */
  readonly lost: Promise<GPUDeviceLostInfo>;
  readonly pipelines: PipelineCache;
  readonly pool: BufferPool;
  /** A 16-byte buffer bound where a kernel's optional input is absent. */
  readonly dummy: GPUBuffer;
  /** Longest sleep between polls while waiting for the GPU (ms); 0: Dawn's own polling (RuntimeOptions.waitSliceMs). */
  readonly waitSliceMs: number;
  /**
   * When set, every batch submits and waits for its ops one at a time and reports each with its
   * time (Batch.submit): where a step's time goes, kernel by kernel (`npm run bench -- profile`).
   * Results are the same; the step is slower (a submit and a wait per op). null: off.
   */
  profiler: OpProfiler | null = null;
  private isLost = false;

  constructor(device: GPUDevice, adapter: AdapterSummary, waitSliceMs = 0) {
    this.device = device;
    this.adapter = adapter;
    this.waitSliceMs = waitSliceMs;
    this.limits = device.limits;
    this.features = new Set(device.features as unknown as Iterable<string>);
    this.lost = device.lost.then((info) => {
      this.isLost = true;
      return info;
    });
    this.pipelines = new PipelineCache(device);
    this.pool = new BufferPool(device);
    this.dummy = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, label: 'dummy' });
  }

  get isDeviceLost(): boolean {
    return this.isLost;
  }

  /** Throws DEVICE_LOST when the device is gone. */
  assertAlive(): void {
    if (this.isLost) {
      throw new EdgeTuneError('DEVICE_LOST', 'the GPU device was lost; create a new runtime with createRuntime()');
    }
  }

  /** Resolves as the GPU promise `p` does; in Node, sleeping between polls (wait.ts) rather than spinning. */
  settle<T>(p: Promise<T>): Promise<T> {
    return this.waitSliceMs > 0 ? settle(p, this.waitSliceMs) : p;
  }

  /** A new batch of dispatches, recorded into one command encoder. */
  batch(label?: string): Batch {
    this.assertAlive();
    return new Batch(this, label);
  }

  /** Copies a typed array into a new pooled storage buffer. */
  upload(data: Float32Array | Int32Array | Uint32Array, label?: string): GPUBuffer {
    this.assertAlive();
    const buf = this.pool.acquire(data.byteLength, label);
    if (data.byteLength > 0) this.device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
    return buf;
  }

  /** Reads `byteLength` bytes of `buffer` (from `offset`) back to the host. */
  async read(buffer: GPUBuffer, byteLength: number, offset = 0): Promise<ArrayBuffer> {
    this.assertAlive();
    const size = Math.max(4, Math.ceil(byteLength / 4) * 4);
    const staging = this.device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = this.device.createCommandEncoder({ label: 'readback' });
    enc.copyBufferToBuffer(buffer, offset, staging, 0, size);
    this.device.queue.submit([enc.finish()]);
    try {
      await this.settle(staging.mapAsync(GPUMapMode.READ));
    } catch (cause) {
      this.assertAlive();
      throw cause;
    }
    const out = staging.getMappedRange().slice(0, byteLength);
    staging.unmap();
    staging.destroy();
    return out;
  }

  async readF32(buffer: GPUBuffer, count: number, offset = 0): Promise<Float32Array> {
    return new Float32Array(await this.read(buffer, count * 4, offset * 4));
  }

  async readI32(buffer: GPUBuffer, count: number, offset = 0): Promise<Int32Array> {
    return new Int32Array(await this.read(buffer, count * 4, offset * 4));
  }

  /** Releases the device. `lost` resolves with reason 'destroyed'. */
  destroy(): void {
    this.pool.clear();
    this.device.destroy();
  }
}

function summarize(info: GPUAdapterInfo | undefined): AdapterSummary {
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const device = info?.device ?? '';
  const description = info?.description ?? '';
  const software = /swiftshader|llvmpipe|lavapipe|software/i.test(`${vendor} ${architecture} ${device} ${description}`);
  return { vendor, architecture, device, description, software };
}

function isNode(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } }; navigator?: Navigator };
  return !!g.process?.versions?.node && !g.navigator?.gpu;
}

/** Asks the adapter for its best limits (big buffers, big workgroup memory). */
function wantedLimits(adapter: GPUAdapter): Record<string, number> {
  const keys = [
    'maxBufferSize',
    'maxStorageBufferBindingSize',
    'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup',
    'maxComputeWorkgroupSizeX',
    'maxComputeWorkgroupSizeY',
    'maxStorageBuffersPerShaderStage',
    'maxComputeWorkgroupsPerDimension',
  ] as const;
  const out: Record<string, number> = {};
  for (const k of keys) out[k] = adapter.limits[k];
  return out;
}

/** The waitSliceMs of a runtime: options.waitSliceMs (a number ≥ 0) in Node, default 1; 0 in browsers. */
function waitSlice(options: RuntimeOptions): number {
  const v = options.waitSliceMs;
  if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) {
    throw new EdgeTuneError('INVALID_ARGUMENT', `waitSliceMs must be a number of milliseconds ≥ 0, got ${String(v)}`);
  }
  return isNode() ? (v ?? 1) : 0;
}

/** Creates the runtime: a browser/worker `navigator.gpu` device, or Dawn in Node. */
export async function createRuntime(options: RuntimeOptions = {}): Promise<Runtime> {
  const slice = waitSlice(options);
  if (options.device) {
    const info = (options.device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    return new Runtime(options.device, summarize(info), slice);
  }
  let adapter: GPUAdapter | null = null;
  if (isNode()) {
    const { requestNodeAdapter } = await import('./node-gpu.js');
    adapter = await requestNodeAdapter(options.powerPreference, options.allowSoftware ?? true, options.robust ?? false);
  } else {
    const gpu = (globalThis as { navigator?: Navigator }).navigator?.gpu;
    if (!gpu) {
      throw new EdgeTuneError(
        'NO_WEBGPU',
        'this browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome/Edge, or Chromium with --enable-unsafe-webgpu.',
      );
    }
    adapter = await gpu.requestAdapter(options.powerPreference ? { powerPreference: options.powerPreference } : {});
    if (!adapter) {
      throw new EdgeTuneError('NO_WEBGPU', 'navigator.gpu.requestAdapter() returned no adapter. Enable hardware acceleration, or start Chromium with --enable-unsafe-webgpu --enable-unsafe-swiftshader.');
    }
  }
  let device: GPUDevice;
  try {
    const requiredFeatures = (['subgroups', 'timestamp-query'] as GPUFeatureName[]).filter((f) => adapter!.features.has(f));
    device = await adapter.requestDevice({ requiredLimits: wantedLimits(adapter), requiredFeatures });
  } catch (cause) {
    throw new EdgeTuneError('NO_WEBGPU', `the adapter refused to create a device: ${String(cause)}`, { cause });
  }
  return new Runtime(device, summarize(adapter.info), slice);
}
