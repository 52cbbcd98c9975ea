// loss: cross-entropy and GEM (DESIGN §1.4) over rows of logits; values and gradient.
//   logits  (R, V) row-major, viewed as vec4s (the buffer holds ceil(R·V/4) of them)
//   targets (R) i32: a class in [0, V); IGNORE (−100); or SOFT_TARGET + s, row s of the soft table
//   softVal (S, W) target mass q; entry e of soft row s is vocabulary column softIdx[s·W + e]
//           (SOFT_IDX) or softOffset + e (a window, e.g. the location tokens); q = 0 entries are
//           skipped; columns are distinct within a row; a soft row is the target of one row only
//   stats   scratch: (R, 4) = [max z, log Σ exp((z − max)/β), b, has-target], then (S, W) B_k
//   rowLoss (R, 2) = [GEM, CE] per row (0 for a row without a target)
//   out     [GEM mean, CE mean, count, 1/count]   (means over the rows that have a target)
//   grad    (R, V) = d(GEM mean)/dz, the 1/count included (β = 1, linear: CE's gradient)
//
// Per row, M = max z, Z1 = Σ exp(z − M), Zb = Σ exp((z − M)/β), s = softmax(z/β) (a constant),
// w_j(k) = σ(0.01 (z_j − z_k)) for h = logsigmoid (a constant), Q = Σ_k q_k:
//   hard y   CE  = log Z1 + (M − z_y)
//            GEM = Σ_j s_j (z_j − M) + (M − z_y)           dz_m = s_m − [m = y]         (linear)
//            GEM = Σ_j s_j w_j(y) (z_j − z_y)               dz_m = s_m w_m(y) − [m = y] Σ_j s_j w_j(y)
//   soft q   CE  = Q log Z1 + Σ_k q_k (M − z_k)
//            GEM = Q Σ_j s_j (z_j − M) + Σ_k q_k (M − z_k)  dz_m = Q s_m − q_m            (linear)
//            GEM = Σ_k q_k A_k,  A_k = Σ_j s_j w_j(k)(z_j − z_k),  B_k = Σ_j s_j w_j(k)
//                                                  dz_m = s_m Σ_k q_k w_m(k) − q_m B_m  (logsigmoid)
// Soft logsigmoid is the expectation Σ_k q_k ℓ(z, k) evaluated exactly: w_j(k) does not factor
// over j and k, so each k of the support of q (q_k ≠ 0) costs one pass over the row; the passes
// go 4 support entries at a time. Location rows have a support of at most `cells` entries.
// Every sum is taken relative to the running max (online rescaling): exp never sees an
// unshifted logit, so |z| ~ 1e4 is fine.
//
// Define: VEC4 (V % 4 == 0: whole-vec4 loads and stores). The kind of loss is a uniform
// (p.flags: LOGSIG h = logsigmoid, HAS_SOFT, SOFT_IDX indexed soft rows, BETA_ONE), so one
// pipeline per entry point serves every kind: the branches are uniform, and compiling each
// combination would cost seconds per pipeline on CPU-emulated adapters.
// Passes, one dispatch each, in this order:
//   loss_rows      one workgroup per row: each thread streams a strided part of the row, then
//                  ONE workgroup reduction (plus one for soft rows, and one per 4 support
//                  entries for soft logsigmoid rows); writes stats and rowLoss
//   loss_reduce    one workgroup: count and means into `out`
//   loss_grad(4)   one thread per 4 logits, no barriers: the gradient (loss_grad4 stores vec4s)
//   loss_scatter   SOFT_IDX only, one workgroup per row: the −q_m B_m terms at the soft columns

struct Params {
  rows: u32, V: u32, W: u32, nSoft: u32,
  softOffset: u32, flags: u32, _p1: u32, _p2: u32,
  invBeta: f32, _p3: f32, _p4: f32, _p5: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> softVal: array<f32>;
@group(0) @binding(4) var<storage, read> softIdx: array<u32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> grad: array<f32>;
@group(0) @binding(9) var<storage, read_write> grad4: array<vec4<f32>>;

const WG: u32 = 256u;
const SOFT_TARGET: i32 = 0x40000000;
const LOWEST: f32 = -3.0e38;
const SLOPE: f32 = 0.01;

const F_LOGSIG: u32 = 1u;
const F_HAS_SOFT: u32 = 2u;
const F_SOFT_IDX: u32 = 4u;
const F_BETA_ONE: u32 = 8u;
fn flag(f: u32) -> bool { return (p.flags & f) != 0u; }

fn z_at(i: u32) -> f32 { return logits[i >> 2u][i & 3u]; }

// σ(x) without overflow: exp only of −|x|.
fn sigm4(x: vec4<f32>) -> vec4<f32> {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= vec4<f32>(0.0));
}

// The vocabulary column of entry e of the soft row starting at e0.
fn soft_col(e0: u32, e: u32) -> u32 {
  if (flag(F_SOFT_IDX)) { return softIdx[e0 + e]; }
  return p.softOffset + e;
}

// ---- workgroup reductions: 256 → 16 → all, two barriers --------------------------------
var<workgroup> red: array<vec4<f32>, 512>;
var<workgroup> red2: array<vec4<f32>, 32>;

// Online state: max m; Σ e1, Σ eb, Σ eb (z − m) with e1 = exp(z − m), eb = exp((z − m)/β);
// and for hard logsigmoid rows Σ eb w (z − z_y), Σ eb w. zb = 0 marks an empty state.
struct Online { m: f32, z1: f32, zb: f32, s1: f32, a: f32, b: f32 }

fn combine(x: Online, y: Online) -> Online {
  if (y.zb == 0.0) { return x; }
  if (x.zb == 0.0) { return y; }
  let m = max(x.m, y.m);
  let dx = x.m - m;
  let dy = y.m - m;
  let rx = exp(dx);
  let ry = exp(dy);
  let rxb = exp(dx * p.invBeta);
  let ryb = exp(dy * p.invBeta);
  return Online(m, x.z1 * rx + y.z1 * ry, x.zb * rxb + y.zb * ryb,
                rxb * (x.s1 + dx * x.zb) + ryb * (y.s1 + dy * y.zb),
                x.a * rxb + y.a * ryb, x.b * rxb + y.b * ryb);
}

fn unpack(u: vec4<f32>, v: vec4<f32>) -> Online { return Online(u.x, u.y, u.z, u.w, v.x, v.y); }

fn reduce_online(t: u32, st: Online) -> Online {
  red[2u * t] = vec4<f32>(st.m, st.z1, st.zb, st.s1);
  red[2u * t + 1u] = vec4<f32>(st.a, st.b, 0.0, 0.0);
  workgroupBarrier();
  if (t < 16u) {
    var acc = unpack(red[32u * t], red[32u * t + 1u]);
    for (var i = 1u; i < 16u; i++) {
      let j = 32u * t + 2u * i;
      acc = combine(acc, unpack(red[j], red[j + 1u]));
    }
    red2[2u * t] = vec4<f32>(acc.m, acc.z1, acc.zb, acc.s1);
    red2[2u * t + 1u] = vec4<f32>(acc.a, acc.b, 0.0, 0.0);
  }
  workgroupBarrier();
  var acc = unpack(red2[0], red2[1]);
  for (var i = 1u; i < 16u; i++) { acc = combine(acc, unpack(red2[2u * i], red2[2u * i + 1u])); }
  return acc;
}

// Sums of two vec4s over the workgroup, returned to every thread.
fn reduce_sum(t: u32, a: vec4<f32>, b: vec4<f32>) -> array<vec4<f32>, 2> {
  red[2u * t] = a;
  red[2u * t + 1u] = b;
  workgroupBarrier();
  if (t < 16u) {
    var sa = vec4<f32>(0.0);
    var sb = vec4<f32>(0.0);
    for (var i = 0u; i < 16u; i++) {
      sa += red[32u * t + 2u * i];
      sb += red[32u * t + 2u * i + 1u];
    }
    red2[2u * t] = sa;
    red2[2u * t + 1u] = sb;
  }
  workgroupBarrier();
  var sa = vec4<f32>(0.0);
  var sb = vec4<f32>(0.0);
  for (var i = 0u; i < 16u; i++) {
    sa += red2[2u * i];
    sb += red2[2u * i + 1u];
  }
  return array<vec4<f32>, 2>(sa, sb);
}

// ---- loss_rows: per-row statistics, CE and GEM ------------------------------------------
// Adds 4 logits (of which `n` exist) to the online state; zy, hardLs: hard logsigmoid row.
fn online_add4(st: ptr<function, Online>, z: vec4<f32>, n: u32, zy: f32, hardLs: bool) {
  let live = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(n);
  let zm = select(vec4<f32>(LOWEST), z, live);
  let qm = max(max(zm.x, zm.y), max(zm.z, zm.w));
  if (qm > (*st).m) {
    if ((*st).zb > 0.0) {
      let d = (*st).m - qm;
      let rb = exp(d * p.invBeta);
      (*st).z1 *= exp(d);
      (*st).s1 = rb * ((*st).s1 + d * (*st).zb);
      (*st).zb *= rb;
      (*st).a *= rb;
      (*st).b *= rb;
    }
    (*st).m = qm;
  }
  let d = z - (*st).m;
  let e1 = select(vec4<f32>(0.0), exp(d), live);
  var eb = e1;
  if (!flag(F_BETA_ONE)) { eb = select(vec4<f32>(0.0), exp(d * p.invBeta), live); }
  let one = vec4<f32>(1.0);
  (*st).z1 += dot(e1, one);
  (*st).zb += dot(eb, one);
  (*st).s1 += dot(eb, select(vec4<f32>(0.0), d, live));
  if (hardLs) {
    let dy = select(vec4<f32>(0.0), z - zy, live);
    let ew = eb * sigm4(SLOPE * dy);
    (*st).a += dot(ew, dy);
    (*st).b += dot(ew, one);
  }
}

@compute @workgroup_size(256)
fn loss_rows(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; }
  let t = lid.x;
  let V = p.V;
  let base = r * V;
  let tgt = targets[r];
  let isSoft = flag(F_HAS_SOFT) && tgt >= SOFT_TARGET && u32(tgt - SOFT_TARGET) < p.nSoft;
  let isHard = tgt >= 0 && tgt < SOFT_TARGET && u32(tgt) < V;
  if (!isSoft && !isHard) {
    if (t == 0u) {
      for (var i = 0u; i < 4u; i++) { stats[4u * r + i] = 0.0; }
      rowLoss[2u * r] = 0.0;
      rowLoss[2u * r + 1u] = 0.0;
    }
    return;
  }
  var zy = 0.0;
  if (isHard) { zy = z_at(base + u32(tgt)); }
  let logsig = flag(F_LOGSIG);
  let hardLs = logsig && isHard;

  var st = Online(LOWEST, 0.0, 0.0, 0.0, 0.0, 0.0);
  if (VEC4) {
    let q0 = base >> 2u;
    for (var i = t; i < (V >> 2u); i += WG) { online_add4(&st, logits[q0 + i], 4u, zy, hardLs); }
  } else {
    // Scalar loads, 4 strided elements per step so that the loop stays coalesced.
    for (var j = t; j < V; j += 4u * WG) {
      var z = vec4<f32>(0.0);
      var n = 0u;
      for (var c = 0u; c < 4u; c++) {
        let jj = j + c * WG;
        if (jj < V) { z[c] = z_at(base + jj); n = c + 1u; }
      }
      online_add4(&st, z, n, zy, hardLs);
    }
  }
  let row = reduce_online(t, st);
  let M = row.m;
  let logZ1 = log(row.z1);
  let invZb = 1.0 / row.zb;

  var gem = 0.0;
  var ce = 0.0;
  var b = 1.0;
  var has = 1.0;
  if (isHard) {
    ce = logZ1 + (M - zy);
    if (logsig) {
      gem = row.a * invZb;
      b = row.b * invZb;
    } else {
      gem = row.s1 * invZb + (M - zy);
    }
  } else {
    let s = u32(tgt - SOFT_TARGET);
    let e0 = s * p.W;
    var acc = vec4<f32>(0.0);
    for (var e = t; e < p.W; e += WG) {
      let q = softVal[e0 + e];
      let k = soft_col(e0, e);
      if (q != 0.0 && k < V) { acc += vec4<f32>(q, q * (M - z_at(base + k)), 0.0, 0.0); }
    }
    let qs = reduce_sum(t, acc, vec4<f32>(0.0))[0];
    let Q = qs.x;
    ce = Q * logZ1 + qs.y;
    b = Q;
    has = select(0.0, 1.0, Q > 0.0);
    if (logsig) {
      // 4 support entries per pass over the row: A_k and B_k for each.
      let aux = 4u * p.rows + e0;
      for (var e = 0u; e < p.W; e += 4u) {
        var q4 = vec4<f32>(0.0);
        var zk = vec4<f32>(0.0);
        for (var c = 0u; c < 4u; c++) {
          if (e + c < p.W) {
            let q = softVal[e0 + e + c];
            let k = soft_col(e0, e + c);
            if (q != 0.0 && k < V) {
              q4[c] = q;
              zk[c] = z_at(base + k);
            }
          }
        }
        if (all(q4 == vec4<f32>(0.0))) { continue; }
        var A = vec4<f32>(0.0);
        var B = vec4<f32>(0.0);
        for (var j = t; j < V; j += WG) {
          let z = z_at(base + j);
          let eb = exp((z - M) * p.invBeta);
          let d = vec4<f32>(z) - zk;
          let ew = eb * sigm4(SLOPE * d);
          A += ew * d;
          B += ew;
        }
        let sums = reduce_sum(t, A, B);
        gem += dot(q4, sums[0] * invZb);
        if (t == 0u) {
          let Bk = sums[1] * invZb;
          for (var c = 0u; c < 4u; c++) {
            if (e + c < p.W) { stats[aux + e + c] = Bk[c]; }
          }
        }
      }
    } else {
      gem = Q * row.s1 * invZb + qs.y;
    }
  }
  if (t == 0u) {
    stats[4u * r] = M;
    stats[4u * r + 1u] = log(row.zb);
    stats[4u * r + 2u] = b;
    stats[4u * r + 3u] = has;
    rowLoss[2u * r] = gem * has;
    rowLoss[2u * r + 1u] = ce * has;
  }
}

// ---- loss_reduce: count and means ---------------------------------------------------------
@compute @workgroup_size(256)
fn loss_reduce(@builtin(local_invocation_id) lid: vec3<u32>) {
  let t = lid.x;
  var acc = vec4<f32>(0.0);
  for (var r = t; r < p.rows; r += WG) {
    if (stats[4u * r + 3u] > 0.0) { acc += vec4<f32>(rowLoss[2u * r], rowLoss[2u * r + 1u], 1.0, 0.0); }
  }
  let s = reduce_sum(t, acc, vec4<f32>(0.0))[0];
  if (t == 0u) {
    let inv = select(0.0, 1.0 / s.z, s.z > 0.0);
    out[0] = s.x * inv;
    out[1] = s.y * inv;
    out[2] = s.z;
    out[3] = inv;
  }
}

// ---- loss_grad: dz for logits m0..m0+3 of row r, scaled by 1/count --------------------------
fn grad_quad(r: u32, m0: u32) -> vec4<f32> {
  let V = p.V;
  let base = r * V;
  let invN = out[3];
  let si = 4u * r;
  if (stats[si + 3u] <= 0.0 || invN == 0.0) { return vec4<f32>(0.0); }
  let M = stats[si];
  let logZb = stats[si + 1u];
  let b = stats[si + 2u];
  var z = vec4<f32>(0.0);
  if (VEC4) {
    z = logits[(base + m0) >> 2u];
  } else {
    for (var c = 0u; c < 4u; c++) {
      if (m0 + c < V) { z[c] = z_at(base + m0 + c); }
    }
  }
  let s = exp((z - M) * p.invBeta - logZb);
  let tgt = targets[r];
  let logsig = flag(F_LOGSIG);
  let m = vec4<u32>(m0, m0 + 1u, m0 + 2u, m0 + 3u);
  var g: vec4<f32>;
  if (tgt < SOFT_TARGET) {
    let y = u32(tgt);
    g = s;
    if (logsig) { g = s * sigm4(SLOPE * (z - z_at(base + y))); }
    g -= select(vec4<f32>(0.0), vec4<f32>(b), m == vec4<u32>(y));
  } else {
    let sr = u32(tgt - SOFT_TARGET);
    let e0 = sr * p.W;
    if (logsig) {
      var c4 = vec4<f32>(0.0);
      for (var e = 0u; e < p.W; e++) {
        let q = softVal[e0 + e];
        let k = soft_col(e0, e);
        if (q != 0.0 && k < V) { c4 += q * sigm4(SLOPE * (z - z_at(base + k))); }
      }
      g = s * c4;
    } else {
      g = b * s;
    }
    if (!flag(F_SOFT_IDX)) {
      // Window: q_m sits at entry m − softOffset.
      for (var c = 0u; c < 4u; c++) {
        let e = m[c] - p.softOffset;
        if (m[c] >= p.softOffset && e < p.W) {
          let q = softVal[e0 + e];
          if (q != 0.0) {
            var bk = 1.0;
            if (logsig) { bk = stats[4u * p.rows + e0 + e]; }
            g[c] -= q * bk;
          }
        }
      }
    }
  }
  return g * invN;
}

@compute @workgroup_size(256)
fn loss_grad(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.y + wid.z * nwg.y;
  let m0 = (wid.x * WG + lid.x) * 4u;
  if (r >= p.rows || m0 >= p.V) { return; }
  let g = grad_quad(r, m0);
  let o = r * p.V + m0;
  for (var c = 0u; c < 4u; c++) {
    if (m0 + c < p.V) { grad[o + c] = g[c]; }
  }
}

@compute @workgroup_size(256)
fn loss_grad4(@builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.y + wid.z * nwg.y;
  let m0 = (wid.x * WG + lid.x) * 4u;
  if (r >= p.rows || m0 >= p.V) { return; }
  grad4[(r * p.V + m0) >> 2u] = grad_quad(r, m0);
}

// ---- loss_scatter: −q_m B_m at the soft columns (SOFT_IDX rows) ---------------------------
@compute @workgroup_size(256)
fn loss_scatter(@builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; }
  let tgt = targets[r];
  let invN = out[3];
  if (tgt < SOFT_TARGET || stats[4u * r + 3u] <= 0.0 || invN == 0.0) { return; }
  let e0 = u32(tgt - SOFT_TARGET) * p.W;
  let logsig = flag(F_LOGSIG);
  for (var e = lid.x; e < p.W; e += WG) {
    let q = softVal[e0 + e];
    let k = soft_col(e0, e);
    if (q != 0.0 && k < p.V) {
      var bk = 1.0;
      if (logsig) { bk = stats[4u * p.rows + e0 + e]; }
      grad[r * p.V + k] -= invN * q * bk;
    }
  }
}
