// Node: WebGPU through Dawn (the `webgpu` package). With no hardware adapter on Linux,
// fall back to SwiftShader's Vulkan driver as shipped by Debian's `chromium` package.
import { EdgeTuneError } from '../errors.js';

export const SWIFTSHADER_ICD_PATHS = [
  '/usr/lib/chromium/vk_swiftshader_icd.json',
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json',
  '/usr/lib64/chromium/vk_swiftshader_icd.json',
];

const HOW_TO =
  'Install a GPU driver with Vulkan support, or on Debian/Ubuntu without a GPU run ' +
  '`bash scripts/setup-webgpu` (it installs `chromium` for its SwiftShader Vulkan driver and ' +
  '`libvulkan1`), or set VK_ICD_FILENAMES to a vk_swiftshader_icd.json.';

const instances: GPU[] = [];

type NodeGpuModule = { create(flags: string[]): GPU; globals: Record<string, unknown> };

async function loadDawn(): Promise<NodeGpuModule> {
  const name = 'webgpu';
  try {
    return (await import(/* @vite-ignore */ name)) as NodeGpuModule;
  } catch (cause) {
    throw new EdgeTuneError('NO_WEBGPU', `could not load the 'webgpu' package (Dawn for Node): ${String(cause)}. Run \`npm install webgpu\`.`, { cause });
  }
}

async function fileExists(p: string): Promise<boolean> {
  const fs = await import('node:fs');
  return fs.existsSync(p);
}

/** Finds the SwiftShader ICD json: EDGETUNE_SWIFTSHADER_ICD, then the usual Debian paths. */
export async function findSwiftShaderIcd(): Promise<string | null> {
  const env = process.env.EDGETUNE_SWIFTSHADER_ICD;
  if (env && (await fileExists(env))) return env;
  for (const p of SWIFTSHADER_ICD_PATHS) if (await fileExists(p)) return p;
  return null;
}

export async function requestNodeAdapter(
  powerPreference: GPUPowerPreference | undefined,
  allowSoftware: boolean,
  robust: boolean,
): Promise<GPUAdapter> {
  const flags = dawnFlags(robust);
  const dawn = await loadDawn();
  // Dawn's classes (GPUBufferUsage, GPUShaderStage, ...) must be global for WebGPU code.
  for (const [k, v] of Object.entries(dawn.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  const opts: GPURequestAdapterOptions = powerPreference ? { powerPreference } : {};
  // The GPU instance must stay reachable: it drives every pending promise of its devices.
  let gpu = dawn.create(flags);
  instances.push(gpu);
  let adapter = await gpu.requestAdapter(opts);
  if (!adapter && allowSoftware && process.platform === 'linux' && !process.env.VK_ICD_FILENAMES) {
    const icd = await findSwiftShaderIcd();
    if (icd) {
      process.env.VK_ICD_FILENAMES = icd;
      gpu = dawn.create(flags);
      instances.push(gpu);
      adapter = await gpu.requestAdapter(opts);
    }
  }
  if (!adapter) {
    throw new EdgeTuneError('NO_WEBGPU', `no WebGPU adapter found in Node. ${HOW_TO}`);
  }
  return adapter;
}

/**
 * Dawn instance flags. Without `robust`, Dawn's robustness transform is off: every edgetune
 * kernel bounds-checks its own accesses (the tests run ragged shapes on every kernel), and
 * on SwiftShader the per-access clamps cost about 10% of matmul throughput (more on
 * load-heavy kernels).
 * EDGETUNE_DAWN_FLAGS (space-separated) adds flags.
 */
function dawnFlags(robust: boolean): string[] {
  const extra = (process.env.EDGETUNE_DAWN_FLAGS ?? '').split(/\s+/).filter(Boolean);
  return robust ? extra : ['enable-dawn-features=disable_robustness', ...extra];
}
