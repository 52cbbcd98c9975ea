// Headless Chromium (Debian's binary, software WebGPU through SwiftShader) driven by
// playwright-core, serving an esbuild bundle of the SDK from a loopback HTTP server.
import { build } from 'esbuild';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { wgslEsbuildPlugin } from '../../scripts/wgsl.mjs';

export const CHROMIUM = process.env.EDGETUNE_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--enable-unsafe-webgpu', '--enable-unsafe-swiftshader', '--use-angle=swiftshader',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
];

export interface BrowserFixture {
  browser: Browser;
  page: Page;
  url: string;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.html': 'text/html', '.png': 'image/png' };

/** The page's default HTML: onnxruntime-web by import map (served at /ort/), the SDK as window.sdk. */
export const SDK_PAGE = '<!doctype html><title>edgetune</title><script type="importmap">{"imports":{"onnxruntime-web":"/ort/ort.bundle.min.mjs"}}</script><script type="module">import * as sdk from "/edgetune.js"; window.sdk = sdk;</script>';

/**
 * Bundles sdk/index.ts for browsers, serves it with `html`, and opens it in Chromium. `mounts`
 * serve directories under URL prefixes (`/ort/` serves onnxruntime-web's dist always).
 */
export async function openSdkPage(html = SDK_PAGE, mounts: Record<string, string> = {}): Promise<BrowserFixture> {
  const dirs: Record<string, string> = { '/ort/': path.resolve('node_modules/onnxruntime-web/dist'), ...mounts };
  const dir = mkdtempSync(path.join(tmpdir(), 'edgetune-browser-'));
  await build({
    entryPoints: ['sdk/index.ts'], outfile: path.join(dir, 'edgetune.js'), bundle: true, format: 'esm',
    platform: 'browser', target: 'es2022', plugins: [wgslEsbuildPlugin()], external: ['webgpu', 'node:*', 'onnxruntime-web'], logLevel: 'silent',
  });
  writeFileSync(path.join(dir, 'index.html'), html);
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0]!;
    const mount = Object.keys(dirs).find((m) => url.startsWith(m));
    const name = url === '/' ? 'index.html' : path.basename(url);
    try {
      const body = readFileSync(path.join(mount ? dirs[mount]! : dir, name));
      res.writeHead(200, { 'content-type': TYPES[path.extname(name)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const page = await browser.newPage();
  const url = `http://127.0.0.1:${port}/`;
  await page.goto(url);
  // The page's module exposes the SDK as window.sdk (page.evaluate bodies cannot use import()).
  await page.waitForFunction(() => 'sdk' in window);
  return {
    browser, page, url,
    async close() {
      await browser.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
