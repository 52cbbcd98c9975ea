// Builds dist/: the SDK bundle (ESM, browsers and Node), worker entries, the demo page,
// and .d.ts files. `.wgsl` imports go through scripts/wgsl.mjs (shared with vitest).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { wgslEsbuildPlugin } from './scripts/wgsl.mjs';

const quick = process.argv.includes('--no-types');
const common = {
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  sourcemap: true,
  plugins: [wgslEsbuildPlugin()],
  // Node-only modules are loaded lazily behind runtime checks and never bundled.
  external: ['webgpu', 'node:*', 'onnxruntime-web', 'onnxruntime-web/*'],
  logLevel: 'warning',
};

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist', { recursive: true });
await build({ ...common, entryPoints: ['sdk/index.ts'], outfile: 'dist/edgetune.js' });

const workers = existsSync('workers') ? readdirSync('workers').filter((f) => f.endsWith('.ts')) : [];
for (const w of workers) {
  await build({ ...common, entryPoints: [`workers/${w}`], outfile: `dist/${w.replace(/\.ts$/, '.js')}` });
}

if (existsSync('demo/main.ts')) {
  mkdirSync('dist/demo', { recursive: true });
  await build({ ...common, platform: 'browser', external: [], entryPoints: ['demo/main.ts'], outfile: 'dist/demo/main.js' });
  for (const f of readdirSync('demo')) if (!f.endsWith('.ts')) cpSync(`demo/${f}`, `dist/demo/${f}`, { recursive: true });
}

if (!quick) {
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.'], { stdio: 'inherit' });
}
console.log(`built dist/edgetune.js${workers.length ? `, ${workers.length} worker(s)` : ''}${quick ? '' : ', types'}`);
