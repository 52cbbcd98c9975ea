// matmul: C[b] = alpha · op(A[b]) · op(B[b]) (+ bias) (+ C[b] when ACCUM)
//   A is (M,K) row-major, or (K,M) when TRANS_A   (so op(A) is M×K)
//   B is (K,N) row-major, or (N,K) when TRANS_B   (so op(B) is K×N)
//   C is (M,N), bias is (N). Batch b = workgroup_id.z; strides and offsets in elements.
// Defines (prepended `const`s, one pipeline per combination):
//   TRANS_A, TRANS_B  operand layouts (the backward passes use AᵀB and ABᵀ);
//   VEC_A, VEC_B      the contiguous dimension, offsets and strides are multiples of 4,
//                     so a quad is one aligned vec4 load (otherwise 4 bounds-checked scalars);
//   HAS_BIAS, ACCUM   epilogue: add bias[n]; add into C instead of overwriting it.
// Two schedules share the loaders and the epilogue:
//   matmul_tiled   64×64 output tile per 16×16 workgroup, 4×4 per thread, K staged through
//                  workgroup memory 16 at a time (the schedule for real GPUs);
//   matmul_direct  16×16 per thread as mat4x4 products of vec4 quads read straight from
//                  memory, no workgroup memory and no barriers, and 4×4 per thread with
//                  bounds-checked loads on the borders, in one dispatch: the schedule for
//                  CPU-emulated adapters (SwiftShader), where every load is a per-lane gather,
//                  workgroup memory is slower still and a barrier switches coroutines, so the
//                  most multiply-adds per load wins.

// fastM … lanes: the direct schedule's split of C (see matmul_direct).
struct Params {
  M: u32, N: u32, K: u32, _pad0: u32,
  fastM: u32, fastN: u32, tilesIn: u32, tilesInN: u32,
  strideA: u32, strideB: u32, strideC: u32, _pad1: u32,
  offA: u32, offB: u32, offC: u32, alpha: f32,
  tilesBottom: u32, tilesBottomN: u32, lanes: u32, _pad4: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// Four consecutive elements from element index e, of which the first `n` exist.
fn quadA(e: u32, n: u32) -> vec4<f32> {
  if (VEC_A) {
    if (n >= 4u) { return A[e >> 2u]; }
    return vec4<f32>(0.0);
  }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) {
    if (j < n) { let i = e + j; v[j] = A[i >> 2u][i & 3u]; }
  }
  return v;
}

fn quadB(e: u32, n: u32) -> vec4<f32> {
  if (VEC_B) {
    if (n >= 4u) { return B[e >> 2u]; }
    return vec4<f32>(0.0);
  }
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < 4u; j++) {
    if (j < n) { let i = e + j; v[j] = B[i >> 2u][i & 3u]; }
  }
  return v;
}

// How many of the 4 elements starting at `start` lie below `limit`, 0 if `inside` fails.
fn avail(start: u32, limit: u32, inside: bool) -> u32 {
  if (!inside || start >= limit) { return 0u; }
  return min(4u, limit - start);
}

// The quad of op(A) along k for row m (TRANS_A: the quad along m for row k).
fn loadAq(b: u32, m: u32, k: u32) -> vec4<f32> {
  let base = p.offA + b * p.strideA;
  if (TRANS_A) { return quadA(base + k * p.M + m, avail(m, p.M, k < p.K)); }
  return quadA(base + m * p.K + k, avail(k, p.K, m < p.M));
}

// The quad of op(B) along n for row k (TRANS_B: the quad along k for row n).
fn loadBq(b: u32, k: u32, n: u32) -> vec4<f32> {
  let base = p.offB + b * p.strideB;
  if (TRANS_B) { return quadB(base + n * p.K + k, avail(k, p.K, n < p.N)); }
  return quadB(base + k * p.N + n, avail(n, p.N, k < p.K));
}

// acc[i][j] is C[m0+i][n0+j] before scaling.
fn store4x4(b: u32, m0: u32, n0: u32, acc: mat4x4<f32>) {
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m >= p.M) { break; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + j;
      if (n >= p.N) { break; }
      let idx = p.offC + b * p.strideC + m * p.N + n;
      var v = p.alpha * acc[i][j];
      if (HAS_BIAS) { v += bias[n]; }
      if (ACCUM) { v += C[idx]; }
      C[idx] = v;
    }
  }
}

// ---- tiled schedule (workgroup memory) ------------------------------------------------
const TK: u32 = 16u;
var<workgroup> As: array<f32, 1024>;   // [TK][64], k-major: a column of the A tile is contiguous
var<workgroup> Bs: array<f32, 1024>;   // [TK][64]

@compute @workgroup_size(16, 16, 1)
fn matmul_tiled(@builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(workgroup_id) wid: vec3<u32>) {
  let b = wid.z;
  let m0 = wid.y * 64u;
  let n0 = wid.x * 64u;
  let t = lid.y * 16u + lid.x;
  var acc = mat4x4<f32>();
  for (var k0 = 0u; k0 < p.K; k0 += TK) {
    // Each of the 256 threads loads one quad of the 64×16 A tile and one of the 16×64 B tile.
    if (TRANS_A) {
      let kr = t >> 4u; let mq = (t & 15u) * 4u;
      let v = loadAq(b, m0 + mq, k0 + kr);
      for (var j = 0u; j < 4u; j++) { As[kr * 64u + mq + j] = v[j]; }
    } else {
      let r = t >> 2u; let kq = (t & 3u) * 4u;
      let v = loadAq(b, m0 + r, k0 + kq);
      for (var j = 0u; j < 4u; j++) { As[(kq + j) * 64u + r] = v[j]; }
    }
    if (TRANS_B) {
      let r = t >> 2u; let kq = (t & 3u) * 4u;
      let v = loadBq(b, k0 + kq, n0 + r);
      for (var j = 0u; j < 4u; j++) { Bs[(kq + j) * 64u + r] = v[j]; }
    } else {
      let kr = t >> 4u; let nq = (t & 15u) * 4u;
      let v = loadBq(b, k0 + kr, n0 + nq);
      for (var j = 0u; j < 4u; j++) { Bs[kr * 64u + nq + j] = v[j]; }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      let ai = kk * 64u + lid.y * 4u;
      let bi = kk * 64u + lid.x * 4u;
      let a = vec4<f32>(As[ai], As[ai + 1u], As[ai + 2u], As[ai + 3u]);
      let bv = vec4<f32>(Bs[bi], Bs[bi + 1u], Bs[bi + 2u], Bs[bi + 3u]);
      acc[0] += a.x * bv; acc[1] += a.y * bv; acc[2] += a.z * bv; acc[3] += a.w * bv;
    }
    workgroupBarrier();
  }
  store4x4(b, m0 + lid.y * 4u, n0 + lid.x * 4u, acc);
}

// ---- direct schedule (registers only) ---------------------------------------------------
// matmul_direct: each thread owns a 16×16 block of C as 16 mat4x4 accumulators (acc_rc's
// column i is C[m0+4r+i][n0+4c .. +3]). Per step of 4 k it loads 4 Am_r (column i =
// op(A)[m0+4r+i][k..k+3]) and 4 Bm_c (column j = op(B)[k+j][n0+4c..]), 32 vec4 loads, and
// does acc_rc += Bm_c · Am_r: 1024 multiply-adds (directBlock: the interior [0,M16)×[0,N16)
// of aligned operands, unchecked loads). edgeBlock does the same per 4×4 block with checked
// loads (the rest of C).
fn amatFast(base: u32, m: u32, k: u32) -> mat4x4<f32> {
  if (TRANS_A) {
    let e = (base + k * p.M + m) >> 2u;
    let s = p.M >> 2u;
    return transpose(mat4x4<f32>(A[e], A[e + s], A[e + 2u * s], A[e + 3u * s]));
  }
  let e = (base + m * p.K + k) >> 2u;
  let s = p.K >> 2u;
  return mat4x4<f32>(A[e], A[e + s], A[e + 2u * s], A[e + 3u * s]);
}

fn bmatFast(base: u32, k: u32, n: u32) -> mat4x4<f32> {
  if (TRANS_B) {
    let e = (base + n * p.K + k) >> 2u;
    let s = p.K >> 2u;
    return transpose(mat4x4<f32>(B[e], B[e + s], B[e + 2u * s], B[e + 3u * s]));
  }
  let e = (base + k * p.N + n) >> 2u;
  let s = p.N >> 2u;
  return mat4x4<f32>(B[e], B[e + s], B[e + 2u * s], B[e + 3u * s]);
}

// One element of op(A) / op(B) (in range by construction).
fn aAt(base: u32, m: u32, k: u32) -> f32 {
  var i = base + m * p.K + k;
  if (TRANS_A) { i = base + k * p.M + m; }
  return A[i >> 2u][i & 3u];
}
fn bAt(base: u32, k: u32, n: u32) -> f32 {
  var i = base + k * p.N + n;
  if (TRANS_B) { i = base + n * p.K + k; }
  return B[i >> 2u][i & 3u];
}

// The 16×16 block of C at (m0, n0), inside the interior.
fn directBlock(b: u32, m0: u32, n0: u32) {
  let ba = p.offA + b * p.strideA;
  let bb = p.offB + b * p.strideB;
  var c00 = mat4x4<f32>(); var c01 = mat4x4<f32>(); var c02 = mat4x4<f32>(); var c03 = mat4x4<f32>();
  var c10 = mat4x4<f32>(); var c11 = mat4x4<f32>(); var c12 = mat4x4<f32>(); var c13 = mat4x4<f32>();
  var c20 = mat4x4<f32>(); var c21 = mat4x4<f32>(); var c22 = mat4x4<f32>(); var c23 = mat4x4<f32>();
  var c30 = mat4x4<f32>(); var c31 = mat4x4<f32>(); var c32 = mat4x4<f32>(); var c33 = mat4x4<f32>();
  var k = 0u;
  for (; k + 4u <= p.K; k += 4u) {
    let a0 = amatFast(ba, m0, k); let a1 = amatFast(ba, m0 + 4u, k);
    let a2 = amatFast(ba, m0 + 8u, k); let a3 = amatFast(ba, m0 + 12u, k);
    let b0 = bmatFast(bb, k, n0); let b1 = bmatFast(bb, k, n0 + 4u);
    let b2 = bmatFast(bb, k, n0 + 8u); let b3 = bmatFast(bb, k, n0 + 12u);
    c00 += b0 * a0; c01 += b1 * a0; c02 += b2 * a0; c03 += b3 * a0;
    c10 += b0 * a1; c11 += b1 * a1; c12 += b2 * a1; c13 += b3 * a1;
    c20 += b0 * a2; c21 += b1 * a2; c22 += b2 * a2; c23 += b3 * a2;
    c30 += b0 * a3; c31 += b1 * a3; c32 += b2 * a3; c33 += b3 * a3;
  }
  // K % 4 tail (only TRANS_A or TRANS_B operands can leave one): rank-1 updates.
  for (; k < p.K; k++) {
    let a0 = vec4<f32>(aAt(ba, m0, k), aAt(ba, m0 + 1u, k), aAt(ba, m0 + 2u, k), aAt(ba, m0 + 3u, k));
    let a1 = vec4<f32>(aAt(ba, m0 + 4u, k), aAt(ba, m0 + 5u, k), aAt(ba, m0 + 6u, k), aAt(ba, m0 + 7u, k));
    let a2 = vec4<f32>(aAt(ba, m0 + 8u, k), aAt(ba, m0 + 9u, k), aAt(ba, m0 + 10u, k), aAt(ba, m0 + 11u, k));
    let a3 = vec4<f32>(aAt(ba, m0 + 12u, k), aAt(ba, m0 + 13u, k), aAt(ba, m0 + 14u, k), aAt(ba, m0 + 15u, k));
    let b0 = vec4<f32>(bAt(bb, k, n0), bAt(bb, k, n0 + 1u), bAt(bb, k, n0 + 2u), bAt(bb, k, n0 + 3u));
    let b1 = vec4<f32>(bAt(bb, k, n0 + 4u), bAt(bb, k, n0 + 5u), bAt(bb, k, n0 + 6u), bAt(bb, k, n0 + 7u));
    let b2 = vec4<f32>(bAt(bb, k, n0 + 8u), bAt(bb, k, n0 + 9u), bAt(bb, k, n0 + 10u), bAt(bb, k, n0 + 11u));
    let b3 = vec4<f32>(bAt(bb, k, n0 + 12u), bAt(bb, k, n0 + 13u), bAt(bb, k, n0 + 14u), bAt(bb, k, n0 + 15u));
    c00 += outer(b0, a0); c01 += outer(b1, a0); c02 += outer(b2, a0); c03 += outer(b3, a0);
    c10 += outer(b0, a1); c11 += outer(b1, a1); c12 += outer(b2, a1); c13 += outer(b3, a1);
    c20 += outer(b0, a2); c21 += outer(b1, a2); c22 += outer(b2, a2); c23 += outer(b3, a2);
    c30 += outer(b0, a3); c31 += outer(b1, a3); c32 += outer(b2, a3); c33 += outer(b3, a3);
  }
  store4x4(b, m0, n0, c00); store4x4(b, m0, n0 + 4u, c01); store4x4(b, m0, n0 + 8u, c02); store4x4(b, m0, n0 + 12u, c03);
  store4x4(b, m0 + 4u, n0, c10); store4x4(b, m0 + 4u, n0 + 4u, c11); store4x4(b, m0 + 4u, n0 + 8u, c12); store4x4(b, m0 + 4u, n0 + 12u, c13);
  store4x4(b, m0 + 8u, n0, c20); store4x4(b, m0 + 8u, n0 + 4u, c21); store4x4(b, m0 + 8u, n0 + 8u, c22); store4x4(b, m0 + 8u, n0 + 12u, c23);
  store4x4(b, m0 + 12u, n0, c30); store4x4(b, m0 + 12u, n0 + 4u, c31); store4x4(b, m0 + 12u, n0 + 8u, c32); store4x4(b, m0 + 12u, n0 + 12u, c33);
}

// outer(b, a): column i = a[i] · b (a rank-1 update in the accumulators' layout).
fn outer(bv: vec4<f32>, av: vec4<f32>) -> mat4x4<f32> {
  return mat4x4<f32>(av.x * bv, av.y * bv, av.z * bv, av.w * bv);
}

// The 4×4 block of C at (m0, n0) with bounds-checked loads (a border block).
fn edgeBlock(b: u32, m0: u32, n0: u32) {
  var acc = mat4x4<f32>();
  for (var k = 0u; k < p.K; k += 4u) {
    var Am: mat4x4<f32>;
    var Bm: mat4x4<f32>;
    if (TRANS_A) {
      Am = transpose(mat4x4<f32>(loadAq(b, m0, k), loadAq(b, m0, k + 1u), loadAq(b, m0, k + 2u), loadAq(b, m0, k + 3u)));
    } else {
      Am = mat4x4<f32>(loadAq(b, m0, k), loadAq(b, m0 + 1u, k), loadAq(b, m0 + 2u, k), loadAq(b, m0 + 3u, k));
    }
    if (TRANS_B) {
      Bm = transpose(mat4x4<f32>(loadBq(b, k, n0), loadBq(b, k, n0 + 1u), loadBq(b, k, n0 + 2u), loadBq(b, k, n0 + 3u)));
    } else {
      Bm = mat4x4<f32>(loadBq(b, k, n0), loadBq(b, k + 1u, n0), loadBq(b, k + 2u, n0), loadBq(b, k + 3u, n0));
    }
    acc += Bm * Am;
  }
  store4x4(b, m0, n0, acc);
}

// matmul_direct: C in three parts, one run of workgroups each (x·y flat, batch z), each
// workgroup 4×4 threads, 4 consecutive of which (along x) an emulated adapter runs as one SIMD
// group, so `lanes` says per part whether x runs along M (bit 0: interior, 1: bottom, 2: right):
//   the interior [0, fastM) × [0, fastN) (aligned operands, else empty): tilesIn tiles of 64×64,
//     tilesInN per row of tiles, a 16×16 block per thread (directBlock);
//   the bottom rows [fastM, M) × [0, N): tilesBottom tiles of 16×16, tilesBottomN per row, a
//     4×4 block per thread (edgeBlock);
//   the right columns [0, fastM) × [fastN, N): the remaining workgroups, 16×16 tiles down them.
// Every element of C is summed over k in the same order whichever part and lane computes it.
// The thread's (row, column) of blocks in its workgroup's tile: x along M when bit `part` of
// p.lanes is set, else along N.
fn laneBlock(lid: vec3<u32>, part: u32) -> vec2<u32> {
  if ((p.lanes & part) != 0u) { return lid.xy; }
  return lid.yx;
}

@compute @workgroup_size(4, 4, 1)
fn matmul_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.z;
  var t = wid.y * nwg.x + wid.x;
  if (t < p.tilesIn) {
    let ij = laneBlock(lid, 1u);
    let m0 = (t / p.tilesInN) * 64u + ij.x * 16u;
    let n0 = (t % p.tilesInN) * 64u + ij.y * 16u;
    if (m0 < p.fastM && n0 < p.fastN) { directBlock(b, m0, n0); }
    return;
  }
  t -= p.tilesIn;
  var m0: u32;
  var n0: u32;
  if (t < p.tilesBottom) {
    let ij = laneBlock(lid, 2u);
    m0 = p.fastM + (t / p.tilesBottomN) * 16u + ij.x * 4u;
    n0 = (t % p.tilesBottomN) * 16u + ij.y * 4u;
  } else {
    let ij = laneBlock(lid, 4u);
    m0 = (t - p.tilesBottom) * 16u + ij.x * 4u;
    n0 = p.fastN + ij.y * 4u;
    if (m0 >= p.fastM) { return; }
  }
  if (m0 < p.M && n0 < p.N) { edgeBlock(b, m0, n0); }
}
