// The setup that pretraining's benches share: the tiny VLM (random init, seed 0), its region head
// and pretraining's batch of 16, and the encoder and VLM phases' trainers on them.
import * as et from '../dist/edgetune.js';

export const B = 16;

export function tinyPretrainSetup(rt) {
  const tok = et.Tokenizer.fromJSON(et.buildTokenizerJSON());
  const vlm = new et.VLM(rt, et.tinyVlmConfig(tok.vocabSize), tok, 0);
  const head = et.regionHead(vlm, 0);
  const encoderTrainer = () => new et.EncoderTrainer(vlm, { lr: 1e-3, head });
  const vlmTrainer = () => new et.VlmTrainer(vlm, { mode: 'full', lr: 1e-3, grounding: et.PRETRAIN_GROUNDING, regionHead: head });
  return { vlm, head, encoderTrainer, vlmTrainer };
}
