// Assertions on EdgeTuneError codes, shared by the test files.
import { expect } from 'vitest';
import { EdgeTuneError } from '../../sdk/errors.js';

/** `fn` throws an EdgeTuneError with `code`; returns it. */
export function expectCode(fn: () => unknown, code: string): EdgeTuneError {
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(EdgeTuneError);
  expect((err as EdgeTuneError).code).toBe(code);
  return err as EdgeTuneError;
}

/** `promise` rejects with an EdgeTuneError with `code`; returns it. */
export async function expectRejects(promise: Promise<unknown>, code: string): Promise<EdgeTuneError> {
  const err = await promise.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(EdgeTuneError);
  expect((err as EdgeTuneError).code).toBe(code);
  return err as EdgeTuneError;
}
