// The one mechanism that turns a `.wgsl` file into a JS module, shared by build.mjs
// (esbuild plugin) and vitest.config.mjs (vite plugin). The module exports
// `{ name, code }` so that a compile error can name the file.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export function wgslModule(source, file) {
  const name = path.basename(file);
  return `export default ${JSON.stringify({ name, code: source })};\n`;
}

export function wgslEsbuildPlugin() {
  return {
    name: 'wgsl',
    setup(build) {
      build.onLoad({ filter: /\.wgsl$/ }, async (args) => ({
        contents: wgslModule(await readFile(args.path, 'utf8'), args.path),
        loader: 'js',
      }));
    },
  };
}

export function wgslVitePlugin() {
  return {
    name: 'wgsl',
    enforce: 'pre',
    async load(id) {
      const file = id.split('?')[0];
      if (!file.endsWith('.wgsl')) return null;
      return { code: wgslModule(await readFile(file, 'utf8'), file), map: null };
    },
  };
}
