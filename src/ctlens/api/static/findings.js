// The findings panel (measurements, candidates to jump to, analysis warnings, zero-shot scores, the outputs of the
// user's own models) and the reader's warnings shown beside the image (tilt corrected, spacing resampled, series split).
// Slice numbers shown to people are 1-based everywhere, as on the slider.

import { $, cell } from "./api.js";

function candidateSlices(c) {
  const centre = c.slice_1based ?? (c.centre_voxel ? Math.round(c.centre_voxel[0]) + 1 : null);
  const range = c.slice_range_1based ?? (c.slice_range ? [c.slice_range[0] + 1, c.slice_range[1] + 1] : null);
  return { centre, range };
}

/** Fill #findings for `study`; `onCandidate(candidate, index)` runs when a candidate is clicked. */
export function renderFindings(study, onCandidate) {
  const box = $("findings");
  box.replaceChildren();
  const a = study.analysis || {};
  const head = document.createElement("p");
  const f = study.findings;
  head.textContent = f
    ? `Region: ${f.region} · ${(f.candidates || []).length} candidate(s)`
    : `Analysis ${a.status}: ${a.reason || ""}`;
  box.appendChild(head);
  if (!f) {
    renderZeroShot(box, study.zero_shot);
    renderUserModels(box, study.user_models);
    return;
  }
  const table = document.createElement("table");
  for (const [k, v] of Object.entries(f.measurements || {})) {
    if (typeof v !== "number") continue;
    const tr = document.createElement("tr");
    cell(tr, k.replaceAll("_", " "));
    cell(tr, Number.isInteger(v) ? String(v) : v.toFixed(2));
    table.appendChild(tr);
  }
  box.appendChild(table);
  const list = document.createElement("ol");
  list.id = "candidates";
  (f.candidates || []).forEach((c, i) => {
    const li = document.createElement("li");
    li.className = "cand";
    li.tabIndex = 0;
    li.dataset.index = String(i);
    const { centre, range } = candidateSlices(c);
    if (centre !== null) li.dataset.slice = String(centre);
    const where = range ? `slices ${range[0]}–${range[1]}` : "";
    const score = typeof c.score === "number" ? ` · score ${c.score.toFixed(2)}` : "";
    const size = typeof c.diameter_mm === "number" ? ` ${c.diameter_mm.toFixed(1)} mm` : "";
    const what = `#${i + 1} ${c.kind || "region"}${size} ${c.side || ""}${score}`;
    li.textContent = `${what} · slice ${centre ?? "?"} (${where})`;
    const go = () => onCandidate(c, i);
    li.addEventListener("click", go);
    li.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
    list.appendChild(li);
  });
  box.appendChild(list);
  for (const w of f.warnings || []) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "⚠ " + w;
    box.appendChild(p);
  }
  renderZeroShot(box, study.zero_shot);
  renderUserModels(box, study.user_models);
}

function shortValues(values) {
  const shown = (values || []).slice(0, 8).map((v) => (typeof v === "number" ? v.toFixed(3) : String(v)));
  return shown.join(", ") + ((values || []).length > 8 ? ", …" : "");
}

/** The user's own models (models/*.h5, *.onnx): one labelled block per file, outputs or the warning. */
export function renderUserModels(box, entries) {
  if (!Array.isArray(entries) || !entries.length) return;
  const section = document.createElement("section");
  section.id = "user-models";
  const title = document.createElement("h4");
  title.textContent = "Your models";
  section.appendChild(title);
  for (const m of entries) {
    const div = document.createElement("div");
    div.className = "user-model";
    const name = document.createElement("strong");
    name.textContent = m.file || "user models";
    div.appendChild(name);
    const note = document.createElement("span");
    note.className = "muted";
    note.textContent = " · " + (m.note || "model output, not a diagnosis");
    div.appendChild(note);
    if (m.warning) {
      const w = document.createElement("p");
      w.className = "muted";
      w.textContent = "⚠ " + m.warning;
      div.appendChild(w);
    }
    const table = document.createElement("table");
    const rows = m.labels ? Object.entries(m.labels).map(([k, v]) => [k, shortValues([v])]) : [];
    if (!rows.length) for (const o of m.outputs || []) rows.push([o.name, shortValues(o.values)]);
    for (const [k, v] of rows) {
      const tr = document.createElement("tr");
      cell(tr, k);
      cell(tr, v);
      table.appendChild(tr);
    }
    if (rows.length) div.appendChild(table);
    if (m.input && m.input.source) {
      const src = document.createElement("p");
      src.className = "muted";
      src.textContent = "input: " + m.input.source + (m.input.shape ? " → " + m.input.shape.join("×") : "");
      div.appendChild(src);
    }
    section.appendChild(div);
  }
  box.appendChild(section);
}

/** Zero-shot CLIP scores (present when the service has a checkpoint): sorted, folded, labelled as model output. */
export function renderZeroShot(box, zs) {
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
    meter.min = 0;
    meter.max = 1;
    meter.value = p;
    td.appendChild(meter);
    tr.appendChild(td);
    cell(tr, p.toFixed(2));
    table.appendChild(tr);
  }
  details.appendChild(table);
  box.appendChild(details);
}

/** The reader's warnings of `study`: the service's viewer block, else the stored meta, else facts. */
export function readerWarnings(study) {
  const fromViewer = study.viewer && Array.isArray(study.viewer.warnings) ? study.viewer.warnings : null;
  const fromMeta = study.meta && Array.isArray(study.meta.warnings) ? study.meta.warnings : null;
  const out = [...(fromViewer || fromMeta || study.warnings || [])];
  const facts = study.facts || {};
  if (!out.length && facts.tilt_corrected) out.push(`gantry tilt of ${facts.gantry_tilt_deg}° corrected`);
  if (!out.length && facts.spacing_uneven) out.push("unevenly spaced slices were resampled");
  return out;
}

export function renderReaderWarnings(study) {
  const box = $("reader-warnings");
  box.replaceChildren();
  const warnings = study ? readerWarnings(study) : [];
  box.classList.toggle("hidden", !warnings.length);
  for (const w of warnings) {
    const li = document.createElement("li");
    li.textContent = w;
    box.appendChild(li);
  }
}
