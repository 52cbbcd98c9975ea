// Token embedding: a gather of table rows by id, and its scatter-add gradient.
//   ids (T) int32, T = batch·tokens;  table, dtable (V, D);  out, dy (T, D)
//   embedding_forward   out[t] = table[ids[t]]                 (zeros for an id outside [0, V))
//   embedding_link      link[t] = (first, next): whether t is the first token with its id, and
//                       the next token with the same id (T if none): each id's tokens form a list
//   embedding_backward  dtable[v] += Σ_{t: ids[t] = v} dy[t]   the first token of each id walks its
//                       list in token order: a fixed order, no atomics, reproducible bit for bit
// The link pass compares every pair of ids (T² comparisons, cheap for training sequences);
// the scatter reads each dy row once. Forward and backward take one invocation per column
// quad of a token row. VEC: D is a multiple of 4 (quads are aligned vec4 loads).

struct Params { T: u32, V: u32, D: u32, _pad: u32 }

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
// forward
@group(0) @binding(2) var<storage, read> table: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// link
@group(0) @binding(2) var<storage, read_write> linkOut: array<u32>;
// backward
@group(0) @binding(2) var<storage, read> link: array<u32>;
@group(0) @binding(3) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dtable: array<f32>;

fn invocation(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

fn validId(id: i32) -> bool { return id >= 0 && u32(id) < p.V; }

fn ldTable(e: u32, n: u32) -> vec4<f32> {
  if (VEC) { return table[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { let i = e + j; v[j] = table[i >> 2u][i & 3u]; }
  return v;
}
fn ldDy(e: u32, n: u32) -> vec4<f32> {
  if (VEC) { return dy[e >> 2u]; }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < n; j++) { let i = e + j; v[j] = dy[i >> 2u][i & 3u]; }
  return v;
}

@compute @workgroup_size(WG)
fn embedding_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = invocation(wid, nwg, lid);
  let nq = (p.D + 3u) / 4u;
  let t = i / nq;
  if (t >= p.T) { return; }
  let c = (i % nq) * 4u;
  let n = min(4u, p.D - c);
  let id = ids[t];
  var v = vec4<f32>(0.0);
  if (validId(id)) { v = ldTable(u32(id) * p.D + c, n); }
  for (var j = 0u; j < n; j++) { out[t * p.D + c + j] = v[j]; }
}

@compute @workgroup_size(WG)
fn embedding_link(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = invocation(wid, nwg, lid);
  if (t >= p.T) { return; }
  let id = ids[t];
  var first = 1u;
  for (var s = 0u; s < t; s++) {
    if (ids[s] == id) { first = 0u; break; }
  }
  var next = p.T;
  for (var s = t + 1u; s < p.T; s++) {
    if (ids[s] == id) { next = s; break; }
  }
  linkOut[2u * t] = first;
  linkOut[2u * t + 1u] = next;
}

@compute @workgroup_size(WG)
fn embedding_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let i = invocation(wid, nwg, lid);
  let nq = (p.D + 3u) / 4u;
  let t = i / nq;
  if (t >= p.T) { return; }
  let id = ids[t];
  if (link[2u * t] == 0u || !validId(id)) { return; }
  let c = (i % nq) * 4u;
  let n = min(4u, p.D - c);
  var acc = vec4<f32>(0.0);
  var s = t;
  // Bounded by T steps: the list is strictly increasing.
  for (var k = 0u; k < p.T && s < p.T; k++) {
    acc += ldDy(s * p.D + c, n);
    s = link[2u * s + 1u];
  }
  let e = u32(id) * p.D + c;
  for (var j = 0u; j < n; j++) { dtable[e + j] += acc[j]; }
}
