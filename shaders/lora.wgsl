// LoRA (DESIGN §1.2):  y = x W + b + s · (x A) B,   s = alpha / r,   W and b frozen.
//   x (M,K): M = batch·tokens rows of K = in features;  W (K,N);  A (K,R);  B (R,N);  R ≤ 64.
// The two big products (x W + b forward, g Wᵀ backward) are matmul.wgsl dispatches; this file
// holds the rank-R side, one fused dispatch per pass:
//   lora_forward   u = drop(x) A, then y += s · u B          (y already holds x W + b;
//                  with N = 0 only the state is written, for a backward without a forward)
//   lora_backward  du = s · g Bᵀ, then dx = drop'(du Aᵀ)       (a matmul then adds g Wᵀ into dx;
//                  dB += s · uᵀ g and dA += drop(x)ᵀ du are matmuls with transA)
// State kept from forward to backward, one buffer S: u (M,R) at 0; drop(x) (M,K) at p.offXd when
// dropout is on (dA needs it). drop'(·) multiplies by the same keep mask and 1/(1−p).
//
// Schedule. A workgroup owns TM = 4·WR rows and all R rank columns. Phase 1: thread (ks, cq, rq)
// accumulates the 4×4 block rows 4rq.., rank columns 4cq.. over every KS-th quad of the long
// dimension (K forward, N backward), as mat4x4 products of vec4 quads read straight from memory;
// the KS partial blocks meet in workgroup memory. The finished rank tile stays in workgroup memory
// for phase 2, which sweeps the workgroup's rows across all N (forward) or K (backward) columns.
// Defines (prepended consts): RQ = ceil(R/4); WR, row quads per workgroup; KS, the reduction
// split (1 on CPU-emulated adapters, where a barrier costs a coroutine switch per invocation);
// VEC_K, VEC_N, VEC_R: K, N, R are multiples of 4, so a quad is one aligned vec4 load; DROPOUT.

struct Params {
  M: u32, K: u32, N: u32, R: u32,
  scale: f32,      // s
  drop: u32,       // dropout: an element is kept when its hash is ≥ drop (drop = p·2³²)
  seedHash: u32,   // hash32(seed) of this forward's mask
  invKeep: f32,    // 1 / (1 − p)
  offXd: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

const WG: u32 = KS * RQ * WR;   // threads per workgroup
const TM: u32 = 4u * WR;        // rows per workgroup

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;        // x (M,K)
@group(0) @binding(2) var<storage, read> A: array<vec4<f32>>;        // A (K,R)
@group(0) @binding(3) var<storage, read> B: array<vec4<f32>>;        // B (R,N)
@group(0) @binding(4) var<storage, read_write> S: array<f32>;        // state: u (M,R) | drop(x) (M,K)
@group(0) @binding(5) var<storage, read_write> Y: array<f32>;        // y (M,N)
@group(0) @binding(6) var<storage, read> G: array<vec4<f32>>;        // g = dL/dy (M,N)
@group(0) @binding(7) var<storage, read_write> DU: array<f32>;       // du (M,R)
@group(0) @binding(8) var<storage, read_write> DX: array<f32>;       // dx (M,K)

var<workgroup> red: array<mat4x4<f32>, WG>;       // phase 1 partial blocks (KS > 1)
var<workgroup> tile: array<vec4<f32>, TM * RQ>;   // rank tile: quad q of local row l at l·RQ + q

// ---- loads ------------------------------------------------------------------------------
// How many of the 4 elements starting at `start` lie below `limit`, 0 if `inside` fails.
fn avail(start: u32, limit: u32, inside: bool) -> u32 {
  if (!inside || start >= limit) { return 0u; }
  return min(4u, limit - start);
}

// The quad at element e of which the first n exist (n < 4 only at a ragged edge).
fn quadX(e: u32, n: u32) -> vec4<f32> {
  if (VEC_K) { if (n >= 4u) { return X[e >> 2u]; } return vec4<f32>(0.0); }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (j < n) { let i = e + j; v[j] = X[i >> 2u][i & 3u]; } }
  return v;
}
fn quadA(e: u32, n: u32) -> vec4<f32> {
  if (VEC_R) { if (n >= 4u) { return A[e >> 2u]; } return vec4<f32>(0.0); }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (j < n) { let i = e + j; v[j] = A[i >> 2u][i & 3u]; } }
  return v;
}
fn quadB(e: u32, n: u32) -> vec4<f32> {
  if (VEC_N) { if (n >= 4u) { return B[e >> 2u]; } return vec4<f32>(0.0); }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (j < n) { let i = e + j; v[j] = B[i >> 2u][i & 3u]; } }
  return v;
}
fn quadG(e: u32, n: u32) -> vec4<f32> {
  if (VEC_N) { if (n >= 4u) { return G[e >> 2u]; } return vec4<f32>(0.0); }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) { if (j < n) { let i = e + j; v[j] = G[i >> 2u][i & 3u]; } }
  return v;
}

fn loadX(m: u32, k: u32) -> vec4<f32> { return quadX(m * p.K + k, avail(k, p.K, m < p.M)); }   // x[m][k..k+3]
fn loadA(k: u32, j: u32) -> vec4<f32> { return quadA(k * p.R + j, avail(j, p.R, k < p.K)); }   // A[k][j..j+3]
fn loadB(j: u32, n: u32) -> vec4<f32> { return quadB(j * p.N + n, avail(n, p.N, j < p.R)); }   // B[j][n..n+3]
fn loadG(m: u32, n: u32) -> vec4<f32> { return quadG(m * p.N + n, avail(n, p.N, m < p.M)); }   // g[m][n..n+3]

// ---- dropout on the A-branch input ---------------------------------------------------------
// lowbias32 (C. Wellons): a stateless hash, so the backward regenerates the forward's mask.
// sdk/kernels/lora.ts mirrors it on the host (tests and references).
fn hash32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u; x *= 0x7feb352du; x ^= x >> 15u; x *= 0x846ca68bu; x ^= x >> 16u;
  return x;
}
// The factor drop(x) applies to element idx = m·K + k: 1/(1−p) if kept, else 0.
fn keepScale(idx: u32) -> f32 {
  return select(0.0, p.invKeep, hash32(hash32(idx) ^ p.seedHash) >= p.drop);
}

// drop(x) of a block (column i = x[m0+i][k..k+3]); with `store`, also writes it to the state.
fn dropBlock(m0: u32, k: u32, xm: mat4x4<f32>, store: bool) -> mat4x4<f32> {
  var d = xm;
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    for (var c = 0u; c < 4u; c++) {
      let idx = m * p.K + k + c;
      d[i][c] = xm[i][c] * keepScale(idx);
      if (store && m < p.M && k + c < p.K) { S[p.offXd + idx] = d[i][c]; }
    }
  }
  return d;
}

// ---- phase 1: the rank-R block --------------------------------------------------------------
// Sums the KS partial blocks of one (cq, rq); the result is valid in the ks = 0 thread.
// Threads t .. t+KS−1 hold the partials of the same block.
fn combine(t: u32, ks: u32, acc: mat4x4<f32>) -> mat4x4<f32> {
  if (KS == 1u) { return acc; }
  red[t] = acc;
  workgroupBarrier();
  var s = acc;
  if (ks == 0u) { for (var i = 1u; i < KS; i++) { s += red[t + i]; } }
  return s;
}

// u block = drop(x)[m0..m0+3, :] A[:, j0..j0+3] over this thread's share of K (column i = row m0+i).
fn projectBlock(m0: u32, j0: u32, ks: u32, storeXd: bool) -> mat4x4<f32> {
  var acc = mat4x4<f32>();
  for (var k = ks * 4u; k < p.K; k += 4u * KS) {
    var xm = mat4x4<f32>(loadX(m0, k), loadX(m0 + 1u, k), loadX(m0 + 2u, k), loadX(m0 + 3u, k));
    if (DROPOUT) { xm = dropBlock(m0, k, xm, storeXd); }
    let am = mat4x4<f32>(loadA(k, j0), loadA(k + 1u, j0), loadA(k + 2u, j0), loadA(k + 3u, j0));
    acc += am * xm;   // column i: Σ_c A[k+c][j0..] · x[m0+i][k+c]
  }
  return acc;
}

// du block = g[m0..m0+3, :] B[j0..j0+3, :]ᵀ over this thread's share of N (unscaled).
fn gradBlock(m0: u32, j0: u32, ks: u32) -> mat4x4<f32> {
  var acc = mat4x4<f32>();
  for (var n = ks * 4u; n < p.N; n += 4u * KS) {
    let gm = mat4x4<f32>(loadG(m0, n), loadG(m0 + 1u, n), loadG(m0 + 2u, n), loadG(m0 + 3u, n));
    let bm = mat4x4<f32>(loadB(j0, n), loadB(j0 + 1u, n), loadB(j0 + 2u, n), loadB(j0 + 3u, n));
    acc += transpose(bm) * gm;   // column i, entry c: dot(B[j0+c][n..], g[m0+i][n..])
  }
  return acc;
}

// The thread's finished block into the rank tile (ks = 0 only).
fn tileStore(rq: u32, cq: u32, blk: mat4x4<f32>) {
  for (var i = 0u; i < 4u; i++) { tile[(rq * 4u + i) * RQ + cq] = blk[i]; }
}

// The tile block of local rows l0..l0+3, rank quad jq (column i = row l0+i).
fn tileBlock(l0: u32, jq: u32) -> mat4x4<f32> {
  return mat4x4<f32>(tile[l0 * RQ + jq], tile[(l0 + 1u) * RQ + jq], tile[(l0 + 2u) * RQ + jq], tile[(l0 + 3u) * RQ + jq]);
}

// Phase 1 of the forward for workgroup rows mb..: u into the state and the tile.
fn projectTile(t: u32, mb: u32) {
  let ks = t % KS;
  let cq = (t / KS) % RQ;
  let rq = t / (KS * RQ);
  let m0 = mb + rq * 4u;
  let u = combine(t, ks, projectBlock(m0, cq * 4u, ks, cq == 0u));
  if (ks == 0u) {
    tileStore(rq, cq, u);
    for (var i = 0u; i < 4u; i++) {
      for (var c = 0u; c < 4u; c++) {
        if (m0 + i < p.M && cq * 4u + c < p.R) { S[(m0 + i) * p.R + cq * 4u + c] = u[i][c]; }
      }
    }
  }
}

// ---- entry points ---------------------------------------------------------------------------
// lora_forward: x (M,K), A (K,R), B (R,N) → state u (M,R) [+ drop(x) (M,K)]; y (M,N) += s · u B.
// Workgroups: ceil(M / TM).
@compute @workgroup_size(WG)
fn lora_forward(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let mb = wid.x * TM;
  projectTile(t, mb);
  workgroupBarrier();
  // Phase 2: y[mb.., n..n+3] += s · tile B, sweeping all N quads.
  let nq = (p.N + 3u) / 4u;
  for (var b = t; b < WR * nq; b += WG) {
    let n = (b % nq) * 4u;
    let l0 = (b / nq) * 4u;
    if (mb + l0 >= p.M) { break; }
    var acc = mat4x4<f32>();
    for (var jq = 0u; jq < RQ; jq++) {
      let j = jq * 4u;
      let bm = mat4x4<f32>(loadB(j, n), loadB(j + 1u, n), loadB(j + 2u, n), loadB(j + 3u, n));
      acc += bm * tileBlock(l0, jq);   // column i: Σ_c B[j+c][n..] · u[row i][j+c]
    }
    for (var i = 0u; i < 4u; i++) {
      let m = mb + l0 + i;
      if (m >= p.M) { break; }
      for (var c = 0u; c < 4u; c++) {
        if (n + c < p.N) { let idx = m * p.N + n + c; Y[idx] = Y[idx] + p.scale * acc[i][c]; }
      }
    }
  }
}

// lora_backward: g (M,N), B (R,N), A (K,R) → du = s · g Bᵀ (M,R); dx = drop'(du Aᵀ) (M,K),
// overwritten (the g Wᵀ matmul accumulates onto it afterwards). Workgroups: ceil(M / TM).
@compute @workgroup_size(WG)
fn lora_backward(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let mb = wid.x * TM;
  let ks = t % KS;
  let cq = (t / KS) % RQ;
  let rq = t / (KS * RQ);
  let m0 = mb + rq * 4u;
  let du = combine(t, ks, gradBlock(m0, cq * 4u, ks)) * p.scale;
  if (ks == 0u) {
    tileStore(rq, cq, du);
    for (var i = 0u; i < 4u; i++) {
      for (var c = 0u; c < 4u; c++) {
        if (m0 + i < p.M && cq * 4u + c < p.R) { DU[(m0 + i) * p.R + cq * 4u + c] = du[i][c]; }
      }
    }
  }
  workgroupBarrier();
  // Phase 2: dx[mb.., k..k+3] = drop'(tile Aᵀ), sweeping all K quads.
  let kq = (p.K + 3u) / 4u;
  for (var b = t; b < WR * kq; b += WG) {
    let k = (b % kq) * 4u;
    let l0 = (b / kq) * 4u;
    if (mb + l0 >= p.M) { break; }
    var acc = mat4x4<f32>();
    for (var jq = 0u; jq < RQ; jq++) {
      let j = jq * 4u;
      let am = mat4x4<f32>(loadA(k, j), loadA(k + 1u, j), loadA(k + 2u, j), loadA(k + 3u, j));
      acc += transpose(am) * tileBlock(l0, jq);   // column i, entry c: dot(A[k+c][j..], du[row i][j..])
    }
    for (var i = 0u; i < 4u; i++) {
      let m = mb + l0 + i;
      if (m >= p.M) { break; }
      for (var c = 0u; c < 4u; c++) {
        if (k + c < p.K) {
          let idx = m * p.K + k + c;
          var v = acc[i][c];
          if (DROPOUT) { v *= keepScale(idx); }
          DX[idx] = v;
        }
      }
    }
  }
}
