// The MLP activations, fused elementwise, forward next to backward. All tensors have n elements.
//   swiglu_forward   h = silu(gate) ⊙ up,  silu(z) = z σ(z)                     (Llama MLP)
//   swiglu_backward  dgate = dh ⊙ up ⊙ σ(gate)(1 + gate (1 − σ(gate))),  dup = dh ⊙ silu(gate)
//   gelu_forward     y = z Φ(z) = z · ½ (1 + erf(z / √2))                       (ViT MLP, exact
//                    form: ONNX Gelu approximate="none", or Mul(Erf(Div(z, √2)))...)
//   gelu_backward    dz = dy ⊙ (Φ(z) + z φ(z)),  φ(z) = exp(−z²/2) / √(2π)
// erfc has a relative error below 1.2e-7 (about float32's resolution); Φ of a negative argument
// is ½ erfc(|z|/√2) directly (no 1 − ...), so the left tail keeps its relative accuracy.
// Bindings by entry point (one invocation per quad of 4 elements; VEC: n is a multiple of 4):
//   swiglu_forward   IN0 = gate, IN1 = up,                OUT0 = h
//   swiglu_backward  IN0 = gate, IN1 = up,   IN2 = dh,    OUT0 = dgate, OUT1 = dup
//   gelu_forward     IN0 = z,                             OUT0 = y
//   gelu_backward    IN0 = z,    IN1 = dy,                OUT0 = dz

struct Params { n: u32, _p0: u32, _p1: u32, _p2: u32 }

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> IN0: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> IN1: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> OUT0: array<f32>;
@group(0) @binding(4) var<storage, read> IN2: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> OUT1: array<f32>;

fn ld0(e: u32, n: u32) -> vec4<f32> {
  if (VEC) { return IN0[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { let i = e + j; v[j] = IN0[i >> 2u][i & 3u]; }
  return v;
}
fn ld1(e: u32, n: u32) -> vec4<f32> {
  if (VEC) { return IN1[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { let i = e + j; v[j] = IN1[i >> 2u][i & 3u]; }
  return v;
}
fn ld2(e: u32, n: u32) -> vec4<f32> {
  if (VEC) { return IN2[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { let i = e + j; v[j] = IN2[i >> 2u][i & 3u]; }
  return v;
}

// The first element of this invocation's quad, and how many of its 4 exist (0: none).
fn quad(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> vec2<u32> {
  let e = ((wid.y * nwg.x + wid.x) * WG + lid.x) * 4u;
  return vec2<u32>(e, select(0u, min(4u, p.n - e), e < p.n));
}

// σ(z) without overflow: exp only of −|z|.
fn sigmoid(z: vec4<f32>) -> vec4<f32> {
  let e = exp(-abs(z));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= vec4<f32>(0.0));
}

// erfc(a) for a ≥ 0: Numerical Recipes' erfcc (Chebyshev fit), relative error < 1.2e-7 for every
// a, so the tail stays accurate where erfc is tiny.
fn erfcPos(a: vec4<f32>) -> vec4<f32> {
  let t = 1.0 / (1.0 + 0.5 * a);
  let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
             t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  return t * exp(poly - a * a);
}

// Φ(z), the standard normal CDF.
fn normalCdf(z: vec4<f32>) -> vec4<f32> {
  let tail = 0.5 * erfcPos(abs(z) * 0.70710678118654752);
  return select(tail, 1.0 - tail, z >= vec4<f32>(0.0));
}

@compute @workgroup_size(WG)
fn swiglu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = quad(wid, nwg, lid);
  if (q.y == 0u) { return; }
  let g = ld0(q.x, q.y);
  let h = g * sigmoid(g) * ld1(q.x, q.y);
  for (var j = 0u; j < q.y; j++) { OUT0[q.x + j] = h[j]; }
}

@compute @workgroup_size(WG)
fn swiglu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = quad(wid, nwg, lid);
  if (q.y == 0u) { return; }
  let g = ld0(q.x, q.y);
  let u = ld1(q.x, q.y);
  let dh = ld2(q.x, q.y);
  let s = sigmoid(g);
  let dg = dh * u * s * (1.0 + g * (1.0 - s));
  let du = dh * g * s;
  for (var j = 0u; j < q.y; j++) {
    OUT0[q.x + j] = dg[j];
    OUT1[q.x + j] = du[j];
  }
}

@compute @workgroup_size(WG)
fn gelu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = quad(wid, nwg, lid);
  if (q.y == 0u) { return; }
  let z = ld0(q.x, q.y);
  let y = z * normalCdf(z);
  for (var j = 0u; j < q.y; j++) { OUT0[q.x + j] = y[j]; }
}

@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = quad(wid, nwg, lid);
  if (q.y == 0u) { return; }
  let z = ld0(q.x, q.y);
  let pdf = 0.39894228040143268 * exp(-0.5 * z * z);
  let dz = ld1(q.x, q.y) * (normalCdf(z) + z * pdf);
  for (var j = 0u; j < q.y; j++) { OUT0[q.x + j] = dz[j]; }
}
