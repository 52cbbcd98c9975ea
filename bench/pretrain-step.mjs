// `npm run bench -- pretrain-step [reps]`: where a step of `npm run pretrain` goes, on the tiny
// VLM (random init) with pretraining's batches of 16: the encoder phase's step, the VLM phase's
// forward and loss alone (vision, connector, decoder, answer and region-head CE), and its whole
// step (plus backward through decoder, connector and vision, and AdamW), at the sequence lengths
// of an early (easy scenes) and a late (whole world) batch. Medians of `reps` runs after one.
import * as et from '../dist/edgetune.js';
import { timeIt } from './_time.mjs';
import { B, tinyPretrainSetup } from './_pretrain.mjs';

export default async function (rt, args) {
  const reps = Number(args[0] ?? 3);
  const { vlm, head, encoderTrainer, vlmTrainer } = tinyPretrainSetup(rt);
  const enc = encoderTrainer();
  const eb = et.encoderBatch(vlm, 1, B);
  const im = vlm.cfg.vision.imageSize;
  const pixels = et.Tensor.from(rt, eb.pixels, [B, 3, im, im]);
  const forwardMs = (part) => timeIt(async () => {
    const b = rt.batch('vision');
    await part.forward(b, pixels);
    await b.submit();
  }, { reps });
  const visMs = await forwardMs(vlm.vision);
  const stem = vlm.vision.stem ? ` (its convolutional stem alone: ${(await forwardMs(vlm.vision.stem)).toFixed(0)} ms)` : '';
  pixels.release();
  console.log(`vision encoder forward alone: ${visMs.toFixed(0)} ms${stem} (${B} images of ${im}×${im})`);
  const encMs = await timeIt(() => enc.trainStep(eb), { reps });
  console.log(`encoder phase: ${encMs.toFixed(0)} ms/step (${B} images: vision forward + backward, region head, AdamW)`);
  enc.destroy();
  const tr = vlmTrainer();
  const out = et.Tensor.empty(rt, [4]);
  for (const [what, t, easy] of [['easy scenes', 300, true], ['whole world', 1400, false]]) {
    const mb = et.pretrainBatch(vlm, t, B, et.PRETRAIN_MIX, () => easy);
    const forward = async () => {
      const b = rt.batch('forward');
      await tr.recordMicro(b, mb, out, { backward: false });
      await b.submit();
    };
    const fMs = await timeIt(forward, { reps });
    const sMs = await timeIt(() => tr.trainStep(mb), { reps });
    const rows = mb.batch * mb.seq;
    console.log(`VLM phase, ${what} (${B}×${mb.seq} rows): forward + loss ${fMs.toFixed(0)} ms, whole step ${sMs.toFixed(0)} ms (backward + AdamW ${(sMs - fMs).toFixed(0)} ms), ${((rows / sMs) * 1000).toFixed(0)} rows/s`);
  }
  out.release();
  tr.destroy();
  et.destroyHead(head);
}
