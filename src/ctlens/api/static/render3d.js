// The 3-D view: a second NiiVue on its own canvas, sharing the 2-D viewer's volume (same NVImage, same window).
// It is redrawn only when something it shows changes (the study, the window, the crosshair), and then after a
// short pause, so scrolling the 2-D planes never waits for a volume render (seconds when WebGL runs in software).

import { Niivue, SLICE_TYPE } from "./vendor/niivue.js";
import { flatGradients, isSoftwareRenderer } from "./nvtweaks.js";

const PAUSE_MS = 300;

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

  /** Show `image` (the 2-D viewer's background NVImage); the work starts after the pause. */
  async show(image) {
    await this.ready;
    this.image = image;
    this.pending.volume = true;
    this._schedule();
  }

  clear() {
    this.image = null;
    while (this.nv.volumes.length) this.nv.removeVolumeByIndex(this.nv.volumes.length - 1);
    this.canvas.dataset.renders = "0";
  }

  /** The window (cal_min/cal_max of the shared image) changed. */
  windowChanged() {
    if (!this.image) return;
    this.pending.volume = true;
    this._schedule();
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
      if (nv.volumes[0] !== this.image) {
        while (nv.volumes.length) nv.removeVolumeByIndex(nv.volumes.length - 1);
        nv.addVolume(this.image);
      } else {
        nv.updateGLVolume();
      }
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
