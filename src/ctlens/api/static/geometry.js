// Voxel <-> world geometry of one NIfTI volume, from its header's affine (RAS millimetres), and voxel reads.
// NIfTI voxel (i, j, k) is the service volume's array index (x, y, z): k is the "slice" of the page.

function invert3(m) {
  const [a, b, c] = m[0], [d, e, f] = m[1], [g, h, i] = m[2];
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (!det) throw new Error("the volume's affine is singular");
  return [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ];
}

export class Geometry {
  constructor(hdr) {
    this.dims = [hdr.dims[1], hdr.dims[2], Math.max(1, hdr.dims[3] || 1)];
    this.affine = hdr.affine.map((row) => row.map(Number));
    const rot = this.affine.slice(0, 3).map((row) => row.slice(0, 3));
    this.inverse = invert3(rot);
    this.slope = !hdr.scl_slope || Number.isNaN(hdr.scl_slope) ? 1 : hdr.scl_slope;
    this.inter = Number.isNaN(hdr.scl_inter) ? 0 : hdr.scl_inter || 0;
  }

  /** RAS mm of voxel [i, j, k] (fractional voxels allowed). */
  voxelToMm([i, j, k]) {
    return this.affine.slice(0, 3).map((r) => r[0] * i + r[1] * j + r[2] * k + r[3]);
  }

  /** Fractional voxel [i, j, k] of RAS mm [x, y, z]. */
  mmToVoxel([x, y, z]) {
    const d = [x - this.affine[0][3], y - this.affine[1][3], z - this.affine[2][3]];
    return this.inverse.map((r) => r[0] * d[0] + r[1] * d[1] + r[2] * d[2]);
  }

  /** The stored value (scaled, e.g. HU) at integer voxel [i, j, k] of an NVImage, or null outside. */
  value(image, [i, j, k]) {
    const [nx, ny, nz] = this.dims;
    if (i < 0 || j < 0 || k < 0 || i >= nx || j >= ny || k >= nz || !image.img) return null;
    return image.img[i + j * nx + k * nx * ny] * this.slope + this.inter;
  }
}
