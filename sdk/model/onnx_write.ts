// A tiny ONNX graph builder on onnx-proto: float32 / int64 initializers as raw_data, nodes with
// attributes, graph inputs and outputs with fixed or symbolic dims, serialised as a ModelProto
// (IR 8, default-domain opset 17). Only what the exporters in export.ts need; names are given
// by the caller or made unique from the op type.
import * as onnxProto from 'onnx-proto/dist/onnx.js';
import type { onnx as OnnxNs } from 'onnx-proto';

/** The onnx-proto namespace (a CommonJS module: its `onnx` sits on the default export under Node ESM). */
export const onnx: typeof OnnxNs = ((onnxProto as unknown as { onnx?: typeof OnnxNs }).onnx ?? (onnxProto as unknown as { default: { onnx: typeof OnnxNs } }).default.onnx);

export const OPSET = 17;
export const IR_VERSION = 8;

/** Element types used here (TensorProto.DataType). */
export const FLOAT = 1;
export const INT64 = 7;
export const BOOL = 9;

export type Dim = number | string;
export type AttrValue = number | number[] | string | { floats: number[] } | { float: number };

function bytesOf(a: Float32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
}

function valueInfo(name: string, elemType: number, dims: Dim[]): OnnxNs.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

/** Attribute values: integers → INT, integer arrays → INTS, strings → STRING, {float} → FLOAT, {floats} → FLOATS. */
function attribute(name: string, v: AttrValue): OnnxNs.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.FLOATS, floats: v.floats };
}

export class GraphBuilder {
  readonly name: string;
  private readonly nodes: OnnxNs.INodeProto[] = [];
  private readonly inits: OnnxNs.ITensorProto[] = [];
  private readonly inputs: OnnxNs.IValueInfoProto[] = [];
  private readonly outputs: OnnxNs.IValueInfoProto[] = [];
  private readonly used = new Set<string>();
  private counter = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** A fresh value name with `hint` in it. */
  fresh(hint: string): string {
    let n: string;
    do n = `${hint}_${this.counter++}`;
    while (this.used.has(n));
    this.used.add(n);
    return n;
  }

  /** A float32 initializer (raw_data, little-endian). Returns its name. */
  floatInit(name: string, dims: number[], data: Float32Array): string {
    this.used.add(name);
    this.inits.push({ name, dims, dataType: FLOAT, rawData: bytesOf(data) });
    return name;
  }

  /** An int64 initializer. */
  intInit(name: string, dims: number[], data: ArrayLike<number>): string {
    this.used.add(name);
    const a = BigInt64Array.from(Array.from(data, (x) => BigInt(x)));
    this.inits.push({ name, dims, dataType: INT64, rawData: bytesOf(a) });
    return name;
  }

  /** A fresh int64 constant of the given values (1D, or a scalar with `scalar`). */
  ints(values: number[], scalar = false): string {
    return this.intInit(this.fresh('const'), scalar ? [] : [values.length], values);
  }

  /** A fresh float32 scalar constant. */
  scalar(v: number): string {
    return this.floatInit(this.fresh('const'), [], Float32Array.of(v));
  }

  input(name: string, elemType: number, dims: Dim[]): string {
    this.used.add(name);
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(name: string, elemType: number, dims: Dim[]): void {
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /** Adds a node; returns its first output's name (`out` names it, else a fresh one). */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, out?: string): string {
    const o = out ?? this.fresh(opType);
    this.used.add(o);
    this.nodes.push({
      opType, name: `${opType}_${this.nodes.length}`, input: inputs, output: [o],
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return o;
  }

  /** The serialised ModelProto. */
  toBytes(docString = ''): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: 'edgetune',
      producerVersion: '0.1.0',
      docString,
      opsetImport: [{ domain: '', version: OPSET }],
      graph: { name: this.name, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
