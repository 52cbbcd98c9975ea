// attention: scaled dot-product attention with grouped-query heads, forward and backward.
//   q  (B·Sq, Hq·Dh)   row (b,i) holds the Hq query heads of query row i of entry b
//   k,v (B·Sk, Hkv·Dh) row (b,j) holds the Hkv key/value heads of key position j
//   o  (B·Sq, Hq·Dh)   the output, laid out as q
//   stats (2·B·Sq·Hq)  [0, N): logsumexp of each (b,i,h) score row; [N, 2N): D = rowsum(dO ⊙ o)
//   info (2·B)         per entry b: len_b (valid positions), pre_b (full-attention prefix)
// Head h reads kv head h / G (G = Hq/Hkv). Query row i sits at absolute position qpos0 + i
// (0 for a full sequence, the cache length for incremental decoding); key row j is position j.
// Mask: the query at position t sees keys [0, visible(t)), with
//   visible(t) = min(max(t + 1, pre_b if t < pre_b), len_b, Sk)
// i.e. causal, plus full attention among the first pre_b positions (image + prompt, PaliGemma),
// minus padding. Query rows at positions ≥ len_b output 0 and get no gradient.
// Scores s = scale · q·k (scale = 1/√Dh); p = exp(s − lse).
//   attn_forward        o = softmax(s) v, online (flash-style): keys are visited 4 at a time,
//                       rescaling the running sum once per 4; writes o and lse. Nothing of size
//                       S×S is ever stored.
//   attn_backward_prep  D = rowsum(dO ⊙ o)
//   attn_backward_dq    dq = scale · Σ_j p (dO·v_j − D) k_j           (one pass over keys per row)
//   attn_backward_dkv   dv_j = Σ_{h in group} Σ_i p dO_i;  dk_j = scale · Σ Σ p (dO_i·v_j − D) q_i
//                       (one pass over queries per key row: no atomics, deterministic)
//   kv_append           copies n new k/v rows into a cache (B, Sk, Hkv·Dh) at rows qpos0..
// Defines (prepended consts): DH4 = ceil(Dh/4); VEC: Dh % 4 == 0 (a quad is one vec4 load);
// R rows per thread; WG threads per workgroup; TILED: the workgroup stages TILE rows of k/v
// (or q/dO) at a time in workgroup memory (GPUs); otherwise each thread reads them straight
// from memory 4 at a time, without barriers (CPU-emulated adapters, where a barrier switches
// coroutines and workgroup memory is no faster than a buffer).
// Every `var` is initialised explicitly: on Dawn + SwiftShader a `var` declared without an
// initialiser inside a loop body kept its value from the previous iteration.

struct Params {
  B: u32, Sq: u32, Sk: u32, qpos0: u32,
  Hq: u32, Hkv: u32, G: u32, Dh: u32,
  scale: f32, n: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> Q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> K: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> V: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
@group(0) @binding(5) var<storage, read_write> STATS: array<f32>;
@group(0) @binding(6) var<storage, read> INFO: array<u32>;
@group(0) @binding(7) var<storage, read> DO: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> OF: array<vec4<f32>>;   // the forward's o, read back
@group(0) @binding(9) var<storage, read_write> DQ: array<f32>;
@group(0) @binding(10) var<storage, read_write> DK: array<f32>;
@group(0) @binding(11) var<storage, read_write> DV: array<f32>;

const NQ: u32 = R * DH4;        // quads of R rows
const NEG: f32 = -1e30;         // "no score yet" (finite: no inf arithmetic)
const TQ: u32 = TILE * DH4;     // quads of one staged tile (TILE: rows per tile, a multiple of 4)

// Workgroup memory is only used when TILED (a token size otherwise).
var<workgroup> T1: array<vec4<f32>, select(4u, TQ, TILED)>;    // k (forward, dq) or q (dkv) rows
var<workgroup> T2: array<vec4<f32>, select(4u, TQ, TILED)>;    // v (forward, dq) or dO (dkv) rows
var<workgroup> TL: array<vec4<f32>, select(4u, TILE, TILED)>;  // dkv: (lse, D, visible, real) per query

// ---- indexing and loads ------------------------------------------------------------------
fn qRow(b: u32, i: u32, h: u32) -> u32 { return ((b * p.Sq + i) * p.Hq + h) * p.Dh; }
fn kRow(b: u32, j: u32, hk: u32) -> u32 { return ((b * p.Sk + j) * p.Hkv + hk) * p.Dh; }
fn statIdx(b: u32, i: u32, h: u32) -> u32 { return (b * p.Sq + i) * p.Hq + h; }

// Quad d4 of the row starting at element e (callers check the row; VEC rows are aligned).
fn ldQ(e: u32, d4: u32) -> vec4<f32> {
  if (VEC) { return Q[(e >> 2u) + d4]; }
  var v = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < p.Dh) { let x = e + d4 * 4u + c; v[c] = Q[x >> 2u][x & 3u]; } }
  return v;
}
fn ldK(e: u32, d4: u32) -> vec4<f32> {
  if (VEC) { return K[(e >> 2u) + d4]; }
  var v = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < p.Dh) { let x = e + d4 * 4u + c; v[c] = K[x >> 2u][x & 3u]; } }
  return v;
}
fn ldV(e: u32, d4: u32) -> vec4<f32> {
  if (VEC) { return V[(e >> 2u) + d4]; }
  var v = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < p.Dh) { let x = e + d4 * 4u + c; v[c] = V[x >> 2u][x & 3u]; } }
  return v;
}
fn ldDO(e: u32, d4: u32) -> vec4<f32> {
  if (VEC) { return DO[(e >> 2u) + d4]; }
  var v = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < p.Dh) { let x = e + d4 * 4u + c; v[c] = DO[x >> 2u][x & 3u]; } }
  return v;
}
fn ldOF(e: u32, d4: u32) -> vec4<f32> {
  if (VEC) { return OF[(e >> 2u) + d4]; }
  var v = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < p.Dh) { let x = e + d4 * 4u + c; v[c] = OF[x >> 2u][x & 3u]; } }
  return v;
}

// Writes quad v of the row starting at element e into O / DQ / DK / DV (only d < Dh).
fn stO(e: u32, d4: u32, v: vec4<f32>) {
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < p.Dh) { O[e + d4 * 4u + c] = v[c]; } }
}
fn stDQ(e: u32, d4: u32, v: vec4<f32>) {
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < p.Dh) { DQ[e + d4 * 4u + c] = v[c]; } }
}
fn stDK(e: u32, d4: u32, v: vec4<f32>) {
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < p.Dh) { DK[e + d4 * 4u + c] = v[c]; } }
}
fn stDV(e: u32, d4: u32, v: vec4<f32>) {
  for (var c = 0u; c < 4u; c++) { if (d4 * 4u + c < p.Dh) { DV[e + d4 * 4u + c] = v[c]; } }
}

// ---- mask ----------------------------------------------------------------------------------
// Keys [0, visible(t)) are visible from absolute position t; non-decreasing in t.
fn visible(t: u32, len: u32, pre: u32) -> u32 {
  var e = t + 1u;
  if (t < pre) { e = max(e, pre); }
  return min(e, min(len, p.Sk));
}
// The first absolute query position that sees key j (every later one does too).
fn firstViewer(j: u32, pre: u32) -> u32 {
  if (j < pre) { return 0u; }
  return j;
}

// Key quads of the 4 keys c0..c0+3 (TILED: from the tile staged at t0; else from memory, 0 past Sk).
fn keyMat(b: u32, hk: u32, t0: u32, c0: u32, d4: u32) -> mat4x4<f32> {
  var m = mat4x4<f32>();
  for (var c = 0u; c < 4u; c++) {
    if (TILED) { m[c] = T1[(c0 + c - t0) * DH4 + d4]; }
    else if (c0 + c < p.Sk) { m[c] = ldK(kRow(b, c0 + c, hk), d4); }
  }
  return m;
}
fn valMat(b: u32, hk: u32, t0: u32, c0: u32, d4: u32) -> mat4x4<f32> {
  var m = mat4x4<f32>();
  for (var c = 0u; c < 4u; c++) {
    if (TILED) { m[c] = T2[(c0 + c - t0) * DH4 + d4]; }
    else if (c0 + c < p.Sk) { m[c] = ldV(kRow(b, c0 + c, hk), d4); }
  }
  return m;
}

// TILED: stages k and v rows [t0, t0 + TILE) ∩ [0, hi) of kv head hk into T1, T2.
fn stageKV(li: u32, b: u32, hk: u32, t0: u32, hi: u32) {
  for (var e = li; e < TQ; e += WG) {
    let j = t0 + e / DH4;
    let d4 = e % DH4;
    var kq = vec4<f32>(0.0);
    var vq = vec4<f32>(0.0);
    if (j < hi) { kq = ldK(kRow(b, j, hk), d4); vq = ldV(kRow(b, j, hk), d4); }
    T1[e] = kq;
    T2[e] = vq;
  }
}

// ---- forward ---------------------------------------------------------------------------------
// Workgroup (x, h, b) owns query rows [x·WG·R, (x+1)·WG·R) of head h; thread li owns R of them.
@compute @workgroup_size(WG)
fn attn_forward(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let b = wid.z;
  let h = wid.y;
  let hk = h / p.G;
  let len = INFO[2u * b];
  let pre = INFO[2u * b + 1u];
  let wgRow0 = wid.x * WG * R;
  let row0 = wgRow0 + li * R;
  var q = array<vec4<f32>, NQ>();
  var acc = array<vec4<f32>, NQ>();
  var m = array<f32, R>();
  var l = array<f32, R>();
  var kend = array<u32, R>();
  var hi = 0u;
  for (var r = 0u; r < R; r++) {
    m[r] = NEG;
    let i = row0 + r;
    if (i < p.Sq && p.qpos0 + i < len) {
      kend[r] = visible(p.qpos0 + i, len, pre);
      let e = qRow(b, i, h);
      for (var d4 = 0u; d4 < DH4; d4++) { q[r * DH4 + d4] = p.scale * ldQ(e, d4); }
    }
    hi = max(hi, kend[r]);
  }
  // Every thread of a workgroup walks the same tiles (visible() is monotone in the position);
  // each does the chunks below its own `hi`.
  let wgHi = visible(p.qpos0 + min(wgRow0 + WG * R, p.Sq) - 1u, len, pre);
  for (var t0 = 0u; t0 < wgHi; t0 += TILE) {
    if (TILED) {
      stageKV(li, b, hk, t0, wgHi);
      workgroupBarrier();
    }
    let cEnd = min(t0 + TILE, hi);
    for (var c0 = t0; c0 < cEnd; c0 += 4u) {
      // Scores of R rows × keys c0..c0+3.
      var s = array<vec4<f32>, R>();
      for (var d4 = 0u; d4 < DH4; d4++) {
        let km = keyMat(b, hk, t0, c0, d4);
        for (var r = 0u; r < R; r++) { s[r] += q[r * DH4 + d4] * km; }
      }
      // Online softmax: new running max, rescale factor, unnormalised probabilities.
      var pr = array<vec4<f32>, R>();
      var corr = array<f32, R>();
      for (var r = 0u; r < R; r++) {
        let ok = vec4<u32>(c0, c0 + 1u, c0 + 2u, c0 + 3u) < vec4<u32>(kend[r]);
        let sm = select(vec4<f32>(NEG), s[r], ok);
        let mx = max(m[r], max(max(sm.x, sm.y), max(sm.z, sm.w)));
        corr[r] = exp(m[r] - mx);
        pr[r] = select(vec4<f32>(0.0), exp(sm - mx), ok);
        l[r] = l[r] * corr[r] + dot(pr[r], vec4<f32>(1.0));
        m[r] = mx;
      }
      for (var d4 = 0u; d4 < DH4; d4++) {
        let vm = valMat(b, hk, t0, c0, d4);
        for (var r = 0u; r < R; r++) { acc[r * DH4 + d4] = acc[r * DH4 + d4] * corr[r] + vm * pr[r]; }
      }
    }
    if (TILED) { workgroupBarrier(); }
  }
  let N = p.B * p.Sq * p.Hq;
  for (var r = 0u; r < R; r++) {
    let i = row0 + r;
    if (i >= p.Sq) { break; }
    let e = qRow(b, i, h);
    var inv = 0.0;
    var lse = 0.0;
    if (kend[r] > 0u) { inv = 1.0 / l[r]; lse = m[r] + log(l[r]); }
    for (var d4 = 0u; d4 < DH4; d4++) { stO(e, d4, acc[r * DH4 + d4] * inv); }
    let si = statIdx(b, i, h);
    if (si < N) { STATS[si] = lse; }
  }
}

// ---- backward --------------------------------------------------------------------------------
// D = rowsum(dO ⊙ o) for every (b, i, h): one invocation each; workgroup (x, 1, b).
@compute @workgroup_size(64)
fn attn_backward_prep(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.z;
  let t = gid.x;   // i·Hq + h
  if (t >= p.Sq * p.Hq) { return; }
  let i = t / p.Hq;
  let h = t % p.Hq;
  let e = qRow(b, i, h);
  var d = 0.0;
  for (var d4 = 0u; d4 < DH4; d4++) { d += dot(ldDO(e, d4), ldOF(e, d4)); }
  let N = p.B * p.Sq * p.Hq;
  let si = statIdx(b, i, h);
  if (si < N) { STATS[N + si] = d; }
}

// dq: workgroup (x, h, b) owns query rows as attn_forward; walks the keys the same way.
@compute @workgroup_size(WG)
fn attn_backward_dq(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let b = wid.z;
  let h = wid.y;
  let hk = h / p.G;
  let len = INFO[2u * b];
  let pre = INFO[2u * b + 1u];
  let N = p.B * p.Sq * p.Hq;
  let wgRow0 = wid.x * WG * R;
  let row0 = wgRow0 + li * R;
  var q = array<vec4<f32>, NQ>();
  var g = array<vec4<f32>, NQ>();    // dO rows
  var dq = array<vec4<f32>, NQ>();
  var lse = array<f32, R>();
  var dd = array<f32, R>();
  var kend = array<u32, R>();
  var hi = 0u;
  for (var r = 0u; r < R; r++) {
    let i = row0 + r;
    if (i < p.Sq && p.qpos0 + i < len) {
      kend[r] = visible(p.qpos0 + i, len, pre);
      let e = qRow(b, i, h);
      for (var d4 = 0u; d4 < DH4; d4++) { q[r * DH4 + d4] = p.scale * ldQ(e, d4); g[r * DH4 + d4] = ldDO(e, d4); }
      let si = statIdx(b, i, h);
      if (si < N) { lse[r] = STATS[si]; dd[r] = STATS[N + si]; }
    }
    hi = max(hi, kend[r]);
  }
  let wgHi = visible(p.qpos0 + min(wgRow0 + WG * R, p.Sq) - 1u, len, pre);
  for (var t0 = 0u; t0 < wgHi; t0 += TILE) {
    if (TILED) {
      stageKV(li, b, hk, t0, wgHi);
      workgroupBarrier();
    }
    let cEnd = min(t0 + TILE, hi);
    for (var c0 = t0; c0 < cEnd; c0 += 4u) {
      var s = array<vec4<f32>, R>();
      var dp = array<vec4<f32>, R>();
      var kc = array<mat4x4<f32>, DH4>();   // direct: the chunk's keys, kept for the dq pass
      for (var d4 = 0u; d4 < DH4; d4++) {
        let km = keyMat(b, hk, t0, c0, d4);
        let vm = valMat(b, hk, t0, c0, d4);
        if (!TILED) { kc[d4] = km; }
        for (var r = 0u; r < R; r++) { s[r] += q[r * DH4 + d4] * km; dp[r] += g[r * DH4 + d4] * vm; }
      }
      var ds = array<vec4<f32>, R>();
      for (var r = 0u; r < R; r++) {
        let ok = vec4<u32>(c0, c0 + 1u, c0 + 2u, c0 + 3u) < vec4<u32>(kend[r]);
        let pr = select(vec4<f32>(0.0), exp(s[r] - lse[r]), ok);
        ds[r] = pr * (dp[r] - dd[r]);
      }
      for (var d4 = 0u; d4 < DH4; d4++) {
        var km: mat4x4<f32>;
        if (TILED) { km = keyMat(b, hk, t0, c0, d4); } else { km = kc[d4]; }
        for (var r = 0u; r < R; r++) { dq[r * DH4 + d4] += km * ds[r]; }
      }
    }
    if (TILED) { workgroupBarrier(); }
  }
  for (var r = 0u; r < R; r++) {
    let i = row0 + r;
    if (i >= p.Sq) { break; }
    let e = qRow(b, i, h);
    for (var d4 = 0u; d4 < DH4; d4++) { stDQ(e, d4, p.scale * dq[r * DH4 + d4]); }
  }
}

// Query quads of the 4 queries c0..c0+3 of head h (TILED: from the tile staged at t0).
fn queryMat(b: u32, h: u32, t0: u32, c0: u32, d4: u32) -> mat4x4<f32> {
  var m = mat4x4<f32>();
  for (var c = 0u; c < 4u; c++) {
    if (TILED) { m[c] = T1[(c0 + c - t0) * DH4 + d4]; }
    else if (c0 + c < p.Sq) { m[c] = ldQ(qRow(b, c0 + c, h), d4); }
  }
  return m;
}
fn gradMat(b: u32, h: u32, t0: u32, c0: u32, d4: u32) -> mat4x4<f32> {
  var m = mat4x4<f32>();
  for (var c = 0u; c < 4u; c++) {
    if (TILED) { m[c] = T2[(c0 + c - t0) * DH4 + d4]; }
    else if (c0 + c < p.Sq) { m[c] = ldDO(qRow(b, c0 + c, h), d4); }
  }
  return m;
}
// (lse, D, visible, valid) of query row i of head h; valid is 1 when the row is a real position.
fn queryStats(b: u32, h: u32, i: u32, len: u32, pre: u32) -> vec4<f32> {
  let N = p.B * p.Sq * p.Hq;
  let si = statIdx(b, i, h);
  if (i >= p.Sq || p.qpos0 + i >= len || si >= N) { return vec4<f32>(0.0); }
  return vec4<f32>(STATS[si], STATS[N + si], f32(visible(p.qpos0 + i, len, pre)), 1.0);
}

// dk, dv: workgroup (x, hk, b) owns key rows [x·WG·R, (x+1)·WG·R) of kv head hk; thread li
// owns R of them and walks every (query head of the group, query row) that sees them.
@compute @workgroup_size(WG)
fn attn_backward_dkv(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let b = wid.z;
  let hk = wid.y;
  let len = INFO[2u * b];
  let pre = INFO[2u * b + 1u];
  let wgRow0 = wid.x * WG * R;
  let row0 = wgRow0 + li * R;
  var k = array<vec4<f32>, NQ>();
  var v = array<vec4<f32>, NQ>();
  var dk = array<vec4<f32>, NQ>();
  var dv = array<vec4<f32>, NQ>();
  for (var r = 0u; r < R; r++) {
    let j = row0 + r;
    if (j < min(len, p.Sk)) {
      let e = kRow(b, j, hk);
      for (var d4 = 0u; d4 < DH4; d4++) { k[r * DH4 + d4] = p.scale * ldK(e, d4); v[r * DH4 + d4] = ldV(e, d4); }
    }
  }
  // Query rows that can see any of these keys: [first, qEnd).
  let qEnd = min(p.Sq, select(0u, len - p.qpos0, len > p.qpos0));
  var first = firstViewer(row0, pre);
  first = select(0u, first - p.qpos0, first > p.qpos0);
  let wgView = firstViewer(wgRow0, pre);
  let wgFirst = select(0u, wgView - p.qpos0, wgView > p.qpos0);
  for (var gi = 0u; gi < p.G; gi++) {
    let h = hk * p.G + gi;
    for (var t0 = wgFirst; t0 < qEnd; t0 += TILE) {
      if (TILED) {
        for (var e = li; e < TQ; e += WG) {
          let i = t0 + e / DH4;
          let d4 = e % DH4;
          var qq = vec4<f32>(0.0);
          var gq = vec4<f32>(0.0);
          if (i < qEnd) { qq = ldQ(qRow(b, i, h), d4); gq = ldDO(qRow(b, i, h), d4); }
          T1[e] = qq;
          T2[e] = gq;
        }
        for (var c = li; c < TILE; c += WG) { TL[c] = queryStats(b, h, t0 + c, len, pre); }
        workgroupBarrier();
      }
      // This thread's first chunk: 4-aligned relative to t0 so that it stays inside the tile.
      var c0 = t0;
      if (first > t0) { c0 = t0 + ((first - t0) & ~3u); }
      let cEnd = min(t0 + TILE, qEnd);
      for (; c0 < cEnd; c0 += 4u) {
        var st = array<vec4<f32>, 4>();
        for (var c = 0u; c < 4u; c++) {
          if (TILED) { st[c] = TL[c0 + c - t0]; } else { st[c] = queryStats(b, h, c0 + c, len, pre); }
        }
        let lse4 = vec4<f32>(st[0].x, st[1].x, st[2].x, st[3].x);
        let dd4 = vec4<f32>(st[0].y, st[1].y, st[2].y, st[3].y);
        let vis4 = vec4<f32>(st[0].z, st[1].z, st[2].z, st[3].z);
        let real4 = vec4<f32>(st[0].w, st[1].w, st[2].w, st[3].w) > vec4<f32>(0.5);
        var s = array<vec4<f32>, R>();
        var dp = array<vec4<f32>, R>();
        var qc = array<mat4x4<f32>, DH4>();   // direct: the chunk's queries and dO, kept for
        var gc = array<mat4x4<f32>, DH4>();   // the dk, dv pass
        for (var d4 = 0u; d4 < DH4; d4++) {
          let qm = queryMat(b, h, t0, c0, d4);
          let gm = gradMat(b, h, t0, c0, d4);
          if (!TILED) { qc[d4] = qm; gc[d4] = gm; }
          for (var r = 0u; r < R; r++) { s[r] += k[r * DH4 + d4] * qm; dp[r] += v[r * DH4 + d4] * gm; }
        }
        var pr = array<vec4<f32>, R>();
        var ds = array<vec4<f32>, R>();
        for (var r = 0u; r < R; r++) {
          let ok = real4 & (vec4<f32>(f32(row0 + r)) < vis4);
          pr[r] = select(vec4<f32>(0.0), exp(s[r] - lse4), ok);
          ds[r] = pr[r] * (dp[r] - dd4);
        }
        for (var d4 = 0u; d4 < DH4; d4++) {
          var qm: mat4x4<f32>;
          var gm: mat4x4<f32>;
          if (TILED) { qm = queryMat(b, h, t0, c0, d4); gm = gradMat(b, h, t0, c0, d4); } else { qm = qc[d4]; gm = gc[d4]; }
          for (var r = 0u; r < R; r++) { dv[r * DH4 + d4] += gm * pr[r]; dk[r * DH4 + d4] += qm * ds[r]; }
        }
      }
      if (TILED) { workgroupBarrier(); }
    }
  }
  for (var r = 0u; r < R; r++) {
    let j = row0 + r;
    if (j >= p.Sk) { break; }
    let e = kRow(b, j, hk);
    for (var d4 = 0u; d4 < DH4; d4++) { stDK(e, d4, p.scale * dk[r * DH4 + d4]); stDV(e, d4, dv[r * DH4 + d4]); }
  }
}

// ---- KV cache ------------------------------------------------------------------------------
// kv_append: rows (b, r) of the new k, v (B·n, Hkv·Dh) go to cache rows (b, qpos0 + r) of
// DK, DV (B·Sk, Hkv·Dh). Workgroup (x, 1, b), a grid-stride loop over the n·Hkv·Dh elements.
@compute @workgroup_size(64)
fn kv_append(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
  let b = gid.z;
  let w = p.Hkv * p.Dh;
  let total = p.n * w;
  for (var e = gid.x; e < total; e += nw.x * 64u) {
    let r = e / w;
    let c = e % w;
    if (p.qpos0 + r >= p.Sk) { break; }
    let src = (b * p.n + r) * w + c;
    let dst = (b * p.Sk + p.qpos0 + r) * w + c;
    DK[dst] = K[src >> 2u][src & 3u];
    DV[dst] = V[src >> 2u][src & 3u];
  }
}
