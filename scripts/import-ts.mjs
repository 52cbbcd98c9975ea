// Imports a TypeScript module of the SDK from a Node script: esbuild bundles it (with the
// same .wgsl transform as the build) into a temporary ES module, which is then imported.
import { build } from 'esbuild';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { wgslEsbuildPlugin } from './wgsl.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** `entry` is relative to the repository root (or absolute). */
export async function importTs(entry) {
  const result = await build({
    entryPoints: [path.resolve(root, entry)],
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'es2022',
    write: false,
    external: ['webgpu', 'onnxruntime-web', 'onnxruntime-web/*'],
    plugins: [wgslEsbuildPlugin()],
    logLevel: 'warning',
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'edgetune-'));
  const file = path.join(dir, 'module.mjs');
  writeFileSync(file, result.outputFiles[0].text);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
