// Uploads and analysis jobs: the upload's bytes (XHR upload progress) and the analysis (the server's work, then
// job polling) are shown on two separate bars. The series picker re-submits the files the user chose, with the
// form field series=<selector>, when an upload held several series.

import { $, api, session } from "./api.js";

const upload = { files: [], studies: new Set(), busy: false, onStudy: async (id) => {} };

/** `onStudy(id)` opens a study once it is analysed. */
export function initUpload(onStudy) {
  upload.onStudy = onStudy;
}

function bar(id, fraction, busy = false) {
  const el = $(id);
  el.classList.toggle("busy", busy);
  el.style.width = Math.round(Math.max(0, Math.min(1, fraction)) * 100) + "%";
}

export function setUploadProgress(fraction, text) {
  bar("upload-progress", fraction);
  if (text !== undefined) $("upload-status").textContent = text;
}

export function setJobProgress(fraction, text, busy = false) {
  bar("job-progress", fraction, busy);
  if (text !== undefined) $("job-status").textContent = text;
}

const MB = (n) => (n / 1e6).toFixed(1);

export async function filesFromDrop(dt) {
  const out = [];
  const walk = async (entry) => {
    if (entry.isFile) {
      out.push(await new Promise((ok, bad) => entry.file(ok, bad)));
      return;
    }
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

/** Send `files` to POST /api/analyze (with `series`, a selector from the study's series table, if given). */
export function uploadFiles(files, series = null) {
  files = files.filter((f) => f.size > 0 && !f.name.startsWith("."));
  if (!files.length || upload.busy) return;
  if (series === null) {
    upload.files = files; // kept in memory only, for the series picker
    upload.studies = new Set();
  }
  upload.busy = true;
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  if (series !== null) form.append("series", String(series));
  const total = files.reduce((n, f) => n + f.size, 0);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/analyze");
  xhr.setRequestHeader("Authorization", "Bearer " + session.key);
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) setUploadProgress(e.loaded / e.total, `uploading ${MB(e.loaded)} / ${MB(e.total)} MB`);
  };
  xhr.upload.onload = () => {
    setUploadProgress(1, `uploaded ${files.length} file(s), ${MB(total)} MB`);
    setJobProgress(1, "analysing on the server…", true);
  };
  xhr.onload = async () => {
    upload.busy = false;
    let body = {};
    try {
      body = JSON.parse(xhr.responseText);
    } catch (e) {
      /* not JSON */
    }
    await handleAnalyzeResponse(xhr.status, body, xhr.statusText, true);
  };
  xhr.onerror = () => {
    upload.busy = false;
    setUploadProgress(0, "upload failed");
    setJobProgress(0, "");
  };
  setUploadProgress(0, `uploading ${files.length} file(s)…`);
  setJobProgress(0, series === null ? "" : `analysing series ${series}…`);
  xhr.send(form);
}

/** The answer of an analyse request (upload or archive): open the study, follow its job, or say why not. */
export async function handleAnalyzeResponse(status, body, statusText = "", fromUpload = false) {
  if (fromUpload && body.id) upload.studies.add(body.id);
  if (status === 200) {
    setJobProgress(1, body.cached ? "done: served from cache" : "done: analysed");
    await upload.onStudy(body.id);
  } else if (status === 202) {
    setJobProgress(0, "queued…");
    if (body.job) await pollJob(body.job.url, body.id);
  } else {
    setJobProgress(0, `refused (${status}): ${body.detail || statusText}`);
  }
}

export async function pollJob(url, studyId) {
  for (;;) {
    const job = await (await api(url)).json();
    setJobProgress(job.progress, `${job.state}: ${job.message || ""}`);
    if (job.state === "done") {
      await upload.onStudy(studyId);
      return;
    }
    if (job.state === "failed") {
      setJobProgress(0, "failed: " + job.error);
      return;
    }
    await new Promise((ok) => setTimeout(ok, 500));
  }
}

// ---------------------------------------------------------------- series picker
function seriesLabel(s) {
  const parts = [`#${s.index + 1}`, s.description || s.kernel || "series"];
  if (s.kernel && !(s.description || "").includes(s.kernel)) parts.push(s.kernel);
  if (s.slices) parts.push(`${s.slices} slices`);
  return parts.join(" · ");
}

/** Show the picker when `study` came from an upload with several series; picking one analyses that series. */
export function renderSeriesPicker(study) {
  const card = $("series-card");
  const select = $("series-select");
  const series = (study && study.series) || [];
  card.classList.toggle("hidden", series.length < 2);
  select.replaceChildren();
  if (series.length < 2) return;
  const kernel = study.facts && study.facts.kernel;
  const analysed = series.find((s) => s.analysed) || series.find((s) => kernel && s.kernel === kernel);
  for (const s of series) {
    const opt = document.createElement("option");
    opt.value = s.selector ?? String(s.index);
    opt.textContent = seriesLabel(s);
    opt.selected = s === analysed;
    select.appendChild(opt);
  }
  const canSwitch = upload.studies.has(study.id) && upload.files.length > 0;
  select.disabled = !canSwitch || upload.busy;
  select.dataset.analysed = analysed ? String(analysed.index) : "";
  $("series-note").textContent = canSwitch
    ? `${series.length} series in this upload; the analysis used ${analysed ? seriesLabel(analysed) : "the first"}.`
    : `${series.length} series in this upload; upload the files again to analyse another one.`;
}

export function pickSeries(selector) {
  if (upload.files.length) uploadFiles(upload.files, selector);
}
