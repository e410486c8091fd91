// The archive (DICOMweb) panels: search the archive and analyse a study from it; send a study's results back.
// The search panel shows only when the service has an archive; studies are listed without names or IDs.

import { $, api, problemText } from "./api.js";
import { handleAnalyzeResponse, setJobProgress } from "./upload.js";

export const archive = { configured: false };

export async function loadArchiveStatus() {
  const res = await api("/api/archive");
  archive.configured = res.ok && (await res.json()).configured === true;
  $("archive-panel").classList.toggle("hidden", !archive.configured);
  if (archive.configured) await searchArchive();
}

export async function searchArchive() {
  const params = new URLSearchParams();
  const date = $("archive-date").value;
  if (date) params.set("date", date.replaceAll("-", ""));
  const modality = $("archive-modality").value.trim().toUpperCase();
  if (modality) params.set("modality", modality);
  $("archive-status").textContent = "searching…";
  const res = await api("/api/archive/studies?" + params.toString());
  if (!res.ok) {
    $("archive-status").textContent = await problemText(res);
    return;
  }
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
  setJobProgress(0.2, "retrieving from the archive…", true);
  try {
    const res = await api(`/api/archive/studies/${encodeURIComponent(uid)}/analyze`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    let body = {};
    try {
      body = await res.json();
    } catch (e) {
      /* not JSON */
    }
    await handleAnalyzeResponse(res.status, body, res.statusText);
  } finally {
    button.disabled = false;
  }
}

/** Show the "send results" card when `study` came from the archive. */
export async function showArchiveLink(study) {
  const card = $("archive-send-card");
  card.classList.add("hidden");
  $("archive-sent").replaceChildren();
  delete $("archive-sent").dataset.state;
  if (!archive.configured) return;
  const res = await api(`/api/studies/${encodeURIComponent(study.id)}/archive`);
  if (!res.ok) return;
  const link = await res.json();
  if (!link.from_archive) return;
  $("archive-send").disabled = !study.findings;
  if (!study.findings) $("archive-sent").textContent = "no findings to send";
  card.classList.remove("hidden");
}

export async function sendToArchive(study) {
  if (!study) return;
  const out = $("archive-sent");
  $("archive-send").disabled = true;
  out.textContent = "sending…";
  try {
    const res = await api(`/api/studies/${encodeURIComponent(study.id)}/archive`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    if (!res.ok) {
      out.textContent = `refused (${res.status}): ${await problemText(res)}`;
      out.dataset.state = "error";
      return;
    }
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
