// edgetune: run a vision-language model on the device and adapt it there.
export { EdgeTuneError, type EdgeTuneErrorCode } from './errors.js';
export { createRuntime, Runtime, type RuntimeOptions, type AdapterSummary } from './gpu/runtime.js';
export { Batch, Params } from './gpu/launch.js';
export { PipelineCache, type Shader } from './gpu/pipelines.js';
export { BufferPool } from './gpu/buffers.js';
export { Tensor, type DType } from './gpu/tensor.js';
export { recordMatmul, type MatmulArgs } from './kernels/matmul.js';
export * as ops from './ops.js';
export { recordLoss, IGNORE_INDEX, SOFT_TARGET, logitsBytes, type LossArgs, type SoftTable, type GemH } from './kernels/loss.js';
export { recordGroundingLabels, labelAnchors, checkLabelKernel, type GroundingLabelsArgs, type LabelKernel } from './kernels/grounding_labels.js';
export { encodeBox, decodeBox, boxToTokenIds, tokenIdsToBox, isLocToken, pointCell, boxLabelPoints, locCells, KOSMOS2_CODEC, PALIGEMMA_CODEC, FLORENCE2_CODEC, type Box, type LocCodec } from './model/box_codec.js';
export { Linear, type LinearOptions, type AdapterKind, type NamedParam } from './nn/linear.js';
export { recordLoraForward, recordLoraProject, recordLoraBackward, loraStateLayout, dropoutMask, dropoutStepSeed, MAX_RANK, type LoraDims, type DropoutSpec } from './kernels/lora.js';
export { recordDualLoraForward, recordDualLoraProject, recordDualLoraBackward, dualLoraStateLayout } from './kernels/dual_lora.js';
