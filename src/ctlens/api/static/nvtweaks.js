// Small adaptations of NiiVue (@niivue/niivue, pinned in web/package-lock.json) for this page's speed:
//  * flatGradients(nv): the volume-gradient passes NiiVue runs after every window change (a blur and a Sobel pass
//    over every voxel, used only to shade the 3-D render) write a constant instead. The 2-D planes never use them;
//    the 3-D view uses them for lighting unless the browser renders WebGL in software (SwiftShader, llvmpipe), where
//    they cost seconds per window change.
//  * setOverlayLayers(nv, images): the overlays are composited into NiiVue's overlay texture without re-preparing
//    the background volume, which addVolume/removeVolume/updateGLVolume would redo.
// They rely on NiiVue's instance fields (blurShader, sobelFirstOrderShader, refreshLayers, volumes, overlays),
// checked when called; a NiiVue without them is used unmodified.

/** The WebGL renderer's name, e.g. "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device ...))". */
export function rendererName(gl) {
  const ext = gl.getExtension("WEBGL_debug_renderer_info");
  return String(ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER));
}

export function isSoftwareRenderer(gl) {
  return /swiftshader|llvmpipe|softpipe|software/i.test(rendererName(gl));
}

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader) || "shader");
  return shader;
}

const FLAT_VERTEX = `#version 300 es
layout(location = 0) in vec3 vPos;
void main() { gl_Position = vec4((vPos.xy - vec2(0.5, 0.5)) * 2.0, 0.0, 1.0); }`;
const FLAT_FRAGMENT = `#version 300 es
precision highp float;
out vec4 FragColor;
void main() { FragColor = vec4(0.5, 0.5, 1.0, 0.0); }`;

/** Make NiiVue's gradient passes write a constant (normal facing the viewer, zero magnitude). */
export function flatGradients(nv) {
  if (!("blurShader" in nv) || !("sobelFirstOrderShader" in nv)) return false;
  const gl = nv.gl;
  const program = gl.createProgram();
  gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, FLAT_VERTEX));
  gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FLAT_FRAGMENT));
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program) || "link");
  const flat = { program, uniforms: {}, use: (g) => g.useProgram(program) };
  for (const name of ["blurShader", "gradientPrePassShader", "sobelFirstOrderShader", "sobelSecondOrderShader"]) {
    nv[name] = flat;
  }
  return true;
}

function canRefreshLayers(nv) {
  return typeof nv.refreshLayers === "function" && Array.isArray(nv.volumes) && nv.volumes.length > 0;
}

/** Make `images` the overlay layers above the background, preparing only the overlay layers. */
export function setOverlayLayers(nv, images) {
  if (!canRefreshLayers(nv)) {
    while (nv.volumes.length > 1) nv.removeVolumeByIndex(nv.volumes.length - 1);
    for (const img of images) nv.addVolume(img);
    return;
  }
  nv.volumes = [nv.volumes[0], ...images];
  nv.overlays = nv.volumes.slice(1);
  for (let i = 1; i < nv.volumes.length; i += 1) nv.refreshLayers(nv.volumes[i], i);
  nv.drawScene();
}
