// The page's session with the service: the API key (kept in sessionStorage) and authenticated requests.
// Every other module talks to the server through api() so that a refused key logs the page out in one place.

export const $ = (id) => document.getElementById(id);

export const session = {
  key: sessionStorage.getItem("ctlens-key") || "",
  onRefused: (reason) => {}, // set by main.js: show the login form again
};

export function authHeaders() {
  return { Authorization: "Bearer " + session.key };
}

export async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  if (res.status === 401) {
    session.onRefused("your key was refused");
    throw new Error("unauthorized");
  }
  return res;
}

export async function problemText(res) {
  try {
    const p = await res.json();
    return p.detail || p.title || res.statusText;
  } catch (e) {
    return res.statusText;
  }
}

export function cell(tr, text) {
  const td = document.createElement("td");
  td.textContent = text;
  tr.appendChild(td);
  return td;
}
