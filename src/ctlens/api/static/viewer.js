// The image viewer: one study's de-identified volume and its overlays in NiiVue (vendored, served from /static).
// Axial, coronal, sagittal and a 3-D render, multiplanar by default, in the radiological convention (patient left
// on image right, anterior up) with orientation letters; window/level by drag with a readout and presets; zoom and
// pan; the HU and position under the cursor; distance measurements kept per slice; candidates to jump to.
// Geometry comes from the NIfTI affine only: "slice k" is the volume's k-th array slice (the service's numbering),
// shown 1-based. The viewer's state is readable by tests: window.ctlensViewer.state() and data-* on the canvas.
// The planes are one NiiVue (custom layout: axial, coronal, sagittal); the 3-D view is another (render3d.js) in the
// fourth quadrant, so that scrolling redraws only the planes.

import { DRAG_MODE, NVImage, Niivue, SLICE_TYPE } from "./vendor/niivue.js";
import { authHeaders } from "./api.js";
import { Geometry } from "./geometry.js";
import { flatGradients, isSoftwareRenderer, rendererName, setOverlayLayers } from "./nvtweaks.js";
import { Render3D } from "./render3d.js";

// [center, width] in HU.
export const PRESETS = {
  brain: [40, 80],
  soft_tissue: [40, 400],
  lung: [-600, 1500],
  bone: [400, 1800],
  mediastinum: [40, 350],
};
// [left, top, width, height] fractions of the stage; the 3-D view takes the fourth quadrant.
const MULTIPLANAR = [
  { sliceType: SLICE_TYPE.AXIAL, position: [0, 0, 0.5, 0.5] },
  { sliceType: SLICE_TYPE.CORONAL, position: [0.5, 0, 0.5, 0.5] },
  { sliceType: SLICE_TYPE.SAGITTAL, position: [0, 0.5, 0.5, 0.5] },
];
const SINGLE = { axial: SLICE_TYPE.AXIAL, coronal: SLICE_TYPE.CORONAL, sagittal: SLICE_TYPE.SAGITTAL };
const LAYOUTS = ["multiplanar", "axial", "coronal", "sagittal", "render"];
const TILE_NAMES = { 0: "axial", 1: "coronal", 2: "sagittal", 4: "render" };
const TOOLS = {
  // the left button's tool; in every tool the right button moves the crosshair, the middle one pans
  crosshair: DRAG_MODE.crosshair,
  window: DRAG_MODE.windowing,
  measure: DRAG_MODE.measurement,
  pan: DRAG_MODE.pan,
};
const OVERLAY_OPACITY = { heatmap: 0.45, lungs: 0.12, candidates: 0.25 }; // label layers: fill; outlines opaque

function lungLut() {
  return {
    R: [0, 60, 80], G: [0, 200, 160], B: [0, 120, 255], A: [0, 255, 255], I: [0, 1, 2],
    labels: ["", "right lung", "left lung"],
  };
}

function candidateLut(cands) {
  const lut = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
  const add = (value, name) => {
    lut.R.push(255); lut.G.push(196); lut.B.push(0); lut.A.push(255); lut.I.push(value); lut.labels.push(name);
  };
  cands.forEach((c, i) => add(10 + i + 1, `#${i + 1} ${c.kind || "region"}`));
  if (!cands.length) add(11, ""); // a table needs one entry above 0
  return lut;
}

/** A copy of label image `all` keeping the values `keep(v)` accepts, with its own colour table. */
function labelLayer(all, keep, name, lut) {
  const img = all.clone();
  img.name = name;
  const data = img.img;
  for (let i = 0; i < data.length; i += 1) if (data[i] && !keep(data[i])) data[i] = 0;
  img.setColormapLabel(lut);
  return img;
}

/** The body region's preset: the service's `viewer.default_preset`, else from findings.region, else by modality. */
export function defaultPreset(study) {
  const fromServer = study.viewer && study.viewer.default_preset;
  if (fromServer && PRESETS[fromServer]) return fromServer;
  if (study.modality !== "CT") return "auto";
  const region = study.findings && study.findings.region;
  return region === "head" ? "brain" : region === "chest" ? "lung" : "soft_tissue";
}

async function fetchNifti(url, onProgress) {
  const res = await fetch(url, { headers: authHeaders() });
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`${url}: ${res.status} ${res.statusText}`);
  const total = Number(res.headers.get("content-length")) || 0;
  let seen = 0;
  const counter = new TransformStream({
    transform(chunk, controller) {
      seen += chunk.byteLength;
      if (onProgress) onProgress(seen, total);
      controller.enqueue(chunk);
    },
  });
  // The browser's own gunzip, streamed while the bytes arrive (faster than decompressing in JavaScript).
  const stream = res.body.pipeThrough(counter).pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).arrayBuffer();
}

export class Viewer {
  /** `hooks`: onSlice(k, n), onWindow({center, width, preset}), onProbe(probe or null), onMeasure(mm, count). */
  constructor(canvas, renderCanvas, hooks = {}) {
    this.canvas = canvas;
    const none = () => {};
    this.hooks = { onSlice: none, onWindow: none, onProbe: none, onMeasure: none, ...hooks };
    this.study = null;
    this.geometry = null;
    this.preset = "auto";
    this.tool = "window";
    this.layout = "multiplanar";
    this.show = { heatmap: true, lungs: true, candidates: true };
    this.renderer = "";
    this.software = false;
    this.overlays = { heatmap: null, lungs: null, candidates: null };
    this.loads = 0;
    this.draws = 0;
    this.timing = {};
    this.last = { slice: -1, window: "", crosshair: "" };
    this.measurements = [];
    this.render = new Render3D(renderCanvas);
    this.nv = new Niivue({
      backColor: [0, 0, 0, 1],
      isRadiologicalConvention: true,
      sagittalNoseLeft: true,
      isOrientationTextVisible: true,
      showAllOrientationMarkers: true,
      crosshairColor: [0.25, 0.6, 1, 0.9],
      crosshairWidth: 1,
      isColorbar: false,
      dragAndDropEnabled: false,
      loadingText: "",
      logLevel: "warn",
      measureTextHeight: 0.04,
      atlasOutline: 1,
    });
    this.ready = Promise.all([this.nv.attachToCanvas(canvas), this.render.ready]).then(() => this._wire());
  }

  _wire() {
    const nv = this.nv;
    flatGradients(nv); // the planes never use the volume gradients (only the 3-D view shades with them)
    this.renderer = rendererName(nv.gl);
    this.software = isSoftwareRenderer(nv.gl);
    this.canvas.dataset.renderer = this.software ? "software" : "gpu";
    const draw = nv.drawScene.bind(nv);
    nv.drawScene = (...args) => {
      const out = draw(...args);
      this.draws += 1;
      this._afterDraw();
      return out;
    };
    nv.onMeasurementCompleted = (m) => {
      this.measurements.push({ distance: m.distance, sliceType: TILE_NAMES[m.sliceType], slice: this.slice() });
      this.hooks.onMeasure(m.distance, this.measurements.length);
    };
    this.setTool(this.tool);
    this.canvas.addEventListener("mousemove", (e) => this.hooks.onProbe(this.probe(e.clientX, e.clientY)));
    this.canvas.addEventListener("mouseleave", () => this.hooks.onProbe(null));
  }

  // ------------------------------------------------------------------ loading
  /** Show `study` (a ready study JSON); `onProgress(text)` reports the download. Resolves after the first draw. */
  async open(study, onProgress = () => {}) {
    await this.ready;
    const t0 = performance.now();
    this.study = study;
    this.timing = {};
    const base = `/api/studies/${encodeURIComponent(study.id)}`;
    const mb = (n) => (n / 1e6).toFixed(1);
    const volumeBuffer = await fetchNifti(`${base}/volume.nii.gz`, (seen, total) =>
      onProgress(`loading image ${mb(seen)}${total ? " / " + mb(total) : ""} MB`),
    );
    if (this.study !== study) return false; // another study was opened meanwhile
    if (!volumeBuffer) throw new Error("the study's volume is not available");
    this.timing.download_ms = performance.now() - t0;
    const image = await NVImage.loadFromUrl({
      url: "volume.nii", buffer: volumeBuffer, name: "volume.nii", colormap: "gray",
    });
    this.timing.parse_ms = performance.now() - t0 - this.timing.download_ms;
    if (this.study !== study) return false;
    this._clear();
    this.geometry = new Geometry(image.hdr);
    this.preset = defaultPreset(study);
    if (this.preset !== "auto") this._applyWindow(image, ...PRESETS[this.preset]); // before the GPU prepares it
    this.nv.addVolume(image);
    this.setLayout(this.layout);
    const best = (study.findings && study.findings.candidates) || [];
    if (best.length && best[0].centre_voxel) this.goToVoxel(best[0].centre_voxel);
    else this.goToSlice(Math.floor(this.nSlices() / 2));
    await new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok)));
    this.timing.first_image_ms = performance.now() - t0;
    this.loads += 1;
    this.canvas.dataset.loaded = String(this.loads);
    this.canvas.dataset.study = study.id;
    onProgress("");
    this.render.show(image, study.modality);
    this.render.crosshairAt(this.nv.frac2mm(this.nv.scene.crosshairPos));
    this._loadOverlays(study, base); // after the first image: overlays never delay it
    return true;
  }

  async _loadOverlays(study, base) {
    const [heat, labels] = await Promise.all([
      fetchNifti(`${base}/overlays/heatmap.nii.gz`).catch(() => null),
      fetchNifti(`${base}/overlays/labels.nii.gz`).catch(() => null),
    ]);
    if (this.study !== study) return;
    const found = {};
    if (heat) {
      found.heatmap = await NVImage.loadFromUrl({
        url: "heatmap.nii", buffer: heat, name: "heatmap.nii", colormap: "warm", cal_min: 0.25, cal_max: 1,
      });
    }
    if (labels) {
      // One label volume from the service (1 right lung, 2 left lung, 10 + k candidate k), shown as two layers so
      // each can be hidden: lungs and candidates, each drawn as outlines over a faint fill.
      const all = await NVImage.loadFromUrl({ url: "labels.nii", buffer: labels, name: "labels.nii" });
      const cands = (study.findings && study.findings.candidates) || [];
      found.lungs = labelLayer(all, (v) => v > 0 && v < 10, "lungs", lungLut());
      found.candidates = labelLayer(all, (v) => v >= 10, "candidates", candidateLut(cands));
    }
    if (this.study !== study) return;
    this.overlays = { heatmap: null, lungs: null, candidates: null, ...found };
    this._syncOverlays();
  }

  _clear() {
    this.render.clear();
    while (this.nv.volumes.length) this.nv.removeVolumeByIndex(this.nv.volumes.length - 1);
    this.nv.clearMeasurements();
    this.measurements = [];
    this.overlays = { heatmap: null, lungs: null, candidates: null };
    this.last = { slice: -1, window: "", crosshair: "" };
  }

  // The overlay layers above the background: the shown ones, in a fixed order. NiiVue keeps the layer count of
  // its last full refresh, so with none shown one transparent layer stands in (the background is not redone).
  _syncOverlays() {
    const names = Object.keys(OVERLAY_OPACITY).filter((n) => this.overlays[n]);
    for (const n of names) {
      this.overlays[n].opacity = OVERLAY_OPACITY[n];
      this.overlays[n].hdr.intent_code = n === "heatmap" ? 0 : 1002;
    }
    let layers = names.filter((n) => this.show[n]).map((n) => this.overlays[n]);
    if (!layers.length && names.length) {
      const stand = this.overlays[names[0]];
      stand.opacity = 0;
      stand.hdr.intent_code = 0;
      layers = [stand];
    }
    if (names.length) setOverlayLayers(this.nv, layers);
    const shown = names.filter((n) => this.show[n]);
    this.canvas.dataset.overlay = shown.join(" ") || "none";
    this.canvas.dataset.overlays = names.join(" ") || "none";
  }

  /** Show or hide an overlay: "heatmap", "lungs" or "candidates". */
  setOverlay(name, visible) {
    if (!(name in this.show)) return;
    this.show[name] = visible;
    this._syncOverlays();
  }

  // ------------------------------------------------------------------ window / level
  _applyWindow(image, center, width) {
    image.cal_min = center - width / 2;
    image.cal_max = center + width / 2;
  }

  setPreset(name) {
    const vol = this.nv.volumes[0];
    if (!vol) return;
    if (name === "auto") {
      vol.cal_min = vol.robust_min;
      vol.cal_max = vol.robust_max;
    } else if (PRESETS[name]) {
      this._applyWindow(vol, ...PRESETS[name]);
    } else return;
    this.preset = name;
    this.nv.refreshLayers(vol, 0); // the background only: the overlays keep their own texture
    this.nv.drawScene();
  }

  windowLevel() {
    const vol = this.nv.volumes[0];
    if (!vol) return null;
    const width = vol.cal_max - vol.cal_min;
    const center = (vol.cal_max + vol.cal_min) / 2;
    const match = Object.entries(PRESETS).find(([, [c, w]]) => Math.abs(c - center) < 0.5 && Math.abs(w - width) < 0.5);
    const auto = this.preset === "auto" && vol.cal_min === vol.robust_min && vol.cal_max === vol.robust_max;
    return { center, width, preset: match ? match[0] : auto ? "auto" : "custom" };
  }

  // ------------------------------------------------------------------ layout, tools, zoom
  setLayout(name) {
    if (!LAYOUTS.includes(name)) return;
    this.layout = name;
    if (name === "multiplanar") this.nv.setCustomLayout(MULTIPLANAR);
    else this.nv.clearCustomLayout();
    if (SINGLE[name] !== undefined) this.nv.setSliceType(SINGLE[name]);
    const box = this.render.canvas.parentElement;
    box.classList.toggle("quadrant", name === "multiplanar");
    box.classList.toggle("full", name === "render");
    this.render.setVisible(name === "multiplanar" || name === "render");
    this.nv.drawScene();
    this.canvas.dataset.layout = name;
  }

  setTool(name) {
    if (!(name in TOOLS)) return;
    this.tool = name;
    this.nv.setMouseEventConfig({
      leftButton: { primary: TOOLS[name], withCtrl: DRAG_MODE.crosshair },
      rightButton: DRAG_MODE.crosshair,
      centerButton: DRAG_MODE.pan,
    });
    this.nv.setDragMode(name === "pan" ? "pan" : name === "measure" ? "measurement" : "none"); // pan: wheel zooms
    this.canvas.dataset.tool = name;
  }

  zoom(factor) {
    const [x, y, z, scale] = this.nv.scene.pan2Dxyzmm;
    this.nv.setPan2Dxyzmm([x, y, z, Math.min(8, Math.max(0.5, scale * factor))]);
  }

  resetView() {
    this.nv.setPan2Dxyzmm([0, 0, 0, 1]);
  }

  clearMeasurements() {
    this.nv.clearMeasurements();
    this.measurements = [];
    this.nv.drawScene();
  }

  // ------------------------------------------------------------------ navigation (array slices, 0-based inside)
  nSlices() {
    return this.geometry ? this.geometry.dims[2] : 0;
  }

  /** The crosshair as [z, y, x] array coordinates (fractional voxels) of the volume. */
  crosshairVoxel() {
    if (!this.geometry) return null;
    const mm = this.nv.frac2mm(this.nv.scene.crosshairPos);
    const [i, j, k] = this.geometry.mmToVoxel([mm[0], mm[1], mm[2]]);
    return [k, j, i];
  }

  slice() {
    const v = this.crosshairVoxel();
    return v ? Math.max(0, Math.min(this.nSlices() - 1, Math.round(v[0]))) : -1;
  }

  /** Move all planes to array voxel [z, y, x] (candidates' `centre_voxel`). */
  goToVoxel([z, y, x]) {
    if (!this.geometry) return;
    const mm = this.geometry.voxelToMm([x, y, z]);
    this.nv.scene.crosshairPos = this.nv.mm2frac(mm);
    this.nv.drawScene();
  }

  goToSlice(k) {
    const v = this.crosshairVoxel();
    if (!v) return;
    this.goToVoxel([Math.max(0, Math.min(this.nSlices() - 1, k)), v[1], v[2]]);
  }

  step(delta) {
    this.goToSlice(this.slice() + delta);
  }

  // ------------------------------------------------------------------ probe: value and position under the cursor
  probe(clientX, clientY) {
    if (!this.geometry || !this.nv.volumes.length) return null;
    const rect = this.canvas.getBoundingClientRect();
    const dpr = this.nv.uiData.dpr || window.devicePixelRatio || 1;
    const frac = this.nv.canvasPos2frac([(clientX - rect.left) * dpr, (clientY - rect.top) * dpr]);
    if (!frac || frac[0] < 0) return null;
    const mm = this.nv.frac2mm(frac);
    const vox = this.geometry.mmToVoxel([mm[0], mm[1], mm[2]]).map(Math.round);
    const value = this.geometry.value(this.nv.volumes[0], vox);
    if (value === null) return null;
    return { value, lps: [-mm[0], -mm[1], mm[2]], voxel: [vox[2], vox[1], vox[0]] };
  }

  // ------------------------------------------------------------------ state for the page and for tests
  _afterDraw() {
    const slice = this.slice();
    const mm = Array.from(this.nv.frac2mm(this.nv.scene.crosshairPos)).slice(0, 3);
    const where = mm.map((v) => v.toFixed(2)).join(",");
    if (where !== this.last.crosshair && this.geometry) {
      this.last.crosshair = where;
      this.render.crosshairAt(mm);
    }
    if (slice !== this.last.slice) {
      this.last.slice = slice;
      this.canvas.dataset.slice = String(slice);
      this.hooks.onSlice(slice, this.nSlices());
    }
    const wl = this.windowLevel();
    const key = wl ? `${wl.center.toFixed(1)}/${wl.width.toFixed(1)}` : "";
    if (wl && key !== this.last.window) {
      this.last.window = key;
      const data = this.canvas.dataset;
      Object.assign(data, { window: wl.preset, center: wl.center.toFixed(1), width: wl.width.toFixed(1) });
      this.hooks.onWindow(wl);
    }
  }

  /** The views on screen: [left, top, width, height] in CSS pixels from the top-left of the 2-D canvas. */
  tiles() {
    const dpr = this.nv.uiData.dpr || 1;
    const out = this.layout === "render" ? [] : (this.nv.screenSlices || []).map((s) => {
      const [x, y, w, h] = s.leftTopWidthHeight.map((v) => v / dpr);
      return { view: TILE_NAMES[s.axCorSag] || String(s.axCorSag), rect: [Math.min(x, x + w), y, Math.abs(w), h] };
    });
    if (this.render.visible) {
      const a = this.canvas.getBoundingClientRect(), b = this.render.canvas.getBoundingClientRect();
      out.push({ view: "render", rect: [b.left - a.left, b.top - a.top, b.width, b.height] });
    }
    return out;
  }

  /** Where the crosshair is drawn in each plane on screen: CSS pixels from the top-left of the 2-D canvas. */
  crosshairOnScreen() {
    if (!this.geometry || this.layout === "render") return [];
    const dpr = this.nv.uiData.dpr || 1;
    const out = [];
    for (const type of [SLICE_TYPE.AXIAL, SLICE_TYPE.CORONAL, SLICE_TYPE.SAGITTAL]) {
      const hit = this.nv.frac2canvasPosWithTile(this.nv.scene.crosshairPos, type);
      if (hit && hit.pos) out.push({ view: TILE_NAMES[type], xy: [hit.pos[0] / dpr, hit.pos[1] / dpr] });
    }
    return out;
  }

  state() {
    const v = this.crosshairVoxel();
    const rows = (this.study && this.study.series) || [];
    const row = rows.find((r) => r.analysed);
    const kernel = this.study && this.study.facts ? this.study.facts.kernel : undefined;
    let series = kernel ? { kernel } : null;
    if (row) series = { index: row.index, kernel: row.kernel, description: row.description };
    return {
      study: this.study ? this.study.id : null,
      series,
      loads: this.loads,
      draws: this.draws,
      layout: this.layout,
      tool: this.tool,
      radiological: this.nv.opts.isRadiologicalConvention,
      window: this.windowLevel(),
      slice: this.slice(),
      slices: this.nSlices(),
      crosshair: v ? { voxel: v, mm: Array.from(this.nv.frac2mm(this.nv.scene.crosshairPos)).slice(0, 3) } : null,
      zoom: this.nv.scene.pan2Dxyzmm[3],
      overlays: Object.fromEntries(Object.entries(this.overlays).map(([k, img]) => [k, Boolean(img)])),
      show: { ...this.show },
      measurements: this.measurements.slice(),
      tiles: this.tiles(),
      crosshairOnScreen: this.crosshairOnScreen(),
      timing: { ...this.timing },
      renderer: this.renderer,
      software: this.software,
      render3d: { renders: this.render.renders, lighting: this.render.lighting, visible: this.render.visible },
    };
  }
}
