// Waiting for the GPU in Node without spinning a core.
//
// Dawn's Node binding resolves its promises (onSubmittedWorkDone, mapAsync, popErrorScope) by
// polling its event queue from setImmediate callbacks for as long as one is pending: the main
// thread runs at 100% of a core while the GPU works. With a software adapter the "GPU" is
// SwiftShader's worker threads, and on a 2-core machine that spinning thread takes a core from
// them: a pretraining step of the tiny VLM took 3.9 s while waiting like that and 2.3 s with the
// main thread asleep (README: Runtime, "Waiting for the GPU in Node").
//
// settle(p) instead sleeps the thread in short slices (Atomics.wait, which blocks without using
// the CPU) and turns the event loop once between slices, so that Dawn polls once per slice: the
// promise resolves at most one slice late, and timers and I/O still run every slice. The first
// slices are short (a small batch on a real GPU finishes in microseconds) and grow to `sliceMs`.

const FIRST_SLICE_MS = 0.05;

let cell: Int32Array | null = null;

/** Blocks the calling thread for `ms` (Atomics.wait on a cell nobody notifies). */
function sleepThread(ms: number): void {
  cell ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(cell, 0, 0, ms);
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Resolves as `p` does, sleeping the thread between event-loop turns until it settles; `sliceMs`
 * is the longest sleep (ms). Node only: browsers forbid Atomics.wait on the main thread, and their
 * WebGPU does not spin.
 */
export async function settle<T>(p: Promise<T>, sliceMs: number): Promise<T> {
  let done = false;
  const mark = () => {
    done = true;
  };
  p.then(mark, mark);
  await turn();
  let slice = FIRST_SLICE_MS;
  while (!done) {
    sleepThread(slice);
    await turn();
    slice = Math.min(sliceMs, slice * 2);
  }
  return p;
}
