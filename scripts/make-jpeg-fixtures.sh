#!/usr/bin/env bash
# Regenerates the JPEG decoder fixtures in test/fixtures/jpeg/ (used by test/jpeg.test.ts).
#
# Usage: bash scripts/make-jpeg-fixtures.sh
#
# Needs cjpeg/djpeg from libjpeg-turbo (installed with apt-get when missing, which needs
# root) and node. Each fixture is NAME.jpg, written by cjpeg from a deterministic synthetic
# picture (gradients, a disc, a bar and fine stripes; sizes below), and two reference
# decodes, both with djpeg's default "fancy" (triangle) upsampling of subsampled chroma,
# which sdk/data/jpeg.ts implements too:
#   NAME.ppm        `djpeg -dct int`   (libjpeg's default integer IDCT, "islow", whose own
#                                       rounding is off by ±1 in a few % of samples);
#   NAME.float.ppm  `djpeg -dct float` (a float IDCT, like sdk/data/jpeg.ts's).
# djpeg writes P5 (gray) or P6 (RGB). The tests only read the committed files.
set -euo pipefail
cd "$(dirname "$0")/.."
out=test/fixtures/jpeg
mkdir -p "$out"

if ! command -v cjpeg >/dev/null || ! command -v djpeg >/dev/null; then
  apt-get install -y libjpeg-turbo-progs || { apt-get update && apt-get install -y libjpeg-turbo-progs; }
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# synth W H FILE: a binary PPM (P6), the same bytes on every run.
synth() {
  node -e '
    const [w, h, file] = [Number(process.argv[1]), Number(process.argv[2]), process.argv[3]];
    const head = Buffer.from(`P6\n${w} ${h}\n255\n`);
    const px = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let r = Math.round((255 * x) / Math.max(1, w - 1));
        let g = Math.round((255 * y) / Math.max(1, h - 1));
        let b = Math.round(128 + 100 * Math.sin((x + 2 * y) / 5));
        const dx = x - 0.6 * w, dy = y - 0.45 * h;
        if (dx * dx + dy * dy < (0.3 * h) ** 2) [r, g, b] = [230, 40, 60];
        if (x > 0.1 * w && x < 0.35 * w && y > 0.55 * h && y < 0.8 * h) [r, g, b] = [20, 60, 200];
        if (y < 0.2 * h && x % 4 < 2) [r, g, b] = [250, 250, 250];
        px.set([r, g, b], (y * w + x) * 3);
      }
    }
    require("fs").writeFileSync(file, Buffer.concat([head, px]));
  ' "$@"
}

# fixture NAME W H CJPEG-OPTIONS...
fixture() {
  local name=$1 w=$2 h=$3
  shift 3
  synth "$w" "$h" "$tmp/$name.ppm"
  cjpeg "$@" -outfile "$out/$name.jpg" "$tmp/$name.ppm"
  djpeg -dct int -pnm -outfile "$out/$name.ppm" "$out/$name.jpg"
  djpeg -dct float -pnm -outfile "$out/$name.float.ppm" "$out/$name.jpg"
  echo "$name: ${w}x${h} $* -> $(stat -c %s "$out/$name.jpg") bytes"
}

# One scan per component (sequential, not interleaved).
printf '0;\n1;\n2;\n' >"$tmp/separate-scans.txt"

fixture baseline_420 37 23 -quality 85
fixture baseline_420_separate_scans 50 41 -quality 80 -scans "$tmp/separate-scans.txt"
fixture baseline_444 50 41 -quality 80 -sample 1x1
fixture baseline_422 50 41 -quality 80 -sample 2x1
fixture baseline_440 37 23 -quality 80 -sample 1x2
fixture progressive_420 50 41 -quality 80 -progressive
fixture progressive_444_restart 37 23 -quality 90 -sample 1x1 -progressive -restart 3B
fixture grayscale 50 41 -quality 85 -grayscale
fixture grayscale_progressive 37 23 -quality 85 -grayscale -progressive
fixture restart_420 50 41 -quality 80 -restart 1
fixture optimized_420 50 41 -quality 80 -optimize
fixture rgb_adobe 37 23 -quality 85 -rgb -sample 1x1
fixture tiny_420 3 5 -quality 85
