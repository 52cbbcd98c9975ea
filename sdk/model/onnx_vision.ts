// The frozen vision encoder at inference, run by onnxruntime-web (DESIGN §2.1): the package's
// vision_encoder.onnx, pixel_values (B, 3, H, W) → image_features (B, R, d). Its wasm backend
// runs in Node, browsers and workers; browsers may ask for ORT's WebGPU execution provider.
// Training keeps the engine's ViT (it needs the backward pass); parity between the two is
// tested (test/onnx.test.ts).
import { EdgeTuneError } from '../errors.js';

type Ort = typeof import('onnxruntime-web');
type Session = import('onnxruntime-web').InferenceSession;

let ort: Promise<Ort> | null = null;

/** onnxruntime-web, imported once (a clear error when it cannot be). */
export function loadOrt(): Promise<Ort> {
  ort ??= import('onnxruntime-web').catch((cause: unknown) => {
    ort = null;
    throw new EdgeTuneError('BAD_CONFIG', `onnxruntime-web could not be loaded (${String(cause)}); install it next to edgetune, or load the model with { vision: 'engine' }`, { cause });
  });
  return ort;
}

export class OnnxVision {
  private constructor(
    private readonly ort: Ort,
    private readonly session: Session,
    readonly imageSize: number,
  ) {}

  /** A session over vision_encoder.onnx's bytes (BAD_ONNX when onnxruntime-web refuses them). */
  static async create(bytes: Uint8Array, imageSize: number, executionProviders: string[] = ['wasm']): Promise<OnnxVision> {
    const o = await loadOrt();
    let session: Session;
    try {
      session = await o.InferenceSession.create(bytes, { executionProviders });
    } catch (cause) {
      throw new EdgeTuneError('BAD_ONNX', `onnxruntime-web cannot open vision_encoder.onnx: ${String((cause as Error)?.message ?? cause)}; re-export the model package`, { cause });
    }
    if (!session.outputNames.includes('image_features')) {
      await session.release();
      throw new EdgeTuneError('BAD_ONNX', 'vision_encoder.onnx has no image_features output; re-export the model package');
    }
    return new OnnxVision(o, session, imageSize);
  }

  /** pixels (B, 3, H, W) → image_features (B·R·d floats) and its dims [B, R, d]. */
  async features(pixels: Float32Array, images: number): Promise<{ data: Float32Array; dims: number[] }> {
    const n = this.imageSize;
    if (pixels.length !== images * 3 * n * n) throw new EdgeTuneError('SHAPE_MISMATCH', `${images} images of ${n}² need ${images * 3 * n * n} pixel values, got ${pixels.length}`);
    const out = await this.session.run({ pixel_values: new this.ort.Tensor('float32', pixels, [images, 3, n, n]) }, ['image_features']);
    const f = out.image_features!;
    return { data: f.data as Float32Array, dims: [...f.dims] };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
