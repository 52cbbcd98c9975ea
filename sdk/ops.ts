// `ops`: host-array wrappers of every kernel (Float32Array in, Float32Array out).
// Each call uploads, records one batch, submits and reads back; the engine keeps data on
// the GPU instead. One file per kernel family under sdk/ops/.
export * from './ops/matmul.js';
export * from './ops/loss.js';
export * from './ops/lora.js';
export * from './ops/nn.js';
export * from './ops/attention.js';
