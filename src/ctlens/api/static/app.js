// ctlens web page: log in with an API key, upload (or analyse from the archive), view slices with overlays,
// read findings, send them back to the archive, chat.
// Plain JavaScript, no build step. Talks only to this server's API (see /docs).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem("ctlens-key") || "", archive: false, study: null, k: 0, cache: new Map(), ruler: null, drawing: false, token: 0 };

function auth() { return { Authorization: "Bearer " + state.key }; }

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...auth() } });
  if (res.status === 401) { logout("your key was refused"); throw new Error("unauthorized"); }
  return res;
}

async function problemText(res) {
  try { const p = await res.json(); return p.detail || p.title || res.statusText; } catch (e) { return res.statusText; }
}

// ---------------------------------------------------------------- login
async function login(key) {
  const res = await fetch("/api/me", { headers: { Authorization: "Bearer " + key } });
  if (!res.ok) { $("login-error").textContent = "Key refused (" + res.status + ")."; return false; }
  const me = await res.json();
  state.key = key;
  sessionStorage.setItem("ctlens-key", key);
  $("who").textContent = "key: " + me.name;
  $("login").classList.add("hidden");
  $("app").classList.remove("hidden");
  $("logout").classList.remove("hidden");
  await loadStudies();
  try { await loadArchiveStatus(); } catch (e) { $("archive-status").textContent = "archive: " + e.message; }
  return true;
}

function logout(reason) {
  sessionStorage.removeItem("ctlens-key");
  state.key = "";
  $("app").classList.add("hidden");
  $("logout").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("who").textContent = "";
  $("login-error").textContent = reason || "";
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
    li.textContent = `${new Date(s.created * 1000).toLocaleString()} · ${what}`;
    li.addEventListener("click", () => openStudy(s.id));
    if (state.study && state.study.id === s.id) li.classList.add("active");
    ul.appendChild(li);
  }
}

async function openStudy(id) {
  const res = await api("/api/studies/" + encodeURIComponent(id));
  if (!res.ok) { $("upload-status").textContent = await problemText(res); return; }
  const study = await res.json();
  if (study.status !== "ready") { $("upload-status").textContent = "study is " + study.status; return; }
  state.study = study;
  state.cache.clear();
  state.ruler = null;
  const n = study.shape[0];
  $("slice-slider").max = String(n - 1);
  state.k = Math.floor(n / 2);
  const best = (study.findings && study.findings.candidates || [])[0];
  if (best && best.centre_voxel) state.k = Math.round(best.centre_voxel[0]);
  $("window-select").value = study.modality === "CT" ? "lung" : "auto";
  $("toggle-heatmap").disabled = !study.has_heatmap;
  $("toggle-roi").disabled = !study.has_roi;
  for (const li of $("studies").children) li.classList.toggle("active", li.dataset.id === id);
  renderFindings(study);
  await showArchiveLink(study.id);
  await loadConversation(study.id);
  await showSlice(state.k);
}

// ---------------------------------------------------------------- viewer
function overlayParam() {
  const heat = $("toggle-heatmap").checked && !$("toggle-heatmap").disabled;
  const roi = $("toggle-roi").checked && !$("toggle-roi").disabled;
  return heat && roi ? "both" : heat ? "heatmap" : roi ? "roi" : "none";
}

async function sliceBitmap(k) {
  const url = `/api/studies/${state.study.id}/slices/${k}.png?window=${$("window-select").value}&overlay=${overlayParam()}`;
  if (!state.cache.has(url)) {
    state.cache.set(url, api(url).then(async (res) => {
      if (!res.ok) throw new Error(await problemText(res));
      return createImageBitmap(await res.blob());
    }));
    if (state.cache.size > 300) state.cache.delete(state.cache.keys().next().value);
  }
  return state.cache.get(url);
}

async function showSlice(k) {
  if (!state.study) return;
  const n = state.study.shape[0];
  k = Math.max(0, Math.min(n - 1, k));
  state.k = k;
  $("slice-slider").value = String(k);
  const token = ++state.token;
  let bitmap;
  try { bitmap = await sliceBitmap(k); } catch (e) { $("slice-label").textContent = e.message; return; }
  if (token !== state.token) return; // a newer slice was asked for meanwhile
  const [, rows, cols] = state.study.shape;
  const [, sy, sx] = state.study.spacing;
  const canvas = $("viewer");
  canvas.width = cols;
  canvas.height = Math.max(1, Math.round(rows * sy / sx));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  canvas.dataset.slice = String(k);
  canvas.dataset.overlay = overlayParam();
  canvas.dataset.window = $("window-select").value;
  canvas.dataset.loaded = String(Number(canvas.dataset.loaded) + 1);
  $("slice-label").textContent = `slice ${k + 1} / ${n}`;
  drawMarks();
  for (const d of [1, -1, 2, -2]) if (k + d >= 0 && k + d < n) sliceBitmap(k + d).catch(() => {});
}

function drawMarks() {
  const v = $("viewer"), m = $("marks");
  m.width = v.width; m.height = v.height;
  const g = m.getContext("2d");
  g.clearRect(0, 0, m.width, m.height);
  if (!state.study) return;
  const rows = state.study.shape[1], fy = m.height / rows;
  if ($("toggle-candidates").checked && state.study.findings) {
    (state.study.findings.candidates || []).forEach((c, i) => {
      const box = c.slice_boxes && c.slice_boxes[String(state.k)];
      if (!box) return;
      const [y0, x0, y1, x1] = box;
      g.strokeStyle = "#4fa3ff"; g.lineWidth = 2;
      g.strokeRect(x0, y0 * fy, x1 - x0 + 1, (y1 - y0 + 1) * fy);
      g.fillStyle = "#4fa3ff"; g.font = "14px system-ui";
      g.fillText(`#${i + 1} ${c.kind || ""} ${Math.round(c.diameter_mm || 0)} mm`, x0, Math.max(12, y0 * fy - 4));
    });
  }
  if (state.ruler) {
    const { a, b } = state.ruler;
    g.strokeStyle = "#ffd166"; g.lineWidth = 2;
    g.beginPath(); g.moveTo(a.x, a.y); g.lineTo(b.x, b.y); g.stroke();
    const mm = Math.hypot(b.x - a.x, b.y - a.y) * state.study.spacing[2];
    g.fillStyle = "#ffd166"; g.font = "14px system-ui";
    g.fillText(mm.toFixed(1) + " mm", b.x + 6, b.y);
    $("measure").textContent = "distance: " + mm.toFixed(1) + " mm";
  }
}

function canvasPoint(ev) {
  const m = $("marks"), r = m.getBoundingClientRect();
  const s = Math.min(r.width / m.width, r.height / m.height);
  const ox = (r.width - m.width * s) / 2, oy = (r.height - m.height * s) / 2;
  return { x: (ev.clientX - r.left - ox) / s, y: (ev.clientY - r.top - oy) / s };
}

// ---------------------------------------------------------------- findings
function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); }

function renderFindings(study) {
  const box = $("findings");
  box.replaceChildren();
  const a = study.analysis || {};
  const head = document.createElement("p");
  const f = study.findings;
  head.textContent = f ? `Region: ${f.region} · ${(f.candidates || []).length} candidate(s)` : `Analysis ${a.status}: ${a.reason || ""}`;
  box.appendChild(head);
  if (!f) { renderZeroShot(box, study.zero_shot); return; }
  const table = document.createElement("table");
  for (const [k, v] of Object.entries(f.measurements || {})) {
    if (typeof v !== "number") continue;
    const tr = document.createElement("tr");
    cell(tr, k.replaceAll("_", " ")); cell(tr, Number.isInteger(v) ? String(v) : v.toFixed(2));
    table.appendChild(tr);
  }
  box.appendChild(table);
  const list = document.createElement("ol");
  (f.candidates || []).forEach((c) => {
    const li = document.createElement("li");
    li.className = "cand";
    li.textContent = `${c.kind || "region"} ${c.diameter_mm.toFixed(1)} mm ${c.side || ""} · score ${c.score.toFixed(2)} · slices ${c.slice_range[0]}–${c.slice_range[1]}`;
    li.addEventListener("click", () => showSlice(Math.round(c.centre_voxel[0])));
    list.appendChild(li);
  });
  box.appendChild(list);
  for (const w of f.warnings || []) { const p = document.createElement("p"); p.className = "muted"; p.textContent = "⚠ " + w; box.appendChild(p); }
  renderZeroShot(box, study.zero_shot);
}

// Zero-shot CLIP scores (present when the service has a checkpoint): sorted, folded, labelled as model output.
function renderZeroShot(box, zs) {
  if (!zs) return;
  const details = document.createElement("details");
  details.id = "zero-shot";
  const summary = document.createElement("summary");
  const probs = Object.entries(zs.probabilities || {}).sort((a, b) => b[1] - a[1]);
  summary.textContent = probs.length
    ? `Zero-shot scores (${zs.model}): top ${probs[0][0]} ${probs[0][1].toFixed(2)}`
    : `Zero-shot scores (${zs.model}): none`;
  details.appendChild(summary);
  const note = document.createElement("p");
  note.className = "muted";
  note.textContent = `${zs.note || "model output, not a diagnosis"}${zs.warning ? " · ⚠ " + zs.warning : ""}`;
  details.appendChild(note);
  const table = document.createElement("table");
  for (const [name, p] of probs) {
    const tr = document.createElement("tr");
    tr.className = "zs-row";
    cell(tr, name);
    const td = document.createElement("td");
    const meter = document.createElement("meter");
    meter.min = 0; meter.max = 1; meter.value = p;
    td.appendChild(meter);
    tr.appendChild(td);
    cell(tr, p.toFixed(2));
    table.appendChild(tr);
  }
  details.appendChild(table);
  box.appendChild(details);
}

// ---------------------------------------------------------------- upload
async function filesFromDrop(dt) {
  const out = [];
  const walk = async (entry) => {
    if (entry.isFile) { out.push(await new Promise((ok, bad) => entry.file(ok, bad))); return; }
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, bad) => reader.readEntries(ok, bad));
      if (!batch.length) break;
      for (const e of batch) await walk(e);
    }
  };
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return [...dt.files];
  for (const e of entries) await walk(e);
  return out;
}

function setProgress(fraction, text) {
  $("job-progress").style.width = Math.round(fraction * 100) + "%";
  if (text !== undefined) $("upload-status").textContent = text;
}

function upload(files) {
  files = files.filter((f) => f.size > 0 && !f.name.startsWith("."));
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/analyze");
  xhr.setRequestHeader("Authorization", "Bearer " + state.key);
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) setProgress(0.5 * e.loaded / e.total, `uploading ${files.length} file(s)…`); };
  xhr.onload = async () => {
    let body = {};
    try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
    if (xhr.status === 200) { setProgress(1, body.cached ? "served from cache" : "analysed"); await loadStudies(); await openStudy(body.id); }
    else if (xhr.status === 202) { setProgress(0.5, "queued…"); await loadStudies(); if (body.job) pollJob(body.job.url, body.id); }
    else { setProgress(0, `refused (${xhr.status}): ${body.detail || xhr.statusText}`); }
  };
  xhr.onerror = () => setProgress(0, "upload failed");
  setProgress(0, "uploading…");
  xhr.send(form);
}

async function pollJob(url, studyId) {
  for (;;) {
    const job = await (await api(url)).json();
    setProgress(0.5 + 0.5 * job.progress, `${job.state}: ${job.message || ""}`);
    if (job.state === "done") { await loadStudies(); await openStudy(studyId); return; }
    if (job.state === "failed") { setProgress(0, "failed: " + job.error); return; }
    await new Promise((ok) => setTimeout(ok, 500));
  }
}

// ---------------------------------------------------------------- archive (DICOMweb)
// The panel shows only when the service has an archive; studies are listed without names or IDs.
async function loadArchiveStatus() {
  const res = await api("/api/archive");
  state.archive = res.ok && (await res.json()).configured === true;
  $("archive-panel").classList.toggle("hidden", !state.archive);
  if (state.archive) await searchArchive();
}

async function searchArchive() {
  const params = new URLSearchParams();
  const date = $("archive-date").value;
  if (date) params.set("date", date.replaceAll("-", ""));
  const modality = $("archive-modality").value.trim().toUpperCase();
  if (modality) params.set("modality", modality);
  $("archive-status").textContent = "searching…";
  const res = await api("/api/archive/studies?" + params.toString());
  if (!res.ok) { $("archive-status").textContent = await problemText(res); return; }
  const list = (await res.json()).studies;
  const ul = $("archive-studies");
  ul.replaceChildren();
  for (const s of list) {
    const li = document.createElement("li");
    li.dataset.uid = s.study_uid;
    li.title = "Study Instance UID " + s.study_uid;
    const text = document.createElement("span");
    const count = (n) => (n === null || n === undefined ? "?" : String(n));
    text.textContent = `${s.date || "no date"} · ${s.modalities.join("/") || "?"} · ${count(s.series)} series, ${count(s.instances)} images`;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "archive-analyse";
    button.textContent = "Analyse";
    button.addEventListener("click", () => analyseArchive(s.study_uid, button));
    li.append(text, button);
    ul.appendChild(li);
  }
  $("archive-status").textContent = `${list.length} ${list.length === 1 ? "study" : "studies"} in the archive`;
}

async function analyseArchive(uid, button) {
  button.disabled = true;
  setProgress(0.2, "retrieving from the archive…");
  try {
    const res = await api(`/api/archive/studies/${encodeURIComponent(uid)}/analyze`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    let body = {};
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (res.status === 200) { setProgress(1, body.cached ? "served from cache" : "analysed"); await loadStudies(); await openStudy(body.id); }
    else if (res.status === 202) { setProgress(0.5, "queued…"); await loadStudies(); if (body.job) pollJob(body.job.url, body.id); }
    else setProgress(0, `refused (${res.status}): ${body.detail || res.statusText}`);
  } finally {
    button.disabled = false;
  }
}

async function showArchiveLink(id) {
  const card = $("archive-send-card");
  card.classList.add("hidden");
  $("archive-sent").replaceChildren();
  delete $("archive-sent").dataset.state;
  if (!state.archive) return;
  const res = await api(`/api/studies/${encodeURIComponent(id)}/archive`);
  if (!res.ok) return;
  const link = await res.json();
  if (!link.from_archive || !state.study || state.study.id !== id) return;
  $("archive-send").disabled = !state.study.findings;
  if (!state.study.findings) $("archive-sent").textContent = "no findings to send";
  card.classList.remove("hidden");
}

async function sendToArchive() {
  if (!state.study) return;
  const id = state.study.id, out = $("archive-sent");
  $("archive-send").disabled = true;
  out.textContent = "sending…";
  try {
    const res = await api(`/api/studies/${encodeURIComponent(id)}/archive`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    if (!res.ok) { out.textContent = `refused (${res.status}): ${await problemText(res)}`; out.dataset.state = "error"; return; }
    const sent = await res.json();
    out.replaceChildren();
    const p = document.createElement("p");
    p.textContent = `stored in the archive (${sent.stored.length} object(s)):`;
    const ul = document.createElement("ul");
    for (const o of sent.stored) {
      const li = document.createElement("li");
      li.className = "stored";
      li.textContent = `${o.modality} · ${o.sop_instance_uid}`;
      ul.appendChild(li);
    }
    out.append(p, ul);
    out.dataset.state = "done";
  } finally {
    $("archive-send").disabled = false;
  }
}

// ---------------------------------------------------------------- chat
function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("chat-log").appendChild(div);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
  return div;
}

function usageText(d) {
  const cost = d.cost_usd === null || d.cost_usd === undefined ? "cost unknown" : "~$" + d.cost_usd.toFixed(4);
  return `${d.provider}${d.offline ? " (offline)" : ""} · ${d.model} · ${d.input_tokens} in / ${d.output_tokens} out tokens · ${cost}`;
}

async function loadConversation(id) {
  $("chat-log").replaceChildren();
  $("chat-usage").textContent = "";
  const res = await api(`/api/studies/${id}/chat`);
  if (!res.ok) return;
  for (const m of (await res.json()).messages) addMessage(m.role, m.content);
}

async function ask(message) {
  addMessage("user", message);
  const out = addMessage("assistant", "");
  out.dataset.state = "streaming";
  const form = new FormData();
  form.append("message", message);
  form.append("stream", "true");
  if (state.study) form.append("study_id", state.study.id);
  const res = await api("/api/chat", { method: "POST", body: form });
  if (!res.ok) { out.textContent = "error: " + await problemText(res); out.dataset.state = "error"; return; }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = (block.match(/^event: (.*)$/m) || [])[1];
      const data = JSON.parse((block.match(/^data: (.*)$/m) || [])[1] || "{}");
      if (event === "delta") { out.textContent += data.text; $("chat-log").scrollTop = $("chat-log").scrollHeight; }
      else if (event === "done") { $("chat-usage").textContent = usageText(data); out.dataset.state = "done"; }
      else if (event === "meta") { $("chat-usage").textContent = `asking ${data.provider} (${data.images} image(s))…`; }
      else if (event === "error") { out.textContent += "\n[error] " + data.detail; out.dataset.state = "error"; }
    }
  }
}

// ---------------------------------------------------------------- wiring
document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); login($("key").value.trim()); });
  $("logout").addEventListener("click", () => logout());
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => { e.preventDefault(); drop.classList.remove("over"); upload(await filesFromDrop(e.dataTransfer)); });
  $("file-input").addEventListener("change", (e) => upload([...e.target.files]));
  $("folder-input").addEventListener("change", (e) => upload([...e.target.files]));
  $("slice-slider").addEventListener("input", (e) => showSlice(Number(e.target.value)));
  $("stage").addEventListener("wheel", (e) => { e.preventDefault(); showSlice(state.k + (e.deltaY > 0 ? 1 : -1)); }, { passive: false });
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "TEXTAREA" || e.target.tagName === "INPUT") return;
    if (e.key === "ArrowUp" || e.key === "ArrowRight") showSlice(state.k + 1);
    if (e.key === "ArrowDown" || e.key === "ArrowLeft") showSlice(state.k - 1);
  });
  for (const id of ["window-select", "toggle-heatmap", "toggle-roi"]) $(id).addEventListener("change", () => showSlice(state.k));
  $("toggle-candidates").addEventListener("change", drawMarks);
  $("clear-measure").addEventListener("click", () => { state.ruler = null; $("measure").textContent = ""; drawMarks(); });
  const marks = $("marks");
  marks.addEventListener("mousedown", (e) => { const p = canvasPoint(e); state.ruler = { a: p, b: p }; state.drawing = true; });
  marks.addEventListener("mousemove", (e) => { if (state.drawing) { state.ruler.b = canvasPoint(e); drawMarks(); } });
  window.addEventListener("mouseup", () => { state.drawing = false; });
  $("archive-form").addEventListener("submit", (e) => { e.preventDefault(); searchArchive(); });
  $("archive-send").addEventListener("click", sendToArchive);
  $("chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("chat-input").value.trim();
    if (text) { $("chat-input").value = ""; ask(text); }
  });
  if (state.key) login(state.key).then((ok) => { if (!ok) logout(); });
});
