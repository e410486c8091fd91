// The 3-D view: a second NiiVue on its own canvas with a copy of the study's volume in a fixed render window
// (CT: bone and dense tissue, so air and lungs are transparent; other modalities: their robust range).
// It is redrawn only when something it shows changes (the study, the crosshair, its own rotation), after a short
// pause, so scrolling the 2-D planes never waits for a volume render (seconds when WebGL runs in software).

import { Niivue, SLICE_TYPE } from "./vendor/niivue.js";
import { flatGradients, isSoftwareRenderer } from "./nvtweaks.js";

const PAUSE_MS = 600;
const RENDER_CT_HU = [150, 1500];

export class Render3D {
  constructor(canvas) {
    this.canvas = canvas;
    this.visible = true;
    this.image = null;
    this.pending = { volume: false, crosshair: null };
    this.timer = 0;
    this.renders = 0;
    this.lighting = true;
    this.nv = new Niivue({
      backColor: [0, 0, 0, 1],
      isRadiologicalConvention: true,
      sliceType: SLICE_TYPE.RENDER,
      show3Dcrosshair: true,
      crosshairColor: [0.25, 0.6, 1, 0.9],
      isOrientCube: true,
      isColorbar: false,
      dragAndDropEnabled: false,
      loadingText: "",
      logLevel: "warn",
    });
    this.ready = this.nv.attachToCanvas(canvas).then(() => {
      if (isSoftwareRenderer(this.nv.gl)) this.lighting = !flatGradients(this.nv);
      this.nv.setRenderAzimuthElevation(120, 15);
    });
  }

  /** Show a copy of `image` (the planes' background NVImage) of a study of `modality`, after the pause. */
  async show(image, modality) {
    await this.ready;
    const copy = image.clone();
    if (modality === "CT") {
      copy.cal_min = RENDER_CT_HU[0];
      copy.cal_max = RENDER_CT_HU[1];
    } else {
      copy.cal_min = image.robust_min;
      copy.cal_max = image.robust_max;
    }
    this.image = copy;
    this.pending.volume = true;
    this._schedule();
  }

  clear() {
    this.image = null;
    while (this.nv.volumes.length) this.nv.removeVolumeByIndex(this.nv.volumes.length - 1);
    this.canvas.dataset.renders = "0";
  }

  /** Move the 3-D crosshair to RAS millimetres `mm`. */
  crosshairAt(mm) {
    this.pending.crosshair = mm;
    this._schedule();
  }

  setVisible(visible) {
    this.visible = visible;
    this.canvas.classList.toggle("hidden", !visible);
    if (visible) {
      this.nv.resizeListener();
      this._schedule();
    }
  }

  _schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this._apply(), PAUSE_MS);
  }

  _apply() {
    if (!this.visible || !this.image) return;
    const nv = this.nv;
    if (this.pending.volume) {
      this.pending.volume = false;
      while (nv.volumes.length) nv.removeVolumeByIndex(nv.volumes.length - 1);
      nv.addVolume(this.image);
    }
    if (this.pending.crosshair) {
      nv.scene.crosshairPos = nv.mm2frac(this.pending.crosshair);
      this.pending.crosshair = null;
    }
    nv.drawScene();
    this.renders += 1;
    this.canvas.dataset.renders = String(this.renders);
  }
}
