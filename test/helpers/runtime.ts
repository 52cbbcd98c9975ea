import { createRuntime, type Runtime } from '../../sdk/index.js';

let shared: Promise<Runtime> | null = null;
/** One runtime per test file (software WebGPU on CI). */
export function testRuntime(): Promise<Runtime> {
  shared ??= createRuntime();
  return shared;
}
