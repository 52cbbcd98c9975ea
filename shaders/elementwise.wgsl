// Elementwise helpers, and the column reduction the backward passes share.
//   ew_add            y = a + b                                a, b, y (n)
//   ew_axpy           y += s · x[i mod period]                 gradient fan-in (s = 1, period = n),
//                                                              or a broadcast add (period < n)
//   ew_scale          y = s · x                                (n)
//   ew_scale_inplace  y = s · y                                (n)
//   ew_fill           y = s                                    (n)
//   ew_copy           y = x                                    (n)
//   col_sum           y[c, j] (+)= Σ_{r in chunk c} x[r, j]    x (rows, n) with row stride ld,
//                     y (ceil(rows / chunk), n) dense. The host repeats it until one row is left;
//                     the last round adds into the gradient (ACCUM). Fixed summation order, no
//                     atomics: a reduction is reproducible bit for bit.
// Inputs are read from element offX on, the output written from offY on.
// One invocation per quad (4 consecutive elements) of the output. VEC: n, offsets, period and
// ld are multiples of 4, so a quad is one aligned vec4 load. Outputs are stored as scalars: two
// invocations must never write parts of one vec4 (a component store may touch the whole vector).

struct Params {
  n: u32, offX: u32, offY: u32, period: u32,
  s: f32, rows: u32, chunk: u32, ld: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> X2: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

fn quadIndex(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

// The quad of X (X2) at element e of which the first `cnt` exist.
fn ldX(e: u32, cnt: u32) -> vec4<f32> {
  if (VEC) { return X[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < cnt; j++) { let i = e + j; v[j] = X[i >> 2u][i & 3u]; }
  return v;
}
fn ldX2(e: u32, cnt: u32) -> vec4<f32> {
  if (VEC) { return X2[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < cnt; j++) { let i = e + j; v[j] = X2[i >> 2u][i & 3u]; }
  return v;
}
fn ldY(e: u32, cnt: u32) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < cnt; j++) { v[j] = Y[e + j]; }
  return v;
}
fn stY(e: u32, cnt: u32, v: vec4<f32>) {
  for (var j = 0u; j < cnt; j++) { Y[e + j] = v[j]; }
}

@compute @workgroup_size(WG)
fn ew_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = quadIndex(wid, nwg, lid) * 4u;
  if (i >= p.n) { return; }
  let cnt = min(4u, p.n - i);
  stY(p.offY + i, cnt, ldX(p.offX + i, cnt) + ldX2(p.offX + i, cnt));
}

@compute @workgroup_size(WG)
fn ew_axpy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = quadIndex(wid, nwg, lid) * 4u;
  if (i >= p.n) { return; }
  let cnt = min(4u, p.n - i);
  var x = vec4<f32>(0.0);
  if (VEC) {
    x = X[(p.offX + i % p.period) >> 2u];
  } else {
    for (var j = 0u; j < cnt; j++) { let e = p.offX + (i + j) % p.period; x[j] = X[e >> 2u][e & 3u]; }
  }
  stY(p.offY + i, cnt, ldY(p.offY + i, cnt) + p.s * x);
}

@compute @workgroup_size(WG)
fn ew_scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = quadIndex(wid, nwg, lid) * 4u;
  if (i >= p.n) { return; }
  let cnt = min(4u, p.n - i);
  stY(p.offY + i, cnt, p.s * ldX(p.offX + i, cnt));
}

@compute @workgroup_size(WG)
fn ew_scale_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = quadIndex(wid, nwg, lid) * 4u;
  if (i >= p.n) { return; }
  let cnt = min(4u, p.n - i);
  stY(p.offY + i, cnt, p.s * ldY(p.offY + i, cnt));
}

@compute @workgroup_size(WG)
fn ew_fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = quadIndex(wid, nwg, lid) * 4u;
  if (i >= p.n) { return; }
  stY(p.offY + i, min(4u, p.n - i), vec4<f32>(p.s));
}

@compute @workgroup_size(WG)
fn ew_copy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = quadIndex(wid, nwg, lid) * 4u;
  if (i >= p.n) { return; }
  let cnt = min(4u, p.n - i);
  stY(p.offY + i, cnt, ldX(p.offX + i, cnt));
}

// Invocation t owns column quad t mod ceil(n/4) of row chunk t / ceil(n/4).
@compute @workgroup_size(WG)
fn col_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = quadIndex(wid, nwg, lid);
  let nq = (p.n + 3u) / 4u;
  let j = (t % nq) * 4u;
  let c = t / nq;
  let r0 = c * p.chunk;
  if (r0 >= p.rows) { return; }
  let r1 = min(p.rows, r0 + p.chunk);
  let cnt = min(4u, p.n - j);
  var acc = vec4<f32>(0.0);
  for (var r = r0; r < r1; r++) { acc += ldX(p.offX + r * p.ld + j, cnt); }
  let e = p.offY + c * p.n + j;
  if (ACCUM) { acc += ldY(e, cnt); }
  stY(e, cnt, acc);
}
