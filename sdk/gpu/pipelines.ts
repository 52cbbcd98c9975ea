// Pipeline cache: each (shader, entry point, constants) is compiled once per device.
// A compile error names the WGSL file and the line.
import { EdgeTuneError } from '../errors.js';

export interface Shader {
  readonly name: string;
  readonly code: string;
}

/** Compile-time defines: booleans → bool, integers → u32, other numbers → f32; `{ f32 }` / `{ i32 }` force a type. */
export type Constants = Record<string, number | boolean | { f32: number } | { i32: number }>;

function defineText(k: string, v: Constants[string]): string {
  if (typeof v === 'boolean') return `const ${k}: bool = ${v};`;
  const [type, x] = typeof v === 'number' ? [Number.isInteger(v) && v >= 0 ? 'u32' : 'f32', v] : 'f32' in v ? ['f32', v.f32] : ['i32', v.i32];
  if (!Number.isFinite(x)) throw new EdgeTuneError('INVALID_ARGUMENT', `shader define ${k} must be finite`);
  if (type === 'u32') return `const ${k}: u32 = ${x}u;`;
  if (type === 'i32') return `const ${k}: i32 = ${Math.trunc(x)}i;`;
  return `const ${k}: f32 = ${Number.isInteger(x) ? `${x}.0` : x.toExponential()};`;
}

/** Prepends `const NAME = value;` lines: compile-time specialisation that may change types and loop bounds. */
function specialise(shader: Shader, defines: Constants | undefined): { code: string; prefixLines: number } {
  if (!defines || Object.keys(defines).length === 0) return { code: shader.code, prefixLines: 0 };
  const lines = Object.keys(defines)
    .sort()
    .map((k) => defineText(k, defines[k]!));
  return { code: lines.join('\n') + '\n' + shader.code, prefixLines: lines.length };
}

export function formatCompileMessages(
  shader: Shader,
  messages: readonly GPUCompilationMessage[],
  prefixLines: number,
): string {
  const src = shader.code.split('\n');
  return messages
    .filter((m) => m.type === 'error')
    .map((m) => {
      const line = m.lineNum - prefixLines;
      const text = line >= 1 && line <= src.length ? `\n    ${src[line - 1]!.trim()}` : '';
      return line >= 1 ? `${shader.name}:${line}:${m.linePos}: ${m.message}${text}` : `${shader.name} (specialisation constants): ${m.message}`;
    })
    .join('\n');
}

export class PipelineCache {
  private readonly device: GPUDevice;
  private readonly cache = new Map<string, Promise<GPUComputePipeline>>();
  private readonly ready = new Map<string, GPUComputePipeline>();
  /** How many pipelines were compiled (a step after warm-up must not add any). */
  compiled = 0;

  constructor(device: GPUDevice) {
    this.device = device;
  }

  static key(shader: Shader, entry: string, defines?: Constants): string {
    const d = defines ? Object.keys(defines).sort().map((k) => defineText(k, defines[k]!)).join('') : '';
    return `${shader.name}#${entry}#${d}`;
  }

  /** The pipeline, compiling it on first use. Rejects with SHADER_COMPILE naming file:line. */
  get(shader: Shader, entry: string, defines?: Constants): Promise<GPUComputePipeline> {
    const key = PipelineCache.key(shader, entry, defines);
    let p = this.cache.get(key);
    if (!p) {
      p = this.compile(shader, entry, defines, key);
      this.cache.set(key, p);
      p.catch(() => this.cache.delete(key));
    }
    return p;
  }

  /** The pipeline if it was compiled already (for hot paths that prepared ahead). */
  peek(shader: Shader, entry: string, defines?: Constants): GPUComputePipeline | undefined {
    return this.ready.get(PipelineCache.key(shader, entry, defines));
  }

  private async compile(shader: Shader, entry: string, defines: Constants | undefined, key: string): Promise<GPUComputePipeline> {
    const { code, prefixLines } = specialise(shader, defines);
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ label: shader.name, code });
    const info = await module.getCompilationInfo();
    const moduleError = await this.device.popErrorScope();
    const errors = formatCompileMessages(shader, info.messages, prefixLines);
    if (errors || moduleError) {
      throw new EdgeTuneError('SHADER_COMPILE', `WGSL compile error in ${shader.name}:\n${errors || moduleError?.message}`);
    }
    this.device.pushErrorScope('validation');
    let pipeline: GPUComputePipeline;
    try {
      pipeline = await this.device.createComputePipelineAsync({ label: key, layout: 'auto', compute: { module, entryPoint: entry } });
    } catch (cause) {
      await this.device.popErrorScope();
      throw new EdgeTuneError('SHADER_COMPILE', `cannot build pipeline ${shader.name}:${entry}: ${(cause as Error).message}`, { cause });
    }
    const err = await this.device.popErrorScope();
    if (err) throw new EdgeTuneError('SHADER_COMPILE', `cannot build pipeline ${shader.name}:${entry}: ${err.message}`);
    this.compiled++;
    this.ready.set(key, pipeline);
    return pipeline;
  }
}
