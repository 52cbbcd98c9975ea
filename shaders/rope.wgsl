// RoPE, the Llama / Hugging Face "rotate_half" convention: in each head of H = headDim features
// the pairs (i, i + H/2), i < H/2, rotate by θ = pos · base^(−2i/H):
//   y_i       = x_i cos θ − x_{i+H/2} sin θ
//   y_{i+H/2} = x_{i+H/2} cos θ + x_i sin θ
// backward: dx is dy rotated by −θ (the rotation's transpose). sign = +1 forward, −1 backward.
//   x (R, heads·H) read from element offX with row stride strideX (so q or k may sit inside a
//   fused qkv row); y likewise (offY, strideY); pos (R) int32: each row's position, so that a
//   KV-cache step or a full-attention prefix uses any positions. A position outside [0, maxPos)
//   gives zeros.
//   cs (2, maxPos, H/2): cos θ then sin θ, tabulated on the host in float64 (WGSL's sin/cos are
//   only accurate to about 2^-11 on GPUs, and only near 0).
// rope: y = rotate(x); rope_inplace: y = rotate(y). One invocation per quad of i of one head.
// VEC: H/2, strides and offsets are multiples of 4 (quads are aligned vec4 loads).

struct Params {
  R: u32, heads: u32, H: u32, maxPos: u32,
  strideX: u32, offX: u32, strideY: u32, offY: u32,
  sign: f32, _p0: u32, _p1: u32, _p2: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pos: array<i32>;
@group(0) @binding(2) var<storage, read> cs: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

fn ldX(e: u32, n: u32) -> vec4<f32> {
  if (VEC) { return X[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { let i = e + j; v[j] = X[i >> 2u][i & 3u]; }
  return v;
}
fn ldY(e: u32, n: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { v[j] = Y[e + j]; }
  return v;
}
fn ldCS(e: u32, n: u32) -> vec4<f32> {
  if (VEC) { return cs[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { let i = e + j; v[j] = cs[i >> 2u][i & 3u]; }
  return v;
}

struct Quad { row: u32, head: u32, i: u32, n: u32, ok: bool }

fn quadOf(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> Quad {
  let t = (wid.y * nwg.x + wid.x) * WG + lid.x;
  let half = p.H / 2u;
  let nq = (half + 3u) / 4u;
  let rh = t / nq;
  let i = (t % nq) * 4u;
  return Quad(rh / p.heads, rh % p.heads, i, min(4u, half - min(i, half)), rh < p.R * p.heads);
}

// cos θ and sign · sin θ for the quad of pairs i.. at row's position; zeros outside the table.
struct Angles { c: vec4<f32>, s: vec4<f32> }

fn angles(row: u32, i: u32, n: u32) -> Angles {
  let q = pos[row];
  if (q < 0 || u32(q) >= p.maxPos) { return Angles(vec4<f32>(0.0), vec4<f32>(0.0)); }
  let half = p.H / 2u;
  let e = u32(q) * half + i;
  return Angles(ldCS(e, n), p.sign * ldCS(p.maxPos * half + e, n));
}

fn store(e: u32, n: u32, v: vec4<f32>) {
  for (var j = 0u; j < n; j++) { Y[e + j] = v[j]; }
}

@compute @workgroup_size(WG)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = quadOf(wid, nwg, lid);
  if (!q.ok) { return; }
  let half = p.H / 2u;
  let ex = p.offX + q.row * p.strideX + q.head * p.H + q.i;
  let ey = p.offY + q.row * p.strideY + q.head * p.H + q.i;
  let x1 = ldX(ex, q.n);
  let x2 = ldX(ex + half, q.n);
  let a = angles(q.row, q.i, q.n);
  store(ey, q.n, x1 * a.c - x2 * a.s);
  store(ey + half, q.n, x2 * a.c + x1 * a.s);
}

@compute @workgroup_size(WG)
fn rope_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = quadOf(wid, nwg, lid);
  if (!q.ok) { return; }
  let half = p.H / 2u;
  let ey = p.offY + q.row * p.strideY + q.head * p.H + q.i;
  let x1 = ldY(ey, q.n);
  let x2 = ldY(ey + half, q.n);
  let a = angles(q.row, q.i, q.n);
  store(ey, q.n, x1 * a.c - x2 * a.s);
  store(ey + half, q.n, x2 * a.c + x1 * a.s);
}
