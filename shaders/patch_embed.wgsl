// ViT patch extraction (im2col for a convolution with kernel = stride = p) and its inverse.
//   image (B, C, H, W);  patches (B·P, C·p·p), P = (H/p)·(W/p), patch index pr·(W/p) + pc,
//   within a patch channel-major: column c·p² + ky·p + kx. So patches · W, with the ONNX/PyTorch
//   Conv weight (d, C, p, p) reshaped to (d, C·p²) and transposed to (C·p², d), is the Conv.
//   im2col   patches[b·P + pr·gw + pc, c·p² + ky·p + kx] = image[b, c, pr·p + ky, pc·p + kx]
//   col2im   the inverse permutation (patches do not overlap): the gradient to the pixels.
// One invocation per quad of kx. VEC: p and W are multiples of 4 (quads are aligned vec4 loads).

struct Params { B: u32, C: u32, H: u32, W: u32, p: u32, _p0: u32, _p1: u32, _p2: u32 }

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> prm: Params;
// im2col
@group(0) @binding(1) var<storage, read> image: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> patchesOut: array<f32>;
// col2im
@group(0) @binding(1) var<storage, read> patches: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> imageOut: array<f32>;

// Element offsets (image, patches) of this invocation's quad and its length (0: none).
fn quadOf(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> vec3<u32> {
  let t = (wid.y * nwg.x + wid.x) * WG + lid.x;
  let p = prm.p;
  let kq = (p + 3u) / 4u;
  let gw = prm.W / p;
  let P = (prm.H / p) * gw;
  let kx = (t % kq) * 4u;
  var r = t / kq;
  let ky = r % p; r /= p;
  let c = r % prm.C; r /= prm.C;
  let pi = r % P;
  let b = r / P;
  if (b >= prm.B) { return vec3<u32>(0u); }
  let pr = pi / gw;
  let pc = pi % gw;
  let ei = ((b * prm.C + c) * prm.H + pr * p + ky) * prm.W + pc * p + kx;
  let ep = (b * P + pi) * prm.C * p * p + (c * p + ky) * p + kx;
  return vec3<u32>(ei, ep, min(4u, p - kx));
}

@compute @workgroup_size(WG)
fn im2col(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = quadOf(wid, nwg, lid);
  if (q.z == 0u) { return; }
  var v = vec4<f32>(0.0);
  if (VEC) { v = image[q.x >> 2u]; } else {
    for (var j = 0u; j < q.z; j++) { let i = q.x + j; v[j] = image[i >> 2u][i & 3u]; }
  }
  for (var j = 0u; j < q.z; j++) { patchesOut[q.y + j] = v[j]; }
}

@compute @workgroup_size(WG)
fn col2im(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let q = quadOf(wid, nwg, lid);
  if (q.z == 0u) { return; }
  var v = vec4<f32>(0.0);
  if (VEC) { v = patches[q.y >> 2u]; } else {
    for (var j = 0u; j < q.z; j++) { let i = q.y + j; v[j] = patches[i >> 2u][i & 3u]; }
  }
  for (var j = 0u; j < q.z; j++) { imageOut[q.x + j] = v[j]; }
}
