// Convolutional stem of the hybrid ViT: 3×3 convolutions (stride S = 1 or 2, P = 1 or 0 rows and
// columns of zero padding before the map, as many after as the last window needs) as cols · W,
// and 2×2 max pooling (stride 2). Activations are rows of channels (NHWC): x (B·H·W, C), row
// (b·H + y)·W + x. The first stage reads the pixels (B, C, H, W) instead (NCHW: layout 0).
// The convolution's output map is Ho × Wo, Ho = ⌊(H − 1)/S⌋ + 1 (H/S for even H and S = 2).
// With E = 2 the input has two more channels, coordinates (CoordConv): channel C is the pixel's
// column and C + 1 its row, each mapped to (2·i + 1)/n − 1 in (−1, 1); C' = C + E.
// The columns' rows are Kp ≥ 9·C' floats apart (Kp: 9·C' rounded up to a multiple of 4, so that
// the matmul over them takes its vec4 path; the Kp − 9·C' columns past the last are zero).
//   cols3x3          cols (B·Ho·Wo, Kp), column c·9 + ky·3 + kx (channel-major, as the ONNX Conv
//                    weight (Cout, C', 3, 3) reshaped to (Cout, 9·C') and transposed):
//                    cols[(b·Ho + y)·Wo + x, c·9 + ky·3 + kx] = x[b, c, S·y + ky − P, S·x + kx − P], 0 outside.
//   cols3x3_backward dx (B·H·W, C) from dcols (B·Ho·Wo, Kp), NHWC only (the pixels need none;
//                    the coordinates are constants):
//                    dx[b, y, x, c] = Σ_{ky,kx} dcols[(b·Ho + oy)·Wo + ox, c·9 + ky·3 + kx] over the
//                    windows with S·oy = y − ky + P, S·ox = x − kx + P inside the output map. A gather:
//                    no atomics.
//   maxpool2_forward  y (B·(H/2)·(W/2), C) = max of each 2×2 window of a (B·H·W, C).
//   maxpool2_backward da (B·H·W, C): dy of the window at the element that is its maximum (the
//                    first in (0,0), (0,1), (1,0), (1,1) order on ties, as the forward's choice),
//                    0 elsewhere.
// One invocation per output element, but for cols3x3 (one per output pixel and input channel: 9
// columns), cols3x3_backward (one per input pixel and group of 4 channels) and maxpool2_backward
// (one per window: 4 elements). On CPU-emulated adapters each invocation's index
// arithmetic costs about as much as its loads, so fewer, fatter ones win.

// H, W: the input map; S, P: the convolution's stride and leading padding; E: coordinate channels
// (0 or 2); Kp: the columns' row pitch. The pooling entries ignore S, P, E and Kp.
struct Params { B: u32, C: u32, H: u32, W: u32, nhwc: u32, S: u32, P: u32, E: u32, Kp: u32, _p0: u32, _p1: u32, _p2: u32 }

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// maxpool2_backward: the forward input a (src is dy).
@group(0) @binding(3) var<storage, read> fwd: array<f32>;

fn tid(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid.x;
}

// Offset of element (b, c, y, x) in the stage input.
fn at(b: u32, c: u32, y: u32, x: u32) -> u32 {
  if (prm.nhwc == 0u) { return ((b * prm.C + c) * prm.H + y) * prm.W + x; }
  return ((b * prm.H + y) * prm.W + x) * prm.C + c;
}

// One invocation per (output pixel, input channel c'): its 9 columns c'·9 … c'·9 + 8, one input
// address computation per tap instead of per column, and 9× fewer invocations. The last channel's
// invocation also zeroes the row's pitch padding.
@compute @workgroup_size(WG)
fn cols3x3(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = tid(wid, nwg, lid);
  let Cp = prm.C + prm.E;
  let Ho = (prm.H - 1u) / prm.S + 1u;
  let Wo = (prm.W - 1u) / prm.S + 1u;
  if (t >= prm.B * Ho * Wo * Cp) { return; }
  let c = t % Cp;
  var r = t / Cp;
  let x = r % Wo; r /= Wo;
  let y = r % Ho;
  let b = r / Ho;
  let row = ((b * Ho + y) * Wo + x) * prm.Kp;
  let base = row + c * 9u;
  if (c + 1u == Cp) {
    for (var j = 9u * Cp; j < prm.Kp; j++) { dst[row + j] = 0.0; }
  }
  for (var ky = 0u; ky < 3u; ky++) {
    // S·y + ky − P without going below 0: compare before subtracting.
    let sy = prm.S * y + ky;
    let rowIn = sy >= prm.P && sy - prm.P < prm.H;
    let iy = sy - prm.P;
    for (var kx = 0u; kx < 3u; kx++) {
      let sx = prm.S * x + kx;
      var v = 0.0;
      if (rowIn && sx >= prm.P && sx - prm.P < prm.W) {
        let ix = sx - prm.P;
        if (c < prm.C) { v = src[at(b, c, iy, ix)]; }
        else if (c == prm.C) { v = f32(2u * ix + 1u) / f32(prm.W) - 1.0; }
        else { v = f32(2u * iy + 1u) / f32(prm.H) - 1.0; }
      }
      dst[base + ky * 3u + kx] = v;
    }
  }
}

// Channel groups of 4 (cols3x3_backward): one invocation per pixel and group, channels 4g … 4g + 3.
fn groups(c: u32) -> u32 {
  return (c + 3u) / 4u;
}

// One invocation per input pixel and group of 4 channels: each tap's window test once for the
// group, and each channel's sum in the same order as one channel alone (ky, then kx).
@compute @workgroup_size(WG)
fn cols3x3_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = tid(wid, nwg, lid);
  let G = groups(prm.C);
  if (t >= prm.B * prm.H * prm.W * G) { return; }
  let g = t % G;
  var r = t / G;
  let x = r % prm.W; r /= prm.W;
  let y = r % prm.H;
  let b = r / prm.H;
  let c0 = 4u * g;
  let n = min(4u, prm.C - c0);
  let Ho = (prm.H - 1u) / prm.S + 1u;
  let Wo = (prm.W - 1u) / prm.S + 1u;
  var s = vec4<f32>(0.0);
  for (var ky = 0u; ky < 3u; ky++) {
    // The output row oy = (y − ky + P)/S must be whole and lie in [0, Ho).
    let oy1 = y + prm.P;
    if (oy1 < ky || (oy1 - ky) % prm.S != 0u || (oy1 - ky) / prm.S >= Ho) { continue; }
    let oy = (oy1 - ky) / prm.S;
    for (var kx = 0u; kx < 3u; kx++) {
      let ox1 = x + prm.P;
      if (ox1 < kx || (ox1 - kx) % prm.S != 0u || (ox1 - kx) / prm.S >= Wo) { continue; }
      let ox = (ox1 - kx) / prm.S;
      let col = ((b * Ho + oy) * Wo + ox) * prm.Kp + c0 * 9u + ky * 3u + kx;
      var v = vec4<f32>(0.0);
      for (var j = 0u; j < n; j++) { v[j] = src[col + j * 9u]; }
      s += v;
    }
  }
  let out = ((b * prm.H + y) * prm.W + x) * prm.C + c0;
  for (var j = 0u; j < n; j++) { dst[out + j] = s[j]; }
}

// Elements of the pooled map (B·(H/2)·(W/2), C).
fn pooledCount() -> u32 {
  return prm.B * (prm.H / 2u) * (prm.W / 2u) * prm.C;
}

// Offset in the (B·H·W, C) input of the top-left element of pooled element t's 2×2 window.
fn windowStart(t: u32) -> u32 {
  let c = t % prm.C;
  var r = t / prm.C;
  let x = r % (prm.W / 2u); r /= prm.W / 2u;
  let y = r % (prm.H / 2u);
  let b = r / (prm.H / 2u);
  return ((b * prm.H + 2u * y) * prm.W + 2u * x) * prm.C + c;
}

@compute @workgroup_size(WG)
fn maxpool2_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = tid(wid, nwg, lid);
  if (t >= pooledCount()) { return; }
  let i0 = windowStart(t);
  let i1 = i0 + prm.W * prm.C;
  dst[t] = max(max(src[i0], src[i0 + prm.C]), max(src[i1], src[i1 + prm.C]));
}

// One invocation per window (b, y, x, c) of the output: it writes the window's 4 gradients.
@compute @workgroup_size(WG)
fn maxpool2_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let t = tid(wid, nwg, lid);
  if (t >= pooledCount()) { return; }
  let i0 = windowStart(t);
  let i1 = i0 + prm.W * prm.C;
  let v = vec4<f32>(fwd[i0], fwd[i0 + prm.C], fwd[i1], fwd[i1 + prm.C]);
  // The window's first maximum, in (0,0), (0,1), (1,0), (1,1) order.
  var best = 0u;
  var m = v.x;
  if (v.y > m) { best = 1u; m = v.y; }
  if (v.z > m) { best = 2u; m = v.z; }
  if (v.w > m) { best = 3u; }
  let g = src[t];
  dst[i0] = select(0.0, g, best == 0u);
  dst[i0 + prm.C] = select(0.0, g, best == 1u);
  dst[i1] = select(0.0, g, best == 2u);
  dst[i1 + prm.C] = select(0.0, g, best == 3u);
}
