// edgetune: run a vision-language model on the device and adapt it there.
export { EdgeTuneError, type EdgeTuneErrorCode } from './errors.js';
export { createRuntime, Runtime, type RuntimeOptions, type AdapterSummary } from './gpu/runtime.js';
export { Batch, Params } from './gpu/launch.js';
export { PipelineCache, type Shader } from './gpu/pipelines.js';
export { BufferPool } from './gpu/buffers.js';
export { Tensor, type DType } from './gpu/tensor.js';
export { recordMatmul, type MatmulArgs } from './kernels/matmul.js';
export * as ops from './ops.js';
