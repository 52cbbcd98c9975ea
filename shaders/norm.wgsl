// RMSNorm (Llama) and LayerNorm over the last dimension, forward and backward.
//   x, y, dy, dx are (R, D): R = batch·tokens rows of D features; γ, β are (D); stats is (R, 2).
//   RMSNorm    rstd = 1 / sqrt(mean(x²) + eps)                    x̂ = x · rstd          y = x̂ ⊙ γ
//   LayerNorm  μ = mean(x), rstd = 1 / sqrt(mean((x − μ)²) + eps)  x̂ = (x − μ) · rstd    y = x̂ ⊙ γ + β
//   forward keeps stats[r] = (μ, rstd) (μ = 0 for RMSNorm) for the backward, which with g = dy ⊙ γ is
//   RMSNorm    dx = rstd · (g − x̂ · mean(g ⊙ x̂))
//   LayerNorm  dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂))
//   norm_param_grad   dγ = Σ_rows dy ⊙ x̂,  dβ = Σ_rows dy: invocation (column quad, chunk of rows)
//                     sums its chunk; with one chunk (DIRECT) it adds into dγ, dβ, otherwise it
//                     writes partial rows (C, 2D) = [dγ part | dβ part] that col_sum finishes.
//                     A fixed order throughout, no atomics: reproducible bit for bit.
// Defines: LAYER (LayerNorm, else RMSNorm); VEC (D is a multiple of 4: quads are aligned vec4
// loads); ACCUM (backward adds into dx: residual fan-in); DIRECT (above).
// Two schedules for the per-row passes:
//   *_row  one invocation per row looping over D: no workgroup memory, no barrier. For
//          CPU-emulated adapters (a barrier switches coroutines per invocation) and short rows.
//   *_wg   one workgroup of WG invocations per row, sums meet in a tree in workgroup memory.
//          For GPUs and long rows.

struct Params { R: u32, D: u32, eps: f32, chunk: u32 }

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<f32>>;           // γ
// forward
@group(0) @binding(3) var<storage, read> Bt: array<vec4<f32>>;          // β (LayerNorm)
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
@group(0) @binding(5) var<storage, read_write> S: array<f32>;           // stats out
// backward and param grad
@group(0) @binding(3) var<storage, read> Sr: array<f32>;                // stats in
@group(0) @binding(4) var<storage, read> DY: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> DX: array<f32>;
@group(0) @binding(5) var<storage, read_write> DW: array<f32>;          // dγ, or partials
@group(0) @binding(6) var<storage, read_write> DB: array<f32>;          // dβ (DIRECT)

var<workgroup> red: array<vec2<f32>, WG>;

fn flatGroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }

// Quad loads at element e, of which the first n exist (n < 4 only at a ragged row end).
fn ldX(e: u32, n: u32) -> vec4<f32> {
  if (VEC) { return X[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { let i = e + j; v[j] = X[i >> 2u][i & 3u]; }
  return v;
}
fn ldW(e: u32, n: u32) -> vec4<f32> {
  if (VEC) { return W[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { let i = e + j; v[j] = W[i >> 2u][i & 3u]; }
  return v;
}
fn ldB(e: u32, n: u32) -> vec4<f32> {
  if (VEC) { return Bt[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { let i = e + j; v[j] = Bt[i >> 2u][i & 3u]; }
  return v;
}
fn ldDY(e: u32, n: u32) -> vec4<f32> {
  if (VEC) { return DY[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { let i = e + j; v[j] = DY[i >> 2u][i & 3u]; }
  return v;
}
// 1 for the first n lanes of a quad, 0 for the rest.
fn live(n: u32) -> vec4<f32> { return select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(n)); }

// Sum of v over the workgroup (a fixed tree); every invocation gets the total.
fn wgSum(v: vec2<f32>, lane: u32) -> vec2<f32> {
  red[lane] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { red[lane] += red[lane + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}

// ---- forward ------------------------------------------------------------------------------
// This lane's share (quads lane, lane + stride, ...) of Σ (x − mu) (sq false) or Σ (x − mu)².
fn moment(row: u32, lane: u32, stride: u32, mu: f32, sq: bool) -> f32 {
  var s = vec4<f32>(0.0);
  for (var c = lane * 4u; c < p.D; c += stride * 4u) {
    let n = min(4u, p.D - c);
    let d = (ldX(row * p.D + c, n) - mu) * live(n);
    s += select(d, d * d, sq);
  }
  return s.x + s.y + s.z + s.w;
}

fn writeY(row: u32, lane: u32, stride: u32, mu: f32, rstd: f32) {
  for (var c = lane * 4u; c < p.D; c += stride * 4u) {
    let n = min(4u, p.D - c);
    let e = row * p.D + c;
    var y = (ldX(e, n) - mu) * rstd * ldW(c, n);
    if (LAYER) { y += ldB(c, n); }
    for (var j = 0u; j < n; j++) { Y[e + j] = y[j]; }
  }
}

@compute @workgroup_size(WG)
fn norm_forward_row(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = flatGroup(wid, nwg) * WG + lid.x;
  if (row >= p.R) { return; }
  var mu = 0.0;
  if (LAYER) { mu = moment(row, 0u, 1u, 0.0, false) / f32(p.D); }
  let rstd = inverseSqrt(moment(row, 0u, 1u, mu, true) / f32(p.D) + p.eps);
  writeY(row, 0u, 1u, mu, rstd);
  S[2u * row] = mu;
  S[2u * row + 1u] = rstd;
}

@compute @workgroup_size(WG)
fn norm_forward_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = flatGroup(wid, nwg);
  if (row >= p.R) { return; }
  var mu = 0.0;
  if (LAYER) { mu = wgSum(vec2<f32>(moment(row, lid.x, WG, 0.0, false), 0.0), lid.x).x / f32(p.D); }
  let rstd = inverseSqrt(wgSum(vec2<f32>(moment(row, lid.x, WG, mu, true), 0.0), lid.x).x / f32(p.D) + p.eps);
  writeY(row, lid.x, WG, mu, rstd);
  if (lid.x == 0u) {
    S[2u * row] = mu;
    S[2u * row + 1u] = rstd;
  }
}

// ---- backward -----------------------------------------------------------------------------
// This lane's share of (Σ g, Σ g ⊙ x̂), g = dy ⊙ γ.
fn gradSums(row: u32, lane: u32, stride: u32, mu: f32, rstd: f32) -> vec2<f32> {
  var sg = vec4<f32>(0.0);
  var sgx = vec4<f32>(0.0);
  for (var c = lane * 4u; c < p.D; c += stride * 4u) {
    let n = min(4u, p.D - c);
    let e = row * p.D + c;
    let g = ldDY(e, n) * ldW(c, n);
    sg += g;
    sgx += g * (ldX(e, n) - mu) * rstd;
  }
  return vec2<f32>(sg.x + sg.y + sg.z + sg.w, sgx.x + sgx.y + sgx.z + sgx.w);
}

fn writeDx(row: u32, lane: u32, stride: u32, mu: f32, rstd: f32, mg: f32, mgx: f32) {
  for (var c = lane * 4u; c < p.D; c += stride * 4u) {
    let n = min(4u, p.D - c);
    let e = row * p.D + c;
    let xhat = (ldX(e, n) - mu) * rstd;
    let dx = rstd * (ldDY(e, n) * ldW(c, n) - mg - xhat * mgx);
    for (var j = 0u; j < n; j++) {
      if (ACCUM) { DX[e + j] += dx[j]; } else { DX[e + j] = dx[j]; }
    }
  }
}

// mean(g) (LayerNorm only) and mean(g ⊙ x̂) from the row's sums.
fn means(s: vec2<f32>) -> vec2<f32> {
  let inv = 1.0 / f32(p.D);
  return vec2<f32>(select(0.0, s.x * inv, LAYER), s.y * inv);
}

@compute @workgroup_size(WG)
fn norm_backward_row(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = flatGroup(wid, nwg) * WG + lid.x;
  if (row >= p.R) { return; }
  let mu = Sr[2u * row];
  let rstd = Sr[2u * row + 1u];
  let m = means(gradSums(row, 0u, 1u, mu, rstd));
  writeDx(row, 0u, 1u, mu, rstd, m.x, m.y);
}

@compute @workgroup_size(WG)
fn norm_backward_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = flatGroup(wid, nwg);
  if (row >= p.R) { return; }
  let mu = Sr[2u * row];
  let rstd = Sr[2u * row + 1u];
  let m = means(wgSum(gradSums(row, lid.x, WG, mu, rstd), lid.x));
  writeDx(row, lid.x, WG, mu, rstd, m.x, m.y);
}

// Invocation t owns column quad t mod ceil(D/4) of row chunk t / ceil(D/4).
@compute @workgroup_size(WG)
fn norm_param_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = flatGroup(wid, nwg) * WG + lid.x;
  let nq = (p.D + 3u) / 4u;
  let c = (t % nq) * 4u;
  let chunk = t / nq;
  let r0 = chunk * p.chunk;
  if (r0 >= p.R) { return; }
  let r1 = min(p.R, r0 + p.chunk);
  let n = min(4u, p.D - c);
  var dg = vec4<f32>(0.0);
  var db = vec4<f32>(0.0);
  for (var r = r0; r < r1; r++) {
    let e = r * p.D + c;
    let dy = ldDY(e, n);
    dg += dy * (ldX(e, n) - Sr[2u * r]) * Sr[2u * r + 1u];
    db += dy;
  }
  for (var j = 0u; j < n; j++) {
    if (DIRECT) {
      DW[c + j] += dg[j];
      if (LAYER) { DB[c + j] += db[j]; }
    } else {
      DW[chunk * 2u * p.D + c + j] = dg[j];
      if (LAYER) { DW[chunk * 2u * p.D + p.D + c + j] = db[j]; }
    }
  }
}
