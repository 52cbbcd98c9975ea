/** Every error the SDK throws is an EdgeTuneError with a stable `code`. */
export type EdgeTuneErrorCode =
  | 'NO_WEBGPU'
  | 'DEVICE_LOST'
  | 'SHADER_COMPILE'
  | 'GPU_ERROR'
  | 'SHAPE_MISMATCH'
  | 'NON_FINITE'
  | 'INVALID_ARGUMENT'
  | 'OUT_OF_RANGE'
  | 'TOO_LARGE'
  | 'EMPTY_DATASET'
  | 'BAD_ONNX'
  | 'UNSUPPORTED_OP'
  | 'BAD_CONFIG'
  | 'UNKNOWN_FAMILY'
  | 'CORRUPT_ADAPTER'
  | 'STORE_FAILED'
  | 'DESTROYED';

export class EdgeTuneError extends Error {
  readonly code: EdgeTuneErrorCode;
  constructor(code: EdgeTuneErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EdgeTuneError';
    this.code = code;
  }
}

/** Throws SHAPE_MISMATCH unless `cond` holds. */
export function expectShape(cond: boolean, message: string): asserts cond {
  if (!cond) throw new EdgeTuneError('SHAPE_MISMATCH', message);
}

/** Throws INVALID_ARGUMENT unless `n` is a positive integer (or zero when allowed). */
export function expectDim(name: string, n: unknown, allowZero = false): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < (allowZero ? 0 : 1)) {
    throw new EdgeTuneError(
      'INVALID_ARGUMENT',
      `${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${String(n)}`,
    );
  }
  return n;
}

/** Throws NON_FINITE naming the first bad element of `data`. */
export function expectFinite(name: string, data: ArrayLike<number>): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isFinite(v)) {
      throw new EdgeTuneError(
        'NON_FINITE',
        `${name}[${i}] is ${v}; inputs must be finite numbers (check the data or lower the learning rate)`,
      );
    }
  }
}
