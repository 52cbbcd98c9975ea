// Reading bytes from where a user points: a URL (fetch; every location outside Node) or a
// Node file path. Used for model packages and images.
import { EdgeTuneError, type EdgeTuneErrorCode } from './errors.js';

export function inNode(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } } };
  return !!g.process?.versions?.node;
}

/** Whether `location` is fetched (a URL, or anything outside Node) rather than read from disk. */
export function isRemote(location: string): boolean {
  return /^(https?|blob|data):/.test(location) || !inNode();
}

/**
 * The bytes at `location` (`base`: the directory or URL it is relative to). A failure throws
 * EdgeTuneError(`code`) naming the URL or path, the reason, then `hint`.
 */
export async function readBytes(location: string, code: EdgeTuneErrorCode, hint: string, base?: string): Promise<Uint8Array> {
  if (base !== undefined ? isRemote(base) : isRemote(location)) {
    const page = (globalThis as { location?: { href: string } }).location?.href;
    const dir = base === undefined ? page : new URL(base.endsWith('/') ? base : `${base}/`, page).toString();
    const url = new URL(location, dir).toString();
    let res: Response;
    try {
      res = await fetch(url);
    } catch (cause) {
      throw new EdgeTuneError(code, `cannot fetch ${url}: ${String(cause)}; ${hint}`, { cause });
    }
    if (!res.ok) throw new EdgeTuneError(code, `cannot fetch ${url}: HTTP ${res.status}; ${hint}`);
    return new Uint8Array(await res.arrayBuffer());
  }
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const file = base === undefined ? location : path.join(base, location);
  try {
    return new Uint8Array(await fs.readFile(file));
  } catch (cause) {
    throw new EdgeTuneError(code, `cannot read ${file}: ${(cause as Error).message}; ${hint}`, { cause });
  }
}
