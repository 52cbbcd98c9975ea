// Buffer pool: storage buffers are recycled by size class instead of created per step.
// Every pooled buffer is a multiple of 16 bytes, so kernels may view it as array<vec4<f32>>.


export function storageUsage(): GPUBufferUsageFlags {
  return GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
}

/** Size class: next multiple of 16 below 4 KiB, else the next of 8 steps per power of two. */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes / 16) * 16);
  if (b <= 4096) return b;
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 8;
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private readonly device: GPUDevice;
  private readonly free = new Map<number, GPUBuffer[]>();
  private readonly owned = new Set<GPUBuffer>();
  /** Bytes currently held by live (acquired) buffers, and the high-water mark. */
  liveBytes = 0;
  peakBytes = 0;
  /** Bytes of every buffer the pool created (live and free): what it holds on the GPU. */
  allocatedBytes = 0;

  constructor(device: GPUDevice) {
    this.device = device;
  }

  /** A storage buffer of at least `bytes` (contents undefined unless `zero`; new buffers start zeroed). */
  acquire(bytes: number, label?: string, zero = false): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.free.get(size);
    let buf = list?.pop();
    if (!buf) {
      buf = this.device.createBuffer({ size, usage: storageUsage(), label });
      this.owned.add(buf);
      this.allocatedBytes += size;
    } else if (zero) {
      const enc = this.device.createCommandEncoder();
      enc.clearBuffer(buf);
      this.device.queue.submit([enc.finish()]);
    }
    this.liveBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.liveBytes);
    return buf;
  }

  /** Returns a buffer to the pool. Work already submitted that uses it stays valid (queue order). */
  release(buf: GPUBuffer | undefined | null): void {
    if (!buf || !this.owned.has(buf)) return;
    this.liveBytes -= buf.size;
    let list = this.free.get(buf.size);
    if (!list) this.free.set(buf.size, (list = []));
    list.push(buf);
  }

  /** Destroys the free buffers (live ones stay): the GPU memory that released tensors held. Returns the bytes freed. */
  trim(): number {
    let freed = 0;
    for (const list of this.free.values()) {
      for (const b of list) {
        this.owned.delete(b);
        freed += b.size;
        b.destroy();
      }
    }
    this.free.clear();
    this.allocatedBytes -= freed;
    return freed;
  }

  resetPeak(): void {
    this.peakBytes = this.liveBytes;
  }

  clear(): void {
    for (const b of this.owned) b.destroy();
    this.owned.clear();
    this.free.clear();
    this.liveBytes = 0;
    this.allocatedBytes = 0;
  }
}
