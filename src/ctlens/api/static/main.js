// ctlens web page: log in with an API key, upload (or analyse from the archive), view the study in NiiVue, read
// findings, send them back to the archive, chat. Plain ES modules, no build step; talks only to this server.
// The viewer module (and NiiVue under it) is imported on its own, so the rest of the page works without it.

import { $, api, problemText, session } from "./api.js";
import { loadArchiveStatus, searchArchive, sendToArchive, showArchiveLink } from "./archive.js";
import { ask, loadConversation } from "./chat.js";
import { renderFindings, renderReaderWarnings } from "./findings.js";
import { filesFromDrop, initUpload, pickSeries, renderSeriesPicker, setJobProgress, uploadFiles } from "./upload.js";

const state = { study: null, viewer: null, opening: 0 };

// ---------------------------------------------------------------- login
// `quiet`: the keyless probe at start (a service run with --no-auth answers it; others refuse it silently).
async function login(key, quiet = false) {
  const res = await fetch("/api/me", { headers: { Authorization: "Bearer " + key } });
  if (!res.ok) {
    if (!quiet) $("login-error").textContent = "Key refused (" + res.status + ").";
    return false;
  }
  const me = await res.json();
  session.key = key;
  sessionStorage.setItem("ctlens-key", key);
  $("who").textContent = "key: " + me.name;
  $("login").classList.add("hidden");
  $("app").classList.remove("hidden");
  $("logout").classList.remove("hidden");
  await startViewer();
  await loadStudies();
  try {
    await loadArchiveStatus();
  } catch (e) {
    $("archive-status").textContent = "archive: " + e.message;
  }
  return true;
}

function logout(reason) {
  sessionStorage.removeItem("ctlens-key");
  session.key = "";
  $("app").classList.add("hidden");
  $("logout").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("who").textContent = "";
  $("login-error").textContent = reason || "";
}
session.onRefused = logout;

// ---------------------------------------------------------------- viewer
async function startViewer() {
  if (state.viewer) return;
  let mod;
  try {
    mod = await import("./viewer.js");
  } catch (e) {
    $("viewer").dataset.viewer = "missing";
    $("viewer-status").textContent =
      "The image viewer is not installed (its NiiVue module is built by `make`, which needs npm).";
    return;
  }
  const sliceLabel = (k, n) => {
    $("slice-slider").max = String(Math.max(0, n - 1));
    $("slice-slider").value = String(k);
    $("slice-label").textContent = `slice ${k + 1} / ${n}`;
  };
  const viewer = new mod.Viewer($("viewer"), $("render3d"), {
    onSlice: sliceLabel,
    onWindow: (wl) => {
      $("wl-readout").textContent = `C ${Math.round(wl.center)} / W ${Math.round(wl.width)} HU`;
      $("window-select").value = wl.preset in mod.PRESETS || wl.preset === "auto" ? wl.preset : "custom";
    },
    onProbe: (p) => {
      $("probe").textContent = p
        ? `${Math.round(p.value)}${state.study && state.study.modality === "CT" ? " HU" : ""} · ` +
          `(${p.lps.map((v) => v.toFixed(1)).join(", ")}) mm LPS · ` +
          `slice ${p.voxel[0] + 1}, row ${p.voxel[1] + 1}, column ${p.voxel[2] + 1}`
        : "";
    },
    onMeasure: (mm, n) => {
      const count = `${n} measurement${n === 1 ? "" : "s"}`;
      $("measure").textContent = `distance: ${mm.toFixed(1)} mm (${count}, each kept on its slice)`;
    },
  });
  await viewer.ready;
  state.viewer = viewer;
  window.ctlensViewer = viewer;
  $("viewer").dataset.viewer = "ready";
}

// ---------------------------------------------------------------- studies
async function loadStudies() {
  const res = await api("/api/studies");
  const list = (await res.json()).studies;
  const ul = $("studies");
  ul.replaceChildren();
  for (const s of list) {
    const li = document.createElement("li");
    li.dataset.id = s.id;
    const what = s.shape ? `${s.modality} ${s.shape.join("×")}` : s.status;
    const kernel = s.facts && s.facts.kernel ? ` · ${s.facts.kernel}` : "";
    li.textContent = `${new Date(s.created * 1000).toLocaleString()} · ${what}${kernel}`;
    li.addEventListener("click", () => openStudy(s.id));
    if (state.study && state.study.id === s.id) li.classList.add("active");
    ul.appendChild(li);
  }
}

async function openStudy(id) {
  const token = ++state.opening;
  const res = await api("/api/studies/" + encodeURIComponent(id));
  if (!res.ok) {
    setJobProgress(0, await problemText(res));
    return;
  }
  const study = await res.json();
  if (study.status !== "ready") {
    setJobProgress(0, "study is " + study.status);
    return;
  }
  const readyAt = performance.now();
  state.study = study;
  await loadStudies();
  renderFindings(study, (c) => state.viewer && c.centre_voxel && state.viewer.goToVoxel(c.centre_voxel));
  renderReaderWarnings(study);
  renderSeriesPicker(study);
  $("toggle-heatmap").disabled = !study.has_heatmap;
  $("toggle-roi").disabled = !(study.has_roi || study.has_labels);
  $("measure").textContent = "The ruler tool measures a distance; it stays on its slice.";
  const side = Promise.all([showArchiveLink(study), loadConversation(study.id)]);
  if (state.viewer) {
    try {
      const shown = await state.viewer.open(study, (text) => ($("viewer-status").textContent = text));
      if (shown && token === state.opening) {
        state.viewer.timing.ready_to_image_ms = performance.now() - readyAt;
        $("viewer").dataset.firstImageMs = state.viewer.timing.ready_to_image_ms.toFixed(0);
      }
    } catch (e) {
      $("viewer-status").textContent = "could not show the image: " + e.message;
    }
  }
  await side;
}

// ---------------------------------------------------------------- wiring
function wire() {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    login($("key").value.trim());
  });
  $("logout").addEventListener("click", () => logout());
  initUpload(openStudy);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    uploadFiles(await filesFromDrop(e.dataTransfer));
  });
  $("file-input").addEventListener("change", (e) => uploadFiles([...e.target.files]));
  $("folder-input").addEventListener("change", (e) => uploadFiles([...e.target.files]));
  $("series-select").addEventListener("change", (e) => pickSeries(e.target.value));
  const v = () => state.viewer;
  $("slice-slider").addEventListener("input", (e) => v() && v().goToSlice(Number(e.target.value)));
  $("window-select").addEventListener("change", (e) => v() && v().setPreset(e.target.value));
  $("layout-select").addEventListener("change", (e) => v() && v().setLayout(e.target.value));
  for (const button of document.querySelectorAll("#tools button[data-tool]")) {
    button.addEventListener("click", () => {
      if (!v()) return;
      v().setTool(button.dataset.tool);
      for (const b of document.querySelectorAll("#tools button[data-tool]")) b.classList.toggle("on", b === button);
    });
  }
  $("zoom-in").addEventListener("click", () => v() && v().zoom(1.25));
  $("zoom-out").addEventListener("click", () => v() && v().zoom(0.8));
  $("zoom-reset").addEventListener("click", () => v() && v().resetView());
  $("clear-measure").addEventListener("click", () => {
    if (v()) v().clearMeasurements();
    $("measure").textContent = "";
  });
  $("toggle-heatmap").addEventListener("change", (e) => v() && v().setOverlay("heatmap", e.target.checked));
  $("toggle-roi").addEventListener("change", (e) => v() && v().setOverlay("lungs", e.target.checked));
  $("toggle-candidates").addEventListener("change", (e) => v() && v().setOverlay("candidates", e.target.checked));
  document.addEventListener("keydown", (e) => {
    if (!v() || ["TEXTAREA", "INPUT", "SELECT"].includes(e.target.tagName)) return;
    if (e.key === "ArrowUp" || e.key === "PageUp") v().step(1);
    else if (e.key === "ArrowDown" || e.key === "PageDown") v().step(-1);
    else return;
    e.preventDefault();
  });
  $("archive-form").addEventListener("submit", (e) => {
    e.preventDefault();
    searchArchive();
  });
  $("archive-send").addEventListener("click", () => sendToArchive(state.study));
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("chat-input").value.trim();
    if (text) {
      $("chat-input").value = "";
      ask(text, state.study && state.study.id);
    }
  });
  const keyless = () => login("", true);
  if (session.key) login(session.key).then((ok) => ok || (logout(), keyless()));
  else keyless();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
else wire();
