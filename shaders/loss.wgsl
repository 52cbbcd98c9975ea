// loss: cross-entropy and GEM (DESIGN §1.4) over rows of logits; values and gradient.
//   logits  (R, V) row-major, viewed as vec4s (the buffer holds ceil(R·V/4) of them)
//   targets (R) i32: a class in [0, V); IGNORE (−100); or SOFT_TARGET + s, row s of the soft table
//   softVal (S, W) target mass q; entry e of soft row s is vocabulary column softIdx[s·W + e]
//           (indexed rows) or softOffset + e (a window, e.g. the location tokens); q = 0 entries
//           are skipped; columns are distinct within a row; a soft row is the target of one row
//   scratch (R, 4) = [max z, log Σ exp((z − max)/β), b, has-target] with b = Q (soft rows) or
//           Σ_{j≠y} s_j w_j (hard rows); (S) owner row of each soft row; with LOGSIG also (S, W) B_k of each soft entry, (S) support size n_s and
//           (S, W, 2) the support as (q_k, z_k) pairs (so the gradient loops over n_s, not W)
//   rowLoss (R, 2) = [GEM, CE] per row (0 for a row without a target)
//   out     [GEM mean, CE mean, count, 1/count]   (means over the rows that have a target)
//   grad    (R, V) = d(GEM mean)/dz, the 1/count included (β = 1, linear: CE's gradient)
//
// Per row, M = max z, Z1 = Σ exp(z − M), Zb = Σ exp((z − M)/β), s = softmax(z/β) (a constant),
// w_j(k) = σ(0.01 (z_j − z_k)) for h = logsigmoid (a constant), Q = Σ_k q_k:
//   hard y   CE  = log Z1 + (M − z_y)
//            GEM = Σ_j s_j (z_j − M) + (M − z_y)           dz_m = s_m − [m = y]         (linear)
//            GEM = Σ_j s_j w_j(y) (z_j − z_y)               dz_m = s_m w_m(y) − [m = y] Σ_j s_j w_j(y)
//            (at m = y both are evaluated as −Σ_{j≠y} s_j w_j(y), w = 1 for linear)
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
// Defines: LOGSIG (h = logsigmoid), HAS_SOFT, QPT (quads of logits per thread in loss_grad).
// Uniform flags: BETA_ONE, VEC4 (V % 4 == 0: rows start on a vec4), SOFT_IDX (indexed soft
// rows). A batch may mix hard and soft rows; a hard-only batch compiles without the soft code.
// Passes, one dispatch each, in this order; two schedules for the per-row ones:
//   loss_rows         wide: one workgroup per row, each thread streams a strided part of the
//                     row, then ONE workgroup reduction (plus one for a soft row, and one per 4
//                     support entries of a soft logsigmoid row)           (GPUs)
//   loss_rows_direct  one invocation per row, no barriers                  (CPU emulation, where
//                     a barrier costs a coroutine switch per invocation)
//   loss_reduce(_direct)  count and means into `out`
//   loss_grad(4)      QPT quads of logits per thread, no barriers; loss_grad4 stores vec4s
//                     (bindings: logits, targets, softVal, scratch, out, grad)
//   loss_scatter      indexed soft rows only, one invocation per soft entry: −q_m B_m

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
@group(0) @binding(5) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(6) var<storage, read_write> rowLoss: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> grad: array<f32>;
@group(0) @binding(9) var<storage, read_write> grad4: array<vec4<f32>>;

const WG: u32 = 256u;
const SOFT_TARGET: i32 = 0x40000000;
const LOWEST: f32 = -3.0e38;
const SLOPE: f32 = 0.01;
const F_BETA_ONE: u32 = 1u;
const F_VEC4: u32 = 2u;
const F_SOFT_IDX: u32 = 4u;

fn flag(f: u32) -> bool { return (p.flags & f) != 0u; }
fn z_at(i: u32) -> f32 { return logits[i >> 2u][i & 3u]; }

// σ(x) without overflow: exp only of −|x|.
fn sigm4(x: vec4<f32>) -> vec4<f32> {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= vec4<f32>(0.0));
}

// Scratch layout.
fn owner_at(s: u32) -> u32 { return 4u * p.rows + s; }
fn bk_at(e: u32) -> u32 { return 4u * p.rows + p.nSoft + e; }
fn support_n_at(s: u32) -> u32 { return 4u * p.rows + p.nSoft + p.nSoft * p.W + s; }
fn support_at(e: u32) -> u32 { return 4u * p.rows + 2u * p.nSoft + p.nSoft * p.W + 2u * e; }

// ---- the online state ------------------------------------------------------------------
// Max m; Σ e1, Σ eb, Σ eb (z − m) with e1 = exp(z − m), eb = exp((z − m)/β); for a hard row
// also a = Σ eb w (z − z_y) (logsigmoid) and b = Σ_{j ≠ y} eb w (w = 1 for linear): the
// gradient at y is −b/Zb, summed without y so that a confident row (s_y ≈ 1) does not lose it
// to the cancellation in s_y w_y − Σ_j s_j w_j. zb = 0 marks an empty state.
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

// Adds 4 logits (of which the first `n` exist); `notY` masks the hard target out of b.
fn online_add4(st: ptr<function, Online>, z: vec4<f32>, n: u32, zy: f32, hard: bool, notY: vec4<bool>) {
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
  // Lanes past the row get d = −1 (finite) and are masked out below.
  let d = select(vec4<f32>(-1.0), z - (*st).m, live);
  let e1 = select(vec4<f32>(0.0), exp(d), live);
  var eb = e1;
  if (!flag(F_BETA_ONE)) { eb = select(vec4<f32>(0.0), exp(d * p.invBeta), live); }
  let one = vec4<f32>(1.0);
  (*st).z1 += dot(e1, one);
  (*st).zb += dot(eb, one);
  (*st).s1 += dot(eb, d);
  if (hard) {
    if (LOGSIG) {
      let dy = select(vec4<f32>(0.0), z - zy, live);
      let ew = eb * sigm4(SLOPE * dy);
      (*st).a += dot(ew, dy);
      (*st).b += dot(select(vec4<f32>(0.0), ew, notY), one);
    } else {
      (*st).b += dot(select(vec4<f32>(0.0), eb, notY), one);
    }
  }
}

// ---- loss_rows: the phases, each the part of thread t of T (no barriers) -------------------
struct Row { r: u32, base: u32, tgt: i32, isSoft: bool, isHard: bool, zy: f32, s: u32, e0: u32 }

fn row_of(r: u32) -> Row {
  let tgt = targets[r];
  let isSoft = HAS_SOFT && tgt >= SOFT_TARGET && u32(tgt - SOFT_TARGET) < p.nSoft;
  let isHard = tgt >= 0 && tgt < SOFT_TARGET && u32(tgt) < p.V;
  var zy = 0.0;
  if (isHard) { zy = z_at(r * p.V + u32(tgt)); }
  var s = 0u;
  if (isSoft) { s = u32(tgt - SOFT_TARGET); }
  return Row(r, r * p.V, tgt, isSoft, isHard, zy, s, s * p.W);
}

// The vocabulary column of entry e of a soft row.
fn soft_col(row: Row, e: u32) -> u32 {
  if (flag(F_SOFT_IDX)) { return softIdx[row.e0 + e]; }
  return p.softOffset + e;
}

// Sums run in blocks of BLOCK steps folded into the total (blocked summation): a thread of
// the direct schedule sums a whole row, and serial f32 sums of 10^5 terms lose digits.
const BLOCK: u32 = 64u;

fn stream(row: Row, t: u32, T: u32) -> Online {
  var st = Online(LOWEST, 0.0, 0.0, 0.0, 0.0, 0.0);
  let hard = row.isHard;
  let y = u32(max(row.tgt, 0));
  let V = p.V;
  if (flag(F_VEC4)) {
    let q0 = row.base >> 2u;
    let nq = V >> 2u;
    for (var i0 = t; i0 < nq; i0 += BLOCK * T) {
      var blk = Online(LOWEST, 0.0, 0.0, 0.0, 0.0, 0.0);
      let end = min(nq, i0 + BLOCK * T);
      for (var i = i0; i < end; i += T) {
        let m = vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u);
        online_add4(&blk, logits[q0 + i], 4u, row.zy, hard, m != vec4<u32>(y));
      }
      st = combine(st, blk);
    }
  } else {
    // 4 elements T apart per step, so that the wide schedule's loads stay coalesced.
    for (var j0 = t; j0 < V; j0 += 4u * BLOCK * T) {
      var blk = Online(LOWEST, 0.0, 0.0, 0.0, 0.0, 0.0);
      let end = min(V, j0 + 4u * BLOCK * T);
      for (var j = j0; j < end; j += 4u * T) {
        var z = vec4<f32>(0.0);
        var n = 0u;
        for (var c = 0u; c < 4u; c++) {
          let jj = j + c * T;
          if (jj < V) { z[c] = z_at(row.base + jj); n = c + 1u; }
        }
        let m = vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u) * T;
        online_add4(&blk, z, n, row.zy, hard, m != vec4<u32>(y));
      }
      st = combine(st, blk);
    }
  }
  return st;
}

// (Q, Σ q_k (M − z_k)) over entries t, t + T, ... of the soft row.
fn soft_part(row: Row, t: u32, T: u32, M: f32) -> vec4<f32> {
  var acc = vec4<f32>(0.0);
  for (var e = t; e < p.W; e += T) {
    let q = softVal[row.e0 + e];
    let k = soft_col(row, e);
    if (q != 0.0 && k < p.V) { acc += vec4<f32>(q, q * (M - z_at(row.base + k)), 0.0, 0.0); }
  }
  return acc;
}

// Soft entries e..e+3: their mass (0 past the row or the vocabulary) and logits.
struct Group { q: vec4<f32>, zk: vec4<f32> }

fn group_at(row: Row, e: u32) -> Group {
  var g = Group(vec4<f32>(0.0), vec4<f32>(0.0));
  for (var c = 0u; c < 4u; c++) {
    if (e + c < p.W) {
      let q = softVal[row.e0 + e + c];
      let k = soft_col(row, e + c);
      if (q != 0.0 && k < p.V) {
        g.q[c] = q;
        g.zk[c] = z_at(row.base + k);
      }
    }
  }
  return g;
}

// Zb·A_k and Zb·B_k of the group's 4 entries, over logits t, t + T, ...
fn group_part(row: Row, t: u32, T: u32, M: f32, zk: vec4<f32>) -> array<vec4<f32>, 2> {
  var A = vec4<f32>(0.0);
  var B = vec4<f32>(0.0);
  for (var j0 = t; j0 < p.V; j0 += 4u * BLOCK * T) {
    var a = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    let end = min(p.V, j0 + 4u * BLOCK * T);
    for (var j = j0; j < end; j += T) {
      let z = z_at(row.base + j);
      let d = vec4<f32>(z) - zk;
      let ew = exp((z - M) * p.invBeta) * sigm4(SLOPE * d);
      a += ew * d;
      b += ew;
    }
    A += a;
    B += b;
  }
  return array<vec4<f32>, 2>(A, B);
}

// Stores B_k of the group's entries and appends its support to the row's (q_k, z_k) list;
// returns the list's new length.
fn store_group(row: Row, e: u32, g: Group, B: vec4<f32>, n: u32) -> u32 {
  var m = n;
  for (var c = 0u; c < 4u; c++) {
    if (e + c < p.W) { scratch[bk_at(row.e0 + e + c)] = B[c]; }
    if (g.q[c] != 0.0) {
      let i = support_at(row.e0 + m);
      scratch[i] = g.q[c];
      scratch[i + 1u] = g.zk[c];
      m++;
    }
  }
  return m;
}

// The number of support entries of a group (all threads agree: g is uniform).
fn group_n(g: Group) -> u32 { return u32(dot(select(vec4<f32>(0.0), vec4<f32>(1.0), g.q != vec4<f32>(0.0)), vec4<f32>(1.0))); }

// Writes the row's statistics and values. qs = (Q, Σ q (M − z_k)); gls = Zb · soft logsigmoid GEM.
fn finish(row: Row, st: Online, qs: vec4<f32>, gls: f32) {
  let r = row.r;
  let M = st.m;
  let logZ1 = log(st.z1);
  let invZb = 1.0 / st.zb;
  var gem = 0.0;
  var ce = 0.0;
  var b = 1.0;
  var has = 1.0;
  if (row.isHard) {
    ce = logZ1 + (M - row.zy);
    b = st.b * invZb;
    if (LOGSIG) {
      gem = st.a * invZb;
    } else {
      gem = st.s1 * invZb + (M - row.zy);
    }
  } else {
    let Q = qs.x;
    ce = Q * logZ1 + qs.y;
    b = Q;
    has = select(0.0, 1.0, Q > 0.0);
    if (LOGSIG) { gem = gls * invZb; } else { gem = Q * st.s1 * invZb + qs.y; }
    scratch[owner_at(row.s)] = f32(r);
  }
  scratch[4u * r] = M;
  scratch[4u * r + 1u] = log(st.zb);
  scratch[4u * r + 2u] = b;
  scratch[4u * r + 3u] = has;
  rowLoss[2u * r] = gem * has;
  rowLoss[2u * r + 1u] = ce * has;
}

fn finish_empty(r: u32) {
  for (var i = 0u; i < 4u; i++) { scratch[4u * r + i] = 0.0; }
  rowLoss[2u * r] = 0.0;
  rowLoss[2u * r + 1u] = 0.0;
}

// ---- workgroup reductions: 256 → 16 → every thread, two barriers ----------------------------
var<workgroup> red: array<vec4<f32>, 512>;
var<workgroup> red2: array<vec4<f32>, 32>;

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
@compute @workgroup_size(256)
fn loss_rows(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= p.rows) { return; }
  let t = lid.x;
  let row = row_of(r);
  if (!row.isSoft && !row.isHard) {
    if (t == 0u) { finish_empty(r); }
    return;
  }
  let st = reduce_online(t, stream(row, t, WG));
  var qs = vec4<f32>(0.0);
  var gls = 0.0;
  if (row.isSoft) {
    qs = reduce_sum(t, soft_part(row, t, WG, st.m), vec4<f32>(0.0))[0];
    if (LOGSIG) {
      var n = 0u;
      for (var e = 0u; e < p.W; e += 4u) {
        let g = group_at(row, e);
        if (all(g.q == vec4<f32>(0.0))) { continue; }
        let part = group_part(row, t, WG, st.m, g.zk);
        let sums = reduce_sum(t, part[0], part[1]);
        gls += dot(g.q, sums[0]);
        if (t == 0u) { _ = store_group(row, e, g, sums[1] / st.zb, n); }
        n += group_n(g);
      }
      if (t == 0u) { scratch[support_n_at(row.s)] = f32(n); }
    }
  }
  if (t == 0u) { finish(row, st, qs, gls); }
}

@compute @workgroup_size(16)
fn loss_rows_direct(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * 16u;
  if (r >= p.rows) { return; }
  let row = row_of(r);
  if (!row.isSoft && !row.isHard) {
    finish_empty(r);
    return;
  }
  let st = stream(row, 0u, 1u);
  var qs = vec4<f32>(0.0);
  var gls = 0.0;
  if (row.isSoft) {
    qs = soft_part(row, 0u, 1u, st.m);
    if (LOGSIG) {
      var n = 0u;
      for (var e = 0u; e < p.W; e += 4u) {
        let g = group_at(row, e);
        if (all(g.q == vec4<f32>(0.0))) { continue; }
        let part = group_part(row, 0u, 1u, st.m, g.zk);
        gls += dot(g.q, part[0]);
        n = store_group(row, e, g, part[1] / st.zb, n);
      }
      scratch[support_n_at(row.s)] = f32(n);
    }
  }
  finish(row, st, qs, gls);
}

// ---- loss_reduce: count and means ---------------------------------------------------------
fn reduce_part(t: u32, T: u32) -> vec4<f32> {
  var acc = vec4<f32>(0.0);
  for (var r = t; r < p.rows; r += T) {
    if (scratch[4u * r + 3u] > 0.0) { acc += vec4<f32>(rowLoss[2u * r], rowLoss[2u * r + 1u], 1.0, 0.0); }
  }
  return acc;
}

fn write_means(s: vec4<f32>) {
  let inv = select(0.0, 1.0 / s.z, s.z > 0.0);
  out[0] = s.x * inv;
  out[1] = s.y * inv;
  out[2] = s.z;
  out[3] = inv;
}

@compute @workgroup_size(256)
fn loss_reduce(@builtin(local_invocation_id) lid: vec3<u32>) {
  let s = reduce_sum(lid.x, reduce_part(lid.x, WG), vec4<f32>(0.0))[0];
  if (lid.x == 0u) { write_means(s); }
}

@compute @workgroup_size(1)
fn loss_reduce_direct() {
  write_means(reduce_part(0u, 1u));
}

// ---- loss_grad: dz of row r, scaled by 1/count -----------------------------------------------
// Row constants, loaded once per thread.
struct GradRow { ok: bool, base: u32, M: f32, logZb: f32, b: f32, invN: f32, soft: bool, y: u32, zy: f32, e0: u32, n: u32 }

fn grad_row(r: u32) -> GradRow {
  let si = 4u * r;
  let invN = out[3];
  let tgt = targets[r];
  let soft = HAS_SOFT && tgt >= SOFT_TARGET;
  let base = r * p.V;
  var g = GradRow(scratch[si + 3u] > 0.0 && invN != 0.0, base, scratch[si], scratch[si + 1u], scratch[si + 2u],
                  invN, soft, 0u, 0.0, 0u, 0u);
  if (g.ok) {
    if (soft) {
      let sr = u32(tgt - SOFT_TARGET);
      g.e0 = sr * p.W;
      if (LOGSIG) { g.n = u32(scratch[support_n_at(sr)]); }
    } else {
      g.y = u32(tgt);
      g.zy = z_at(base + g.y);
    }
  }
  return g;
}

// dz of logits m0..m0+3 (z their values).
fn grad_quad(g: GradRow, m0: u32, z: vec4<f32>) -> vec4<f32> {
  let s = exp((z - g.M) * p.invBeta - g.logZb);
  let m = vec4<u32>(m0, m0 + 1u, m0 + 2u, m0 + 3u);
  var d: vec4<f32>;
  if (!HAS_SOFT || !g.soft) {
    d = s;
    if (LOGSIG) { d = s * sigm4(SLOPE * (z - g.zy)); }
    d = select(d, vec4<f32>(-g.b), m == vec4<u32>(g.y));
  } else {
    if (LOGSIG) {
      // Over the support list loss_rows left: (q_k, z_k) pairs.
      var c4 = vec4<f32>(0.0);
      for (var e = 0u; e < g.n; e++) {
        let i = support_at(g.e0 + e);
        c4 += scratch[i] * sigm4(SLOPE * (z - scratch[i + 1u]));
      }
      d = s * c4;
    } else {
      d = g.b * s;
    }
    if (!flag(F_SOFT_IDX) && m0 + 3u >= p.softOffset && m0 < p.softOffset + p.W) {
      // Window: q_m sits at entry m − softOffset.
      for (var c = 0u; c < 4u; c++) {
        let e = m[c] - p.softOffset;
        if (m[c] >= p.softOffset && e < p.W) {
          let q = softVal[g.e0 + e];
          if (q != 0.0) {
            var bk = 1.0;
            if (LOGSIG) { bk = scratch[bk_at(g.e0 + e)]; }
            d[c] -= q * bk;
          }
        }
      }
    }
  }
  return d * g.invN;
}

@compute @workgroup_size(64)
fn loss_grad(@builtin(local_invocation_id) lid: vec3<u32>,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.y + wid.z * nwg.y;
  if (r >= p.rows) { return; }
  let g = grad_row(r);
  let V = p.V;
  for (var i = 0u; i < QPT; i++) {
    let m0 = (wid.x * 64u * QPT + i * 64u + lid.x) * 4u;
    if (m0 >= V) { break; }
    var z = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
      if (m0 + c < V) { z[c] = z_at(g.base + m0 + c); }
    }
    var d = vec4<f32>(0.0);
    if (g.ok) { d = grad_quad(g, m0, z); }
    for (var c = 0u; c < 4u; c++) {
      if (m0 + c < V) { grad[g.base + m0 + c] = d[c]; }
    }
  }
}

@compute @workgroup_size(64)
fn loss_grad4(@builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.y + wid.z * nwg.y;
  if (r >= p.rows) { return; }
  let g = grad_row(r);
  let q0 = g.base >> 2u;
  for (var i = 0u; i < QPT; i++) {
    let qi = wid.x * 64u * QPT + i * 64u + lid.x;
    if (qi * 4u >= p.V) { break; }
    var d = vec4<f32>(0.0);
    if (g.ok) { d = grad_quad(g, qi * 4u, logits[q0 + qi]); }
    grad4[q0 + qi] = d;
  }
}

// ---- loss_scatter: −q_m B_m at the columns of indexed soft rows ----------------------------
@compute @workgroup_size(64)
fn loss_scatter(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.nSoft * p.W) { return; }
  let s = i / p.W;
  let q = softVal[i];
  let k = softIdx[i];
  let r = u32(scratch[owner_at(s)]);
  let invN = out[3];
  // The owner slot is only written for soft rows that some row targets: check it.
  if (q == 0.0 || k >= p.V || invN == 0.0 || r >= p.rows || targets[r] != SOFT_TARGET + i32(s)) { return; }
  if (scratch[4u * r + 3u] <= 0.0) { return; }
  var bk = 1.0;
  if (LOGSIG) { bk = scratch[bk_at(i)]; }
  grad[r * p.V + k] -= invN * q * bk;
}
