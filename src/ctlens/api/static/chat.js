// The chat panel: a study's conversation and streamed answers (server-sent events over a POST response).

import { $, api, problemText } from "./api.js";

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

export async function loadConversation(id) {
  $("chat-log").replaceChildren();
  $("chat-usage").textContent = "";
  const res = await api(`/api/studies/${id}/chat`);
  if (!res.ok) return;
  for (const m of (await res.json()).messages) addMessage(m.role, m.content);
}

/** Ask `message` about the study `studyId` (or none), streaming the answer into the log. */
export async function ask(message, studyId) {
  addMessage("user", message);
  const out = addMessage("assistant", "");
  out.dataset.state = "streaming";
  const form = new FormData();
  form.append("message", message);
  form.append("stream", "true");
  if (studyId) form.append("study_id", studyId);
  const res = await api("/api/chat", { method: "POST", body: form });
  if (!res.ok) {
    out.textContent = "error: " + (await problemText(res));
    out.dataset.state = "error";
    return;
  }
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
      if (event === "delta") {
        out.textContent += data.text;
        $("chat-log").scrollTop = $("chat-log").scrollHeight;
      } else if (event === "done") {
        $("chat-usage").textContent = usageText(data);
        out.dataset.state = "done";
      } else if (event === "meta") {
        $("chat-usage").textContent = `asking ${data.provider} (${data.images} image(s))…`;
      } else if (event === "error") {
        out.textContent += "\n[error] " + data.detail;
        out.dataset.state = "error";
      }
    }
  }
}
