// `npm run bench -- train-step`: tokens/s of a forward + backward + AdamW step of a 4-layer
// decoder (d = 256, 256 tokens), in full mode and in adapter mode (LoRA r = 8 on q and v),
// the peak GPU memory of each, and KV-cache generation tokens/s.
import { LlamaDecoder, Trainer, generate } from '../dist/edgetune.js';

const CFG = { layers: 4, dModel: 256, heads: 4, kvHeads: 2, dFf: 688, vocab: 512, ropeTheta: 10000, maxPositions: 512 };
const MB = (x) => `${(x / 2 ** 20).toFixed(1)} MiB`;

function batchOf(B, S, seed) {
  let s = seed;
  const r = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const ids = Int32Array.from({ length: B * S }, () => Math.floor(r() * CFG.vocab));
  const targets = Int32Array.from({ length: B * S }, (_, i) => ((i + 1) % S === 0 ? -100 : ids[i + 1]));
  return { batch: B, seq: S, ids, targets };
}

export default async function (rt, args) {
  const steps = Number(args[0] ?? 3);
  const mb = batchOf(1, 256, 1);
  console.log(`decoder: ${CFG.layers} layers, d=${CFG.dModel}, heads ${CFG.heads}/${CFG.kvHeads}, dFf ${CFG.dFf}, vocab ${CFG.vocab}; step of ${mb.batch}×${mb.seq} tokens`);
  for (const mode of ['full', 'adapter']) {
    const model = new LlamaDecoder(rt, CFG, 1);
    const trainer = new Trainer(rt, model, { mode, adapter: { kind: 'lora', rank: 8, targets: ['q_proj', 'v_proj'] }, lr: 1e-3 });
    const t0 = performance.now();
    const first = await trainer.trainStep(mb);
    const tFirst = performance.now() - t0;
    let peak = first.peakBytes;
    const t1 = performance.now();
    for (let i = 0; i < steps; i++) peak = Math.max(peak, (await trainer.trainStep(mb)).peakBytes);
    const ms = (performance.now() - t1) / steps;
    const params = trainer.optimizer.params.reduce((s, p) => s + p.value.size, 0);
    console.log(`${mode.padEnd(8)} ${(256 / (ms / 1000)).toFixed(0).padStart(6)} tokens/s  (${ms.toFixed(0)} ms/step; first step ${tFirst.toFixed(0)} ms incl. pipelines)  trainable ${params} params, optimizer state ${MB(trainer.optimizer.stateBytes)}, peak live GPU memory ${MB(peak)}, pooled ${MB(first.pooledBytes)}`);
    trainer.destroy();
    rt.pool.clear?.();
  }
  const model = new LlamaDecoder(rt, CFG, 2);
  const prompt = Int32Array.from({ length: 32 }, (_, i) => (i * 7) % CFG.vocab);
  await generate(model, prompt, { maxNewTokens: 4 });
  const n = 32;
  const t0 = performance.now();
  const g = await generate(model, prompt, { maxNewTokens: n });
  const ms = performance.now() - t0;
  console.log(`generation: ${(g.tokens.length / (ms / 1000)).toFixed(1)} tokens/s (${g.tokens.length} tokens after a 32-token prompt, greedy, KV cache)`);
}
