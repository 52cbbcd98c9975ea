// Optimizer: global-norm clipping and AdamW over flat parameter buffers.
// One step is three passes, all in the training step's command encoder:
//   sumsq_partial   for each gradient tensor g (n): partial[base + wg] = Σ g² over its chunk
//   clip_prepare    stats = [‖g‖, scale, skip, Σg²] from all partials (+ the loss, if given):
//                   scale = gradScale · min(1, maxNorm / (‖gradScale·g‖ + 1e-6)),
//                   skip = 1 when ‖g‖ or the loss is not finite (the step then changes nothing)
//   adamw_step      per parameter tensor p, g, m, v (n each), with ĝ = scale · g:
//                   m = β1 m + (1−β1) ĝ;  v = β2 v + (1−β2) ĝ²
//                   p = p − lr · ( m/(1−β1ᵗ) / (sqrt(v/(1−β2ᵗ)) + ε) + wd · p )   (decoupled decay)
// The reductions run in a fixed order (no atomics), so a step is bit-for-bit reproducible.

struct SumParams { n: u32, base: u32, _p0: u32, _p1: u32 }
struct ClipParams { count: u32, hasLoss: u32, maxNorm: f32, gradScale: f32 }
struct StepParams { n: u32, _p0: u32, lr: f32, beta1: f32, beta2: f32, eps: f32, wd: f32, bc1: f32, bc2: f32 }

const WG: u32 = 64u;
const CHUNK: u32 = 4096u;   // elements per workgroup of sumsq_partial

// True when x is ±Inf or NaN (exponent bits all ones); WGSL has no isnan/isinf.
fn nonFinite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

// ---- sumsq_partial: g (n) → partial[base + workgroup] ------------------------------------
@group(0) @binding(0) var<uniform> sp: SumParams;
@group(0) @binding(1) var<storage, read> sg: array<f32>;
@group(0) @binding(2) var<storage, read_write> spartial: array<f32>;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn sumsq_partial(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let start = wid.x * CHUNK;
  let end = min(start + CHUNK, sp.n);
  var s = 0.0;
  for (var i = start + lid.x; i < end; i += WG) {
    let x = sg[i];
    s += x * x;
  }
  red[lid.x] = s;
  workgroupBarrier();
  for (var w = WG / 2u; w > 0u; w >>= 1u) {
    if (lid.x < w) { red[lid.x] += red[lid.x + w]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { spartial[sp.base + wid.x] = red[0]; }
}

// ---- clip_prepare: partial (count), loss (1)? → stats (4) ---------------------------------
@group(0) @binding(0) var<uniform> cp: ClipParams;
@group(0) @binding(1) var<storage, read> cpartial: array<f32>;
@group(0) @binding(2) var<storage, read> closs: array<f32>;
@group(0) @binding(3) var<storage, read_write> cstats: array<f32>;

@compute @workgroup_size(1)
fn clip_prepare() {
  var s = 0.0;
  for (var i = 0u; i < cp.count; i++) { s += cpartial[i]; }
  let norm = sqrt(s);
  var skip = nonFinite(s);
  if (cp.hasLoss != 0u) { skip = skip || nonFinite(closs[0]); }
  var scale = cp.gradScale;
  let scaled = norm * cp.gradScale;
  if (cp.maxNorm > 0.0 && scaled > cp.maxNorm) { scale = cp.gradScale * cp.maxNorm / (scaled + 1e-6); }
  cstats[0] = norm;
  cstats[1] = select(scale, 0.0, skip);
  cstats[2] = select(0.0, 1.0, skip);
  cstats[3] = s;
}

// ---- adamw_step: p, g, m, v (n), stats (4) -------------------------------------------------
@group(0) @binding(0) var<uniform> ap: StepParams;
@group(0) @binding(1) var<storage, read_write> P: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> M: array<f32>;
@group(0) @binding(4) var<storage, read_write> V: array<f32>;
@group(0) @binding(5) var<storage, read> astats: array<f32>;

@compute @workgroup_size(WG)
fn adamw_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= ap.n || astats[2] != 0.0) { return; }
  let g = astats[1] * G[i];
  let m = ap.beta1 * M[i] + (1.0 - ap.beta1) * g;
  let v = ap.beta2 * V[i] + (1.0 - ap.beta2) * g * g;
  M[i] = m;
  V[i] = v;
  let p = P[i];
  P[i] = p - ap.lr * ((m / ap.bc1) / (sqrt(v / ap.bc2) + ap.eps) + ap.wd * p);
}
