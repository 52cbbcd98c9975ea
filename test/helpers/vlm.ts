// The engine's logits for a VLM micro-batch (forward only), for float64 checks of the loss.
import { Tensor } from '../../sdk/gpu/tensor.js';
import type { VlmBatch, VlmTrainer } from '../../sdk/train/vlm_trainer.js';

/** (B·S, V) logits of `mb` under the trainer's model. */
export async function batchLogits(tr: VlmTrainer, mb: VlmBatch): Promise<Float32Array> {
  const out = Tensor.empty(tr.rt, [4]);
  const batch = tr.rt.batch('logits');
  const lg = await tr.recordMicro(batch, mb, out, { backward: false });
  await batch.submit();
  const logits = await lg.read();
  out.release();
  return logits;
}
