// The command line as a user runs it (the built bundle, dist/edgetune.js): the pretraining
// smoke run (`npm run pretrain -- --smoke`) writes a model package that `edgetune ask` and
// `edgetune eval --json` then use; bad input exits 1 with the error's code; the embedded
// model in models/tiny-vlm answers from the repository as cloned.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodePNG } from '../sdk/data/png.js';
import { sampleSplit } from '../sdk/data/worlds.js';

const node = process.execPath;
let tmp: string;
let pkg: string;

function run(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(node, args, { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

beforeAll(() => {
  // The CLI runs the bundle: build it as `npm install` does.
  execFileSync(node, ['build.mjs', '--no-types'], { stdio: 'pipe' });
  tmp = mkdtempSync(path.join(tmpdir(), 'edgetune-cli-'));
  pkg = path.join(tmp, 'pkg');
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('pretraining smoke run and the CLI', () => {
  test('npm run pretrain -- --smoke writes a loadable model package', () => {
    const r = run(['scripts/pretrain.mjs', '--smoke', '--steps', '6', '--out', pkg, '--checkpoints', path.join(tmp, 'ck'), '--checkpoint-every', '2']);
    expect(r.code, r.err).toBe(0);
    // 2 encoder steps (PRETRAIN_ENCODER_FRACTION, 1/3, of 6), then the VLM's 6, then 2 of the refine phase (PRETRAIN_REFINE_FRACTION, 5/16, of 6),
    // then 4 of the locate phase (PRETRAIN_LOCATE_FRACTION, 5/8, of 6; the smoke config has a stem skip, which trains there).
    expect(r.out).toContain('2 encoder + 6 + 2 refine + 4 locate steps');
    expect(r.out).toMatch(/step 2\/14 encoder {2}loss \d+\.\d+/);
    expect(r.out).toMatch(/step 8\/14 vlm {2}loss \d+\.\d+/);
    expect(r.out).toMatch(/step 10\/14 refine {2}loss \d+\.\d+/);
    expect(r.out).toMatch(/step 14\/14 locate {2}loss \d+\.\d+/);
    expect(r.out).toContain(`wrote the model package ${pkg}`);
    for (const f of ['config.json', 'tokenizer.json', 'vision_encoder.onnx', 'embed_tokens.onnx', 'decoder_model_merged.onnx']) expect(existsSync(path.join(pkg, f)), f).toBe(true);
    expect(JSON.parse(readFileSync(path.join(pkg, 'config.json'), 'utf8')).family).toBe('edgetune-tiny-vlm');
    // Resuming a finished run from its last checkpoint reaches the same step count.
    const again = run(['scripts/pretrain.mjs', '--smoke', '--steps', '6', '--out', path.join(tmp, 'pkg2'), '--checkpoints', path.join(tmp, 'ck'), '--resume']);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toContain('resumed from');
    expect(again.out).toMatch(/done: step 14/);
    // --locate-from: the locate phase alone, from the package the first run wrote.
    const located = run(['scripts/pretrain.mjs', '--smoke', '--steps', '6', '--locate-from', pkg, '--out', path.join(tmp, 'pkg3'), '--checkpoints', path.join(tmp, 'ck3')]);
    expect(located.code, located.err).toBe(0);
    expect(located.out).toContain(`starting the locate phase at step 10 from the weights of ${pkg}`);
    expect(located.out).toMatch(/step 14\/14 locate {2}loss \d+\.\d+/);
    expect(located.out).not.toMatch(/step \d+\/14 (encoder|vlm|refine) /);
    expect(existsSync(path.join(tmp, 'pkg3', 'decoder_model_merged.onnx'))).toBe(true);
  });

  test('edgetune ask prints the answer as JSON for PNG and JPEG images', () => {
    const s = sampleSplit('general', 'test', 3);
    const png = path.join(tmp, 'q.png');
    writeFileSync(png, encodePNG(s.image));
    const r = run(['bin/edgetune.mjs', 'ask', '--model', pkg, '--image', png, '--question', s.question, '--max-new-tokens', '6']);
    expect(r.code, r.err).toBe(0);
    const a = JSON.parse(r.out);
    // --box-views 0: the boxes as generated; the answer's tokens are the same either way.
    const plain = run(['bin/edgetune.mjs', 'ask', '--model', pkg, '--image', png, '--question', s.question, '--max-new-tokens', '6', '--box-views', '0']);
    expect(plain.code, plain.err).toBe(0);
    expect(JSON.parse(plain.out).tokens).toEqual(a.tokens);
    expect(typeof a.text).toBe('string');
    expect(Array.isArray(a.boxes)).toBe(true);
    expect(a.tokens.length).toBeGreaterThan(0);
    expect(a.tokens.length).toBeLessThanOrEqual(6);
    expect(Number.isFinite(a.logprob) && a.logprob <= 0).toBe(true);
    const jpgs = readdirSync('test/fixtures/jpeg').filter((f) => f.endsWith('.jpg'));
    expect(jpgs.length).toBeGreaterThan(0);
    const j = run(['bin/edgetune.mjs', 'ask', '--model', pkg, '--image', path.join('test/fixtures/jpeg', jpgs[0]!), '--question', 'what shape is this?', '--max-new-tokens', '3']);
    expect(j.code, j.err).toBe(0);
    expect(JSON.parse(j.out).tokens.length).toBeGreaterThan(0);
  });

  test('edgetune eval --json prints the metrics with rates in [0, 1]', () => {
    const r = run(['bin/edgetune.mjs', 'eval', '--model', pkg, '--world', 'inspection', '--n', '6', '--json']);
    expect(r.code, r.err).toBe(0);
    const m = JSON.parse(r.out);
    for (const k of ['exactMatch', 'iouAt50', 'meanIoU']) expect(m[k] >= 0 && m[k] <= 1, `${k} = ${m[k]}`).toBe(true);
    const n = Object.values(m.byType as Record<string, { n: number; score: number }>).reduce((a, t) => a + t.n, 0);
    expect(n).toBe(6);
  });

  test('bad input exits 1 with the error code', () => {
    const png = path.join(tmp, 'q.png');
    const empty = run(['bin/edgetune.mjs', 'ask', '--model', pkg, '--image', png, '--question', '  ']);
    expect(empty.code).toBe(1);
    expect(empty.err).toMatch(/INVALID_ARGUMENT/);
    const notImage = path.join(tmp, 'x.png');
    writeFileSync(notImage, 'hello');
    const bad = run(['bin/edgetune.mjs', 'ask', '--model', pkg, '--image', notImage, '--question', 'what shape is this?']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/INVALID_ARGUMENT: the image bytes are neither PNG nor JPEG/);
    const broken = path.join(tmp, 'broken');
    mkdirSync(broken);
    for (const f of readdirSync(pkg)) if (f.includes('.')) copyFileSync(path.join(pkg, f), path.join(broken, f));
    writeFileSync(path.join(broken, 'vision_encoder.onnx'), readFileSync(path.join(pkg, 'vision_encoder.onnx')).subarray(0, 500));
    const corrupt = run(['bin/edgetune.mjs', 'ask', '--model', broken, '--image', png, '--question', 'what shape is this?']);
    expect(corrupt.code).toBe(1);
    expect(corrupt.err).toMatch(/BAD_ONNX/);
    const views = run(['bin/edgetune.mjs', 'ask', '--model', pkg, '--image', png, '--question', 'where is the red star?', '--box-views', '-1']);
    expect(views.code).toBe(1);
    expect(views.err).toMatch(/INVALID_ARGUMENT: --box-views must be a non-negative integer/);
    const tooMany = run(['bin/edgetune.mjs', 'ask', '--model', pkg, '--image', png, '--question', 'where is the red star?', '--box-views', '17']);
    expect(tooMany.code).toBe(1);
    expect(tooMany.err).toMatch(/INVALID_ARGUMENT: boxViews must be an integer in \[0, 16\]/);
    const none = run(['bin/edgetune.mjs', 'ask', '--model', tmp, '--image', png, '--question', 'what shape is this?']);
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/BAD_CONFIG/);
  });

  test('the embedded model answers out of the box', () => {
    expect(existsSync('models/tiny-vlm/config.json'), 'models/tiny-vlm is the committed default model').toBe(true);
    const s = sampleSplit('general', 'test', 0);
    const png = path.join(tmp, 'embedded.png');
    writeFileSync(png, encodePNG(s.image));
    const r = run(['bin/edgetune.mjs', 'ask', '--image', png, '--question', s.question]);
    expect(r.code, r.err).toBe(0);
    const a = JSON.parse(r.out);
    expect(a.tokens.at(-1)).toBeDefined();
    expect(typeof a.text).toBe('string');
  });

  test('edgetune demo (npm start) asks the embedded model about held-out samples of both worlds and writes their images', () => {
    const out = path.join(tmp, 'demo');
    const r = run(['bin/edgetune.mjs', 'demo', '--n', '2', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    // A heading and two sample lines per world, each with the question, the expected answer and the model's.
    expect(lines.filter((l) => /world/.test(l)).length).toBe(2);
    const asked = lines.filter((l) => l.startsWith('  '));
    expect(asked.length).toBe(4);
    for (const [k, world] of [[0, 'general'], [2, 'inspection']] as const) {
      for (const i of [0, 1]) {
        const s = sampleSplit(world, 'test', i);
        expect(asked[k + i]).toContain(`${s.question}  expected: ${s.answer}`);
        expect(asked[k + i]).toMatch(/ model: .*(right|wrong|IoU \d\.\d\d|no box|\.png\))/);
        expect(readFileSync(path.join(out, `${world}-${i}.png`)).subarray(1, 4).toString()).toBe('PNG');
      }
    }
    expect(run(['bin/edgetune.mjs', 'demo', '--n', '0']).err).toMatch(/INVALID_ARGUMENT/);
  });
});
