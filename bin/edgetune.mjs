#!/usr/bin/env node
// edgetune command line. `edgetune selfcheck` prints the WebGPU adapter and checks a
// matmul against a float64 CPU reference; `ask`, `eval` and `demo` run a model package (the
// embedded one by default).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const BUNDLE = new URL('../dist/edgetune.js', import.meta.url);
if (!existsSync(fileURLToPath(BUNDLE))) {
  console.error('edgetune: the SDK is not built (dist/edgetune.js is missing): run `npm install` (it builds) or `npm run build` in the edgetune directory');
  process.exit(1);
}
const { createRuntime, ops, EdgeTuneError, VLM, readImage, sampleSplit, evaluate, mulberry32, iou, normaliseAnswer, encodePNG } = await import(BUNDLE.href);

const [cmd = 'selfcheck', ...rest] = process.argv.slice(2);

async function selfcheck() {
  const rt = await createRuntime();
  const a = rt.adapter;
  console.log(`adapter: vendor=${a.vendor || '?'} architecture=${a.architecture || '?'} (${a.description || a.device || 'no description'})${a.software ? ' [software]' : ''}`);
  console.log(`limits: maxStorageBufferBindingSize=${rt.limits.maxStorageBufferBindingSize} maxComputeWorkgroupStorageSize=${rt.limits.maxComputeWorkgroupStorageSize}`);
  let worst = 0;
  const shapes = [[1, 1, 1], [7, 13, 5], [33, 65, 17], [128, 96, 80]];
  for (const [m, k, n] of shapes) {
    for (const transB of [false, true]) {
      const u = mulberry32(m * 31 + k * 7 + n);
      const r = () => u() - 0.5;
      const x = Float32Array.from({ length: m * k }, r);
      const y = Float32Array.from({ length: k * n }, r);
      const t0 = performance.now();
      const got = await ops.matmul(rt, x, y, { m, k, n, transB });
      const ms = performance.now() - t0;
      let err = 0, scale = 1;
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let s = 0;
        for (let l = 0; l < k; l++) s += x[i * k + l] * (transB ? y[j * k + l] : y[l * n + j]);
        scale = Math.max(scale, Math.abs(s));
        err = Math.max(err, Math.abs(s - got[i * n + j]));
      }
      worst = Math.max(worst, err / scale);
      console.log(`matmul ${m}×${k}×${n}${transB ? ' (Bᵀ)' : ''}: rel. error ${(err / scale).toExponential(2)} in ${ms.toFixed(1)} ms`);
    }
  }
  const ok = worst <= 1e-4;
  console.log(`self-check: ${ok ? 'PASS' : 'FAIL'} (worst relative error ${worst.toExponential(2)}, limit 1e-4)`);
  rt.destroy();
  return ok ? 0 : 1;
}

/** `--name value` pairs. */
function flags(args) {
  const out = {};
  for (let i = 0; i < args.length; i++) {
    if (!args[i].startsWith('--')) throw new EdgeTuneError('INVALID_ARGUMENT', `unexpected argument '${args[i]}'`);
    out[args[i].slice(2)] = args[i + 1];
    i++;
  }
  return out;
}

/** The ask options of --box-views N (boxes averaged over N shifted views; 0: as generated), else none. */
function askOptions(f) {
  if (f['box-views'] === undefined) return {};
  const v = Number(f['box-views']);
  if (!Number.isInteger(v) || v < 0) throw new EdgeTuneError('INVALID_ARGUMENT', `--box-views must be a non-negative integer, got ${f['box-views']}`);
  return { boxViews: v };
}

const EMBEDDED = fileURLToPath(new URL('../models/tiny-vlm', import.meta.url));

/** edgetune ask --image <png|jpeg> --question "<text>" [--model <package dir>] [--max-new-tokens N] */
async function ask(args) {
  const f = flags(args);
  if (!f.image || !f.question) throw new EdgeTuneError('INVALID_ARGUMENT', 'usage: edgetune ask --image <png|jpeg> --question "<text>" [--model <dir>] [--max-new-tokens N] [--box-views N]');
  const model = requireModel(f);
  const image = await readImage(f.image);
  const vlm = await VLM.load(model);
  const r = await vlm.ask(image, f.question, { maxNewTokens: f['max-new-tokens'] ? Number(f['max-new-tokens']) : undefined, ...askOptions(f) });
  console.log(JSON.stringify({ text: r.text, boxes: r.boxes, tokens: r.tokens, logprob: r.logprob }));
  return 0;
}

function requireModel(f) {
  const model = f.model ?? EMBEDDED;
  if (!existsSync(`${model}/config.json`)) {
    throw new EdgeTuneError('BAD_CONFIG', `${model} holds no model package (config.json, tokenizer.json, *.onnx)${f.model ? '' : ': the embedded model has not been pretrained and exported yet; pass --model <dir> of a package written by savePackage'}`);
  }
  return model;
}

/** edgetune eval --world general|inspection [--n 1000] [--json] [--model <dir>]: test-split metrics. */
async function evalCmd(args) {
  const json = args.includes('--json');
  const f = flags(args.filter((a) => a !== '--json'));
  const world = f.world ?? 'general';
  if (world !== 'general' && world !== 'inspection') throw new EdgeTuneError('INVALID_ARGUMENT', `--world must be general or inspection, got ${world}`);
  const n = Number(f.n ?? 1000);
  if (!Number.isInteger(n) || n < 1) throw new EdgeTuneError('INVALID_ARGUMENT', `--n must be a positive integer, got ${f.n}`);
  const opts = askOptions(f);
  const vlm = await VLM.load(requireModel(f));
  const samples = [], preds = [];
  for (let i = 0; i < n; i++) {
    const s = sampleSplit(world, 'test', i);
    const r = await vlm.ask(s.image, s.question, opts);
    const w = s.image.width, h = s.image.height;
    samples.push(s);
    preds.push({ text: r.text, boxes: r.boxes.map((b) => ({ label: b.label, x0: b.x0 / w, y0: b.y0 / h, x1: b.x1 / w, y1: b.y1 / h })) });
    if (!json && (i + 1) % 100 === 0) console.error(`${i + 1}/${n}`);
  }
  const rep = evaluate(samples, preds);
  if (json) console.log(JSON.stringify({ exactMatch: rep.exactMatch, iouAt50: rep.iouAt50, meanIoU: rep.meanIoU, captionF1: rep.captionF1, byType: rep.byType }));
  else {
    console.log(`${world} world, ${n} test samples: exact match ${(100 * rep.exactMatch).toFixed(1)}%, IoU≥0.5 ${(100 * rep.iouAt50).toFixed(1)}%, mean IoU ${rep.meanIoU.toFixed(3)}, caption F1 ${rep.captionF1.toFixed(3)}`);
    for (const [t, v] of Object.entries(rep.byType)) console.log(`  ${t.padEnd(10)} ${v.n} samples, ${(100 * v.score).toFixed(1)}%`);
  }
  return 0;
}

/** ' [x0, y0, x1, y1] …' of boxes in pixels, rounded; '' for none. */
function pixelBoxes(boxes) {
  return boxes.map((b) => ` [${[b.x0, b.y0, b.x1, b.y1].map((v) => v.toFixed(0)).join(', ')}]`).join('');
}

/**
 * edgetune demo [--n 6] [--model <dir>] [--out <dir>]: the embedded model on held-out samples of
 * both worlds, one line each (question, expected answer, the model's, IoU for boxes); with --out
 * the images are written there as PNG files, to look at or to pass to `edgetune ask`.
 */
async function demo(args) {
  const f = flags(args);
  const n = Number(f.n ?? 6);
  if (!Number.isInteger(n) || n < 1) throw new EdgeTuneError('INVALID_ARGUMENT', `--n must be a positive integer, got ${f.n}`);
  const opts = askOptions(f);
  const vlm = await VLM.load(requireModel(f));
  if (f.out) mkdirSync(f.out, { recursive: true });
  for (const world of ['general', 'inspection']) {
    console.log(`${world} world (${world === 'general' ? 'pretraining domain' : 'held out: zero-shot, what adaptation is for'}), test split:`);
    for (let i = 0; i < n; i++) {
      const s = sampleSplit(world, 'test', i);
      const r = await vlm.ask(s.image, s.question, opts);
      const w = s.image.width, h = s.image.height;
      let score = '';
      if (s.boxes.length > 0) {
        const b = r.boxes[0];
        score = b ? `  IoU ${iou({ x0: b.x0 / w, y0: b.y0 / h, x1: b.x1 / w, y1: b.y1 / h }, s.boxes[0]).toFixed(2)}` : '  no box';
      } else if (s.type !== 'caption') score = normaliseAnswer(r.text) === normaliseAnswer(s.answer) ? '  right' : '  wrong';
      let file = '';
      if (f.out) {
        file = `${f.out}/${world}-${i}.png`;
        writeFileSync(file, encodePNG(s.image));
        file = `  (${file})`;
      }
      const truth = s.boxes.map((b) => ({ x0: b.x0 * w, y0: b.y0 * h, x1: b.x1 * w, y1: b.y1 * h }));
      console.log(`  ${s.question}  expected: ${s.answer}${pixelBoxes(truth)}  model: ${r.text}${pixelBoxes(r.boxes)}${score}${file}`);
    }
  }
  return 0;
}

const commands = { selfcheck, ask, eval: evalCmd, demo };
try {
  if (!(cmd in commands)) {
    console.error(`unknown command '${cmd}'. Commands: ${Object.keys(commands).join(', ')}`);
    process.exit(2);
  }
  process.exit(await commands[cmd](rest));
} catch (e) {
  if (e instanceof EdgeTuneError) {
    console.error(`edgetune: ${e.code}: ${e.message}`);
    process.exit(1);
  }
  throw e;
}
