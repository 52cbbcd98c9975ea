#!/usr/bin/env node
// Renders samples of both worlds to PNG so a person can look at them, and prints each
// sample's question and answer. Usage:
//   node scripts/render-samples.mjs [--out dir] [--n 8] [--size 64] [--scale 4] [--split val]
import { mkdirSync, writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import { importTs } from './import-ts.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const out = opt('out', 'scratch/samples');
const n = Number(opt('n', 8));
const size = Number(opt('size', 64));
const scale = Number(opt('scale', 4));
const split = opt('split', 'val');

const et = await importTs('sdk/index.ts');
mkdirSync(out, { recursive: true });

/** Nearest-neighbour upscale so that small images are easy to look at. */
function upscale(img, k) {
  const w = img.width * k, h = img.height * k;
  const data = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const s = ((Math.floor(y / k) * img.width) + Math.floor(x / k)) * 4, d = (y * w + x) * 4;
    data.set(img.data.subarray(s, s + 4), d);
  }
  return { width: w, height: h, data };
}

/** A grid of images with a 2-pixel gap. */
function sheet(images, cols) {
  const w = images[0].width, h = images[0].height, g = 2;
  const rows = Math.ceil(images.length / cols);
  const W = cols * (w + g) + g, H = rows * (h + g) + g;
  const data = new Uint8ClampedArray(W * H * 4).fill(255);
  images.forEach((img, i) => {
    const ox = g + (i % cols) * (w + g), oy = g + Math.floor(i / cols) * (h + g);
    for (let y = 0; y < h; y++) data.set(img.data.subarray(y * w * 4, (y + 1) * w * 4), ((oy + y) * W + ox) * 4);
  });
  return { width: W, height: H, data };
}

const codec = et.TINY_VLM_CODEC;
for (const world of et.WORLDS) {
  const imgs = [];
  const lines = [];
  for (let i = 0; i < n; i++) {
    const s = et.sampleSplit(world, split, i, { size });
    imgs.push(upscale(s.image, scale));
    lines.push(`${world} ${split} ${i} [${s.type}] ${s.question} → ${et.formatAnswer(s, codec)}`);
    for (const o of s.objects) lines.push(`    ${o.label} (${Object.values(o.attributes).join(', ')}) box ${[o.box.x0, o.box.y0, o.box.x1, o.box.y1].map((v) => v.toFixed(3)).join(' ')}`);
  }
  const file = `${out}/${world}.png`;
  writeFileSync(file, et.encodePNG(sheet(imgs, 4), { deflate: (d) => deflateSync(d) }));
  console.log(lines.join('\n'));
  console.log(`wrote ${file}`);
}
