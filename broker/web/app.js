// The apsync web page: every figure comes from the REST API (/api/v1).
"use strict";

const icons = { queued: "\u231B", dispatched: "\u231B", running: "\u21BB", success: "\u2714",
  failed: "\u2716", partial: "!", cancelled: "\u2716", timed_out: "\u2716" };
let token = sessionStorage.getItem("apsync-token");
let me = null;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k ?? ""));
  return e;
}

async function api(method, path, body) {
  const r = await fetch(path, { method, headers: { Authorization: "Bearer " + token,
    "Content-Type": "application/json" }, body: body ? JSON.stringify(body) : undefined });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((j.error && j.error.message) || r.statusText);
  return j;
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : "—"; }
function secs(ms) { return ms == null ? "—" : (ms / 1000).toFixed(1) + " s"; }

async function signIn(t) {
  token = t;
  me = await api("GET", "/api/v1/me");
  sessionStorage.setItem("apsync-token", t);
  document.getElementById("signin").hidden = true;
  document.getElementById("app").hidden = false;
  document.getElementById("signout").hidden = false;
  document.getElementById("who").textContent = me.email + " · " + me.tenant;
  refresh();
  setInterval(refresh, 3000);
}

async function startSync(entity, button) {
  button.disabled = true;
  try {
    const job = await api("POST", "/api/v1/syncs", { entity: entity.id, mode: "full" });
    showDetail(job.id);
  } catch (e) { alert("Sync not started: " + e.message); }
  button.disabled = false;
  refresh();
}

async function showDetail(id) {
  const d = document.getElementById("detail");
  const [job, log] = await Promise.all([api("GET", "/api/v1/syncs/" + id),
    api("GET", "/api/v1/syncs/" + id + "/log")]);
  d.replaceChildren(el("h3", {}, `Sync ${job.id} — ${job.entity.name}: ${job.status}`),
    el("table", {}, el("thead", {}, el("tr", {}, ...["List", "Status", "Read", "Inserted",
      "Updated", "Unchanged", "Duration", ""].map(h => el("th", {}, h)))),
    el("tbody", {}, ...job.lists.map(l => el("tr", {},
      el("td", {}, l.list), el("td", { class: "status " + l.status }, l.status),
      el("td", {}, String(l.counts.read) + (l.estimate != null ? " / " + l.estimate : "")),
      el("td", {}, String(l.counts.inserted)), el("td", {}, String(l.counts.updated)),
      el("td", {}, String(l.counts.unchanged)), el("td", {}, secs(l.duration_ms)),
      el("td", { class: "error" }, l.error ? l.error.message : "")))) ),
    el("pre", { "aria-label": "Sync log" }, log.log.map(l =>
      `${when(l.ts)}  ${l.level.padEnd(5)}  ${l.message}`).join("\n")));
  d.hidden = false;
}

async function refresh() {
  try {
    const [ents, syncs, tools] = await Promise.all([api("GET", "/api/v1/entities"),
      api("GET", "/api/v1/syncs?limit=10"), api("GET", "/api/v1/synctools")]);
    document.getElementById("entities").replaceChildren(...ents.entities.map(e => el("tr", {},
      el("td", {}, e.name, el("div", { class: "muted" }, e.code)), el("td", {}, e.erp),
      el("td", {}, e.synctools.map(t => t.name).join(", ")),
      el("td", { class: "muted" }, e.lists.length + " lists"),
      el("td", {}, me.may_sync ? el("button", { class: "sync", type: "button",
        "aria-label": "Full sync of " + e.name, onclick: ev => startSync(e, ev.target) },
      "Sync") : ""))));
    document.getElementById("syncs").replaceChildren(...syncs.syncs.map(s => el("tr", {},
      el("td", { class: "status " + s.status, title: s.status, "aria-label": s.status },
        icons[s.status] || "?"),
      el("td", {}, "#" + s.id), el("td", {}, s.entity.name), el("td", {}, s.mode),
      el("td", {}, when(s.started_at || s.created_at)), el("td", {}, secs(s.duration_ms)),
      el("td", {}, String(s.totals.read)),
      el("td", {}, el("button", { type: "button", "aria-label": "Details of sync " + s.id,
        onclick: () => showDetail(s.id) }, "Log")))));
    document.getElementById("tools").replaceChildren(...tools.synctools.map(t => el("tr", {},
      el("td", {}, t.name), el("td", { class: "status " + t.status }, t.status),
      el("td", {}, when(t.last_seen)), el("td", {}, t.version || "—"),
      el("td", {}, t.erp.error ? el("span", { class: "error" }, t.erp.error)
        : `${t.erp.product || "—"} ${t.erp.version || ""}`))));
  } catch (e) { document.getElementById("who").textContent = "connection problem: " + e.message; }
}

document.getElementById("signin-form").onsubmit = async ev => {
  ev.preventDefault();
  try { await signIn(document.getElementById("token").value.trim()); }
  catch (e) { document.getElementById("signin-error").textContent = e.message; }
};
document.getElementById("signout").onclick = () => {
  sessionStorage.removeItem("apsync-token"); location.reload();
};
if (token) signIn(token).catch(() => sessionStorage.removeItem("apsync-token"));
