// grounding_labels: soft targets over the location cells (DESIGN §1.5), one workgroup per point.
//   anchors (P, 2) f32: the point's offset from its hard cell's centre, in cell units
//           ((x, y) for PATCH2D, (x, 0) for bins); the host computes it in float64 together with
//           the hard cell, so the cell is exactly the token the text carries and the distances
//           keep full precision however large the grid
//   slots   i32: [0, P) the hard cell of each point; [P, 2P) its logits row (WRITE_TARGETS)
//   out     (·, cells) f32: row rowOffset + i = q' of point i, the soft-table window the loss
//           reads (SoftTable { offset: locOffset, width: cells })
//   targets (R) i32 (WRITE_TARGETS): targets[slots[P + i]] = SOFT_TARGET + rowOffset + i; the
//           other rows keep their hard targets
// With d_k the distance from the point to the centre of cell k, in cell units:
//   inverse   w_k = 1 / (d_k + eps)^power if d_k ≤ radius else 0
//   gaussian  w_k = exp(−d_k² / 2σ²)
//   q' = (1 − mix) · onehot(hard) + mix · w / Σ w     (all of it on the hard cell if Σ w = 0)
// Defines: PATCH2D (else bins), GAUSSIAN (else inverse), WRITE_TARGETS.
// Entry points: grounding_labels, a workgroup per point (GPUs); grounding_labels_direct, an
// invocation per point without barriers (CPU-emulated adapters).

struct Params {
  count: u32, cells: u32, grid: u32, rowOffset: u32,
  power: f32, eps: f32, radius: f32, inv2s2: f32,
  mix: f32, _p0: f32, _p1: f32, _p2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> anchors: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> slots: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> targets: array<i32>;

const WG: u32 = 256u;
const SOFT_TARGET: i32 = 0x40000000;

var<workgroup> red: array<f32, 256>;
var<workgroup> red2: array<f32, 16>;

// Sum over the workgroup, returned to every thread (two barriers).
fn reduce_sum(t: u32, v: f32) -> f32 {
  red[t] = v;
  workgroupBarrier();
  if (t < 16u) {
    var s = 0.0;
    for (var i = 0u; i < 16u; i++) { s += red[16u * t + i]; }
    red2[t] = s;
  }
  workgroupBarrier();
  var s = 0.0;
  for (var i = 0u; i < 16u; i++) { s += red2[i]; }
  return s;
}

// Unnormalised weight of cell k for a point at offset a from the centre of cell h.
fn weight(k: u32, h: u32, a: vec2<f32>) -> f32 {
  var d: f32;
  if (PATCH2D) {
    let G = p.grid;
    let dc = vec2<f32>(f32(i32(k % G) - i32(h % G)), f32(i32(k / G) - i32(h / G))) - a;
    d = length(dc);
  } else {
    d = abs(f32(i32(k) - i32(h)) - a.x);
  }
  if (GAUSSIAN) { return exp(-d * d * p.inv2s2); }
  if (d > p.radius) { return 0.0; }
  return 1.0 / pow(d + p.eps, p.power);
}

// Σ_k w_k over cells t, t + T, ... of point i.
fn part(i: u32, t: u32, T: u32) -> f32 {
  let a = anchors[i];
  let h = u32(slots[i]);
  var acc = 0.0;
  for (var k = t; k < p.cells; k += T) { acc += weight(k, h, a); }
  return acc;
}

// Writes cells t, t + T, ... of point i's row (and, from thread 0, its target).
fn write_row(i: u32, t: u32, T: u32, total: f32) {
  let a = anchors[i];
  let h = u32(slots[i]);
  let inv = select(0.0, 1.0 / total, total > 0.0);
  let row = (p.rowOffset + i) * p.cells;
  for (var k = t; k < p.cells; k += T) {
    var hard = 0.0;
    if (k == h) { hard = 1.0; }
    var q = weight(k, h, a) * inv;
    if (total <= 0.0) { q = hard; }
    out[row + k] = (1.0 - p.mix) * hard + p.mix * q;
  }
  if (WRITE_TARGETS && t == 0u) {
    targets[u32(slots[p.count + i])] = SOFT_TARGET + i32(p.rowOffset + i);
  }
}

// One workgroup per point (GPUs).
@compute @workgroup_size(256)
fn grounding_labels(@builtin(local_invocation_id) lid: vec3<u32>,
                    @builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = wid.x + wid.y * nwg.x;
  if (i >= p.count) { return; }
  write_row(i, lid.x, WG, reduce_sum(lid.x, part(i, lid.x, WG)));
}

// One invocation per point, no barriers (CPU-emulated adapters).
@compute @workgroup_size(16)
fn grounding_labels_direct(@builtin(global_invocation_id) gid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 16u;
  if (i >= p.count) { return; }
  write_row(i, 0u, 1u, part(i, 0u, 1u));
}
