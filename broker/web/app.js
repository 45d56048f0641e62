// The apsync web page (SmartSync). Everything it shows comes from the REST
// API under /api/v1 (described by /api/v1/openapi.json); it signs in with a
// password, rides the session cookie and sends the CSRF token on changes.
"use strict";

let me = null;          // GET /api/v1/me
let csrf = "";
let erps = [];          // GET /api/v1/erps
let entities = [];      // GET /api/v1/entities
let current = null;     // the chosen legal entity
let timer = null;
let busy = false;

const $ = id => document.getElementById(id);
const ACTIVE = ["queued", "dispatched", "running"];
const STATUS_TEXT = {
  queued: "Requested, not started", dispatched: "Requested, not started",
  running: "Running", success: "Succeeded", partial: "Succeeded, some sections failed",
  failed: "Failed", timed_out: "Failed: timed out", cancelled: "Cancelled",
};

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

// ---- icons: inline SVG with a text alternative ----
const SVG = "http://www.w3.org/2000/svg";
function svg(kind, label) {
  const s = document.createElementNS(SVG, "svg");
  s.setAttribute("viewBox", "0 0 24 24");
  s.setAttribute("class", "icon " + kind);
  s.setAttribute("role", "img");
  s.setAttribute("aria-label", label);
  const t = document.createElementNS(SVG, "title");
  t.textContent = label;
  s.append(t);
  const paths = {
    hourglass: ["M7 3h10M7 21h10", "M8 3c0 5 8 5 8 9s-8 4-8 9", "M16 3c0 5-8 5-8 9s8 4 8 9"],
    check: ["M7 12.5l3.2 3.2L17 9"],
    cross: ["M8 8l8 8M16 8l-8 8"],
    exclamation: ["M12 8v5", "M12 16.5v.5"],
    running: ["M20 12a8 8 0 1 1-2.3-5.6", "M20 4v5h-5"],
  }[kind];
  if (kind === "check" || kind === "cross") {
    const c = document.createElementNS(SVG, "circle");
    c.setAttribute("cx", "12"); c.setAttribute("cy", "12"); c.setAttribute("r", "10");
    s.append(c);
  } else if (kind === "exclamation") {
    const p = document.createElementNS(SVG, "path");
    p.setAttribute("d", "M12 2.5L22.5 21h-21z");
    p.setAttribute("class", "bg");
    s.append(p);
  }
  for (const d of paths) {
    const p = document.createElementNS(SVG, "path");
    p.setAttribute("d", d);
    s.append(p);
  }
  return s;
}

function statusIcon(status) {
  const kind = { queued: "hourglass", dispatched: "hourglass", running: "running",
    success: "check", partial: "exclamation", failed: "cross", timed_out: "cross",
    cancelled: "cross" }[status] || "hourglass";
  return svg(kind, STATUS_TEXT[status] || status);
}

// ---- the API ----
async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, { method, headers, credentials: "same-origin",
    body: body !== undefined ? JSON.stringify(body) : undefined });
  const j = await r.json().catch(() => ({}));
  if (r.status === 401 && me && !path.endsWith("/session")) { signedOut(); }
  if (!r.ok) {
    const e = new Error((j.error && j.error.message) || r.statusText || "request failed");
    e.status = r.status;
    throw e;
  }
  return j;
}

// ---- formatting ----
function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return when(iso);
}
function secs(ms) {
  if (ms == null) return "—";
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
}
function dateOnly(iso) { return iso ? iso.slice(0, 10) : ""; }
const NAMES = { gl_accounts: "GL Accounts", tax_codes: "Tax Codes", bank_accounts: "Bank Accounts",
  separate_checks: "Separate Cheques", units: "Units of Measure", purchase_orders: "Purchase Orders",
  receivings: "Receivings", on_hold: "On Hold", in_progress: "In Progress" };
function label(s) {
  return NAMES[s] || (s || "").replace(/_/g, " ").replace(/^./, c => c.toUpperCase());
}
function num(n) { return n == null ? "—" : Number(n).toLocaleString(); }

function progress(done, total, text) {
  const p = el("progress", { max: total || 1, value: total ? Math.min(done, total) : 0,
    "aria-label": text });
  if (!total) p.removeAttribute("value"); // indeterminate
  return el("div", { class: "progress" }, p, el("span", { class: "muted" }, text));
}

function jobProgress(j) {
  if (ACTIVE.includes(j.status)) {
    const lists = j.lists || [];
    const done = lists.filter(l => !["running", "pending", "queued"].includes(l.status)).length;
    const est = lists.reduce((a, l) => a + (l.estimate || 0), 0);
    const read = j.totals ? j.totals.read : 0;
    const text = j.status === "running"
      ? `${num(read)}${est ? " of ~" + num(est) : ""} rows · ${done}/${lists.length} lists`
      : "waiting to start";
    return progress(est ? read : 0, est, text);
  }
  const t = j.totals || {};
  return el("span", { class: "muted" }, `${num(t.read)} read · ${num(t.inserted)} new · ` +
    `${num(t.updated)} changed${t.deleted ? " · " + num(t.deleted) + " deleted" : ""}`);
}

// An hourglass older than 2 minutes says so, with the broker's reason.
function staleNote(j) {
  if (!["queued", "dispatched"].includes(j.status)) return null;
  const waited = Date.now() - new Date(j.created_at).getTime();
  if (waited < 120000 && !j.reason) return null;
  if (waited < 120000) return el("div", { class: "muted" }, j.reason);
  return el("div", { class: "warn", role: "note" },
    svg("exclamation", "Warning"),
    ` Not started after ${Math.floor(waited / 60000)} min${j.reason ? ": " + j.reason : ""}.` +
    " If it does not start soon, check the SyncTool or contact support.");
}

function logButton(j) {
  return el("button", { type: "button", class: "icon-button", onclick: () => showLog(j.id),
    "aria-label": `Log of sync ${j.id} (${j.entity.name})`, title: "Open the sync log" },
  el("span", { "aria-hidden": "true" }, "☰"), " Log");
}

// ---- sign-in ----
function signedOut() {
  me = null; csrf = "";
  if (timer) clearTimeout(timer);
  document.querySelectorAll(".page").forEach(p => { p.hidden = true; });
  $("nav").hidden = true; $("signout").hidden = true; $("who").textContent = "";
  $("signin").hidden = false;
  const t = localStorage.getItem("apsync-tenant");
  if (t && !$("si-tenant").value) $("si-tenant").value = t;
  ($("si-tenant").value ? $("si-email") : $("si-tenant")).focus();
}

async function start(who) {
  me = who;
  csrf = who.csrf_token || "";
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("signout").hidden = false;
  $("who").textContent = `${me.email} · ${me.tenant} · ${label(me.role)}`;
  document.querySelectorAll("[data-admin]").forEach(e => { e.hidden = !me.may_manage; });
  $("sync-button").hidden = !me.may_sync;
  $("all-button").hidden = !me.may_sync;
  if (!me.may_sync) {
    $("sync-msg").textContent = "Your role may look at syncs but not run them.";
    $("all-msg").textContent = "";
  }
  erps = (await api("GET", "/api/v1/erps")).erps;
  route();
}

$("signin-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const body = { tenant: $("si-tenant").value.trim(), email: $("si-email").value.trim(),
    password: $("si-password").value };
  $("signin-error").textContent = "";
  if (!body.tenant || !body.email || !body.password) {
    $("signin-error").textContent = "Fill in the company, your e-mail and your password.";
    return;
  }
  try {
    const who = await api("POST", "/api/v1/session", body);
    $("si-password").value = "";
    localStorage.setItem("apsync-tenant", body.tenant);
    await start(who);
  } catch (e) { $("signin-error").textContent = e.message; }
});

$("signout").addEventListener("click", async () => {
  try { await api("POST", "/api/v1/session/end"); } catch (e) { /* gone already */ }
  signedOut();
});

// ---- pages ----
function route() {
  if (!me) return;
  let page = (location.hash || "#sync").slice(1);
  if (!["sync", "documents", "synctools", "users"].includes(page)) page = "sync";
  if (page === "users" && !me.may_manage) page = "sync";
  document.querySelectorAll(".page").forEach(p => { p.hidden = p.id !== "page-" + page; });
  document.querySelectorAll("#nav a").forEach(a => {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  refresh(true);
}
window.addEventListener("hashchange", route);

function page() { return (location.hash || "#sync").slice(1); }

async function refresh(first) {
  if (timer) clearTimeout(timer);
  if (!me) return;
  let active = false;
  try {
    busy = true;
    const p = page();
    if (p === "documents") await loadDocuments();
    else if (p === "synctools") await loadTools();
    else if (p === "users") await loadUsers();
    else active = await loadSync(first);
  } catch (e) {
    if (e.status !== 401) $("who").textContent = "Connection problem: " + e.message;
  } finally { busy = false; }
  if (me) timer = setTimeout(refresh, active ? 1500 : 8000);
}

// ---- SmartSync ----
function erpOf(entity) {
  const n = (entity.erp || "").toLowerCase();
  return erps.find(e => e.id === n || e.name.toLowerCase() === n) || null;
}

function renderEntityForm(keep) {
  const sel = $("entity");
  const chosen = keep ? Number(sel.value) : null;
  sel.replaceChildren(...entities.map(e => el("option", { value: e.id },
    `${e.name} (${e.code})`)));
  if (!entities.length) sel.append(el("option", { value: "" }, "No legal entities yet"));
  if (chosen && entities.some(e => e.id === chosen)) sel.value = String(chosen);
  current = entities.find(e => e.id === Number(sel.value)) || null;
  fillEntity(!keep || chosen !== (current && current.id));
}

// The form's fields for the chosen entity; `reset` puts the defaults back.
function fillEntity(reset) {
  const e = current;
  const erp = e ? erpOf(e) : null;
  const cloud = erp ? !erp.synctool : false;
  $("synctool-row").hidden = !e || cloud;
  const tools = e ? e.synctools : [];
  const sel = $("synctool");
  if (tools.length > 1) {
    const was = sel.value;
    sel.replaceChildren(...tools.map(t => el("option", { value: t.id }, t.name)));
    if (tools.some(t => String(t.id) === was)) sel.value = was;
    sel.hidden = false;
    $("synctool-one").hidden = true;
  } else {
    sel.hidden = true;
    $("synctool-one").hidden = false;
    $("synctool-one").textContent = tools.length ? tools[0].name : "No SyncTool enrolled";
  }
  const t = tools.find(x => String(x.id) === sel.value) || tools[0];
  $("synctool-state").replaceChildren(t ? el("span", { class: "state " + t.status },
    t.status === "online" ? "Online" : `Offline, last seen ${ago(t.last_seen)}`) : "");
  const hasPo = !!e && (e.lists || []).some(l => l === "purchase_orders" || l === "receivings");
  $("po-row").hidden = !hasPo;
  if (reset && e) {
    const last = e.last_success;
    $("since").value = last ? dateOnly(last.started_at) : "";
    $("po-since").value = last ? dateOnly(last.started_at) : "";
    $("since-note").textContent = last
      ? `Default: the last successful sync, ${when(last.started_at)}.`
      : "This entity has never synced successfully: run a full sync first.";
    if (!last) document.querySelector("input[name=mode][value=full]").checked = true;
    else document.querySelector("input[name=mode][value=partial]").checked = true;
  }
  modeChanged();
  $("po-since").disabled = !$("po").checked;
  $("sync-button").disabled = !e || !tools.length;
}

function modeChanged() {
  const full = document.querySelector("input[name=mode]:checked").value === "full";
  $("since-row").hidden = full;
  $("full-note").hidden = !full;
}

$("entity").addEventListener("change", () => {
  current = entities.find(e => e.id === Number($("entity").value)) || null;
  fillEntity(true);
  loadLists().catch(() => {});
});
$("synctool").addEventListener("change", () => fillEntity(false));
document.querySelectorAll("input[name=mode]").forEach(r =>
  r.addEventListener("change", modeChanged));
$("po").addEventListener("change", () => { $("po-since").disabled = !$("po").checked; });

function syncOptions() {
  const mode = document.querySelector("input[name=mode]:checked").value;
  const body = { mode };
  if (mode === "partial" && $("since").value) body.since = $("since").value;
  if (!$("po-row").hidden) {
    body.po = { enabled: $("po").checked };
    if ($("po").checked && $("po-since").value) body.po.since = $("po-since").value;
  }
  return body;
}

$("sync-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  if (!current) return;
  const body = Object.assign({ entity: current.id }, syncOptions());
  if (!$("synctool").hidden && $("synctool").value) body.synctool = Number($("synctool").value);
  $("sync-button").disabled = true;
  try {
    const j = await api("POST", "/api/v1/syncs", body);
    $("sync-msg").textContent = `Sync ${j.id} of ${j.entity.name} requested.`;
  } catch (e) { $("sync-msg").textContent = "The sync was not started: " + e.message; }
  $("sync-button").disabled = false;
  refresh();
});

function renderSyncAll() {
  $("all-list").replaceChildren(...entities.map(e => {
    const ok = e.sync_all && e.sync_all.eligible;
    const id = "all-" + e.id;
    const box = el("input", { type: "checkbox", id, value: e.id, disabled: !ok || !me.may_sync,
      "aria-describedby": ok ? null : id + "-why" });
    const old = document.getElementById(id);
    box.checked = old ? old.checked && ok : ok;
    return el("li", { class: ok ? "" : "greyed" }, box,
      el("label", { for: id }, `${e.name} (${e.code})`),
      ok ? null : el("span", { id: id + "-why", class: "why" }, e.sync_all.reason));
  }));
}

$("all-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const ids = [...document.querySelectorAll("#all-list input:checked")].map(b => Number(b.value));
  if (!ids.length) { $("all-msg").textContent = "Choose at least one legal entity."; return; }
  $("all-button").disabled = true;
  try {
    const j = await api("POST", "/api/v1/syncs/all", { entities: ids, mode: "partial" });
    $("all-msg").textContent = `${j.syncs.length} sync(s) requested` + (j.refused.length
      ? "; not synced: " + j.refused.map(r => `${r.name || r.entity} (${r.reason})`).join(", ")
      : ".");
  } catch (e) { $("all-msg").textContent = "Sync All failed: " + e.message; }
  $("all-button").disabled = false;
  refresh();
});

function statusCell(j) {
  return el("td", { class: "st" }, statusIcon(j.status),
    el("span", { class: "st-text" }, STATUS_TEXT[j.status] || j.status));
}

// An export run among the activities: the documents of one export request.
function exportRow(r) {
  const ent = entities.find(e => e.id === r.entity);
  const ms = r.finished_at ? new Date(r.finished_at) - new Date(r.created_at) : null;
  return el("tr", { "data-status": r.status, "data-export": r.id }, statusCell(r),
    el("td", {}, "Export #" + r.id), el("td", {}, ent ? ent.name : r.entity_code),
    el("td", {}, "Export"), el("td", { class: "muted" }, r.created_by || "—"),
    el("td", {}, when(r.created_at)), el("td", {}, secs(ms)),
    el("td", { class: "muted" }, num(r.documents) + (r.documents === 1 ? " document" : " documents")),
    el("td", {}, el("button", { type: "button", class: "icon-button",
      onclick: () => showExportLog(r.id),
      "aria-label": `Log of export ${r.id} (${ent ? ent.name : r.entity_code})`,
      title: "Open the export log" }, el("span", { "aria-hidden": "true" }, "☰"), " Log")));
}

async function showExportLog(id) {
  const run = await api("GET", "/api/v1/exports/" + id);
  $("log-title").textContent = `Export ${run.id} · ${run.entity_code}`;
  $("log-summary").replaceChildren(el("p", {}, statusIcon(run.status), " ",
    STATUS_TEXT[run.status] || run.status, " — ",
    `${num(run.documents)} document(s): ${run.document_ids.map(d => "#" + d).join(", ")}`));
  $("log-text").textContent = run.log.map(l =>
    `${when(l.ts)}  ${l.level.toUpperCase().padEnd(5)}  ${l.message}`).join("\n");
  $("log-dialog").showModal();
}

async function loadSync(first) {
  const [ents, ov, acts, runs] = await Promise.all([api("GET", "/api/v1/entities"),
    api("GET", "/api/v1/overview"), api("GET", "/api/v1/syncs?limit=10"),
    api("GET", "/api/v1/exports?limit=10")]);
  entities = ents.entities;
  const keep = !first && $("entity").options.length > 0;
  if (!keep || entities.length !== $("entity").options.length) renderEntityForm(keep);
  else {
    current = entities.find(e => e.id === Number($("entity").value)) || current;
    fillEntity(false);
  }
  renderSyncAll();
  $("overview").replaceChildren(...ov.overview.map(o => o.latest
    ? el("tr", { "data-status": o.latest.status }, statusCell(o.latest),
      el("td", {}, o.name, el("div", { class: "muted" }, o.code)),
      el("td", {}, label(o.latest.mode)),
      el("td", {}, when(o.latest.created_at), staleNote(o.latest)),
      el("td", {}, jobProgress(o.latest)), el("td", {}, logButton(o.latest)))
    : el("tr", {}, el("td", {}, "—"), el("td", {}, o.name), el("td", { colspan: 4,
      class: "muted" }, "never synced"))));
  // syncs and export runs, the 10 most recent of both
  const rows = acts.syncs.map(j => ({ at: j.created_at, row: () =>
    el("tr", { "data-status": j.status, "data-sync": j.id }, statusCell(j),
      el("td", {}, "#" + j.id), el("td", {}, j.entity.name), el("td", {}, label(j.mode)),
      el("td", { class: "muted" }, j.requested_by || "—"),
      el("td", {}, when(j.created_at), staleNote(j)),
      el("td", {}, secs(j.duration_ms)), el("td", {}, jobProgress(j)),
      el("td", {}, logButton(j))) }))
    .concat(runs.runs.map(r => ({ at: r.created_at, row: () => exportRow(r) })))
    .sort((a, b) => new Date(b.at) - new Date(a.at)).slice(0, 10);
  $("activities").replaceChildren(...rows.map(r => r.row()));
  if (!rows.length)
    $("activities").append(el("tr", {}, el("td", { colspan: 9, class: "muted" },
      "No syncs yet.")));
  const active = acts.syncs.some(j => ACTIVE.includes(j.status)) ||
    runs.runs.some(r => r.status === "running") ||
    ov.overview.some(o => o.latest && ACTIVE.includes(o.latest.status));
  await loadLists();
  return active;
}

async function loadLists() {
  if (!current) { $("lists").replaceChildren(); return; }
  $("lists-title").textContent = `Lists of ${current.name}`;
  const j = await api("GET", `/api/v1/entities/${current.id}/lists`);
  $("lists").replaceChildren(...j.lists.map(l => {
    const run = l.running;
    const err = l.error && (l.status === "failed" || l.status === "partial");
    let prog;
    if (run) prog = progress(run.done, run.estimate || 0,
      `${num(run.done)}${run.estimate ? " of ~" + num(run.estimate) : ""}`);
    else prog = el("span", { class: "muted" }, l.status ? label(l.status) : "—");
    return el("tr", { "data-list": l.list },
      el("th", { scope: "row" }, label(l.list)), el("td", {}, num(l.items)),
      el("td", {}, when(l.last_synced)), el("td", {}, secs(l.duration_ms)),
      el("td", {}, prog),
      el("td", {}, err ? el("span", { class: "list-error", title: l.error.message },
        svg("cross", "Error"), " ", l.error.message) : (l.status === "success"
        ? svg("check", "Synced") : "")),
      el("td", {}, me.may_sync ? el("button", { type: "button", class: "small",
        "aria-label": `Sync ${label(l.list)} now`, disabled: !!run || !current.synctools.length,
        onclick: ev => syncList(l.list, ev.target) }, "Sync now") : ""));
  }));
}

async function syncList(list, button) {
  button.disabled = true;
  try {
    const body = { entity: current.id, mode: current.last_success ? "partial" : "full",
      lists: [list] };
    await api("POST", "/api/v1/syncs", body);
  } catch (e) { $("sync-msg").textContent = `${label(list)} not synced: ${e.message}`; }
  refresh();
}

async function showLog(id) {
  const [job, log] = await Promise.all([api("GET", "/api/v1/syncs/" + id),
    api("GET", "/api/v1/syncs/" + id + "/log")]);
  $("log-title").textContent = `Sync ${job.id} · ${job.entity.name}`;
  $("log-summary").replaceChildren(
    el("p", {}, statusIcon(job.status), " ", STATUS_TEXT[job.status] || job.status,
      job.error ? el("span", { class: "error" }, " — " + job.error.message) : null),
    el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {},
      ...["List", "Status", "Read", "New", "Changed", "Duration", "Error"].map(h =>
        el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...job.lists.map(l => el("tr", {}, el("td", {}, label(l.list)),
      el("td", {}, label(l.status)), el("td", {}, num(l.counts.read)),
      el("td", {}, num(l.counts.inserted)), el("td", {}, num(l.counts.updated)),
      el("td", {}, secs(l.duration_ms)),
      el("td", { class: "error" }, l.error ? l.error.message : "")))))));
  $("log-text").textContent = log.log.map(l =>
    `${when(l.ts)}  ${l.level.toUpperCase().padEnd(5)}  ${l.message}`).join("\n");
  $("log-dialog").showModal();
}
$("log-close").addEventListener("click", () => $("log-dialog").close());

// ---- Documents ----
const DOC_STATUS = { success: "Success", failed: "Failed", in_progress: "In Progress",
  queued: "In Progress", blocked: "Blocked", on_hold: "On Hold", uncertain: "Uncertain" };

async function loadDocuments() {
  const q = new URLSearchParams();
  if ($("doc-status").value) q.set("status", $("doc-status").value);
  if ($("doc-type").value) q.set("type", $("doc-type").value);
  q.set("limit", "100");
  const j = await api("GET", "/api/v1/documents?" + q);
  const names = Object.fromEntries(entities.map(e => [e.id, e.name]));
  $("documents").replaceChildren(...j.documents.map(d => {
    const erp = d.erp || {};
    const reason = d.reason || "";
    return el("tr", { "data-status": d.status },
      el("td", {}, label(d.type)), el("td", {}, d.vendor),
      el("td", {}, d.number || d.reference), el("td", {}, names[d.entity] || d.entity_code),
      el("td", { class: "num" }, d.amount || "—"),
      el("td", {}, el("span", { class: "badge " + d.status, title: reason || null,
        tabindex: reason ? "0" : null,
        "aria-label": reason ? `${DOC_STATUS[d.status]}: ${reason}` : null },
      DOC_STATUS[d.status] || d.status),
      reason ? el("div", { class: "reason muted" }, reason) : null),
      el("td", {}, erp.link ? el("a", { href: erp.link, target: "_blank", rel: "noopener",
        "aria-label": `Open ${erp.number || erp.id} in the ERP` }, erp.number || erp.id || "Open")
        : (erp.number || erp.id || "—")),
      el("td", {}, me.may_sync && ["failed", "uncertain"].includes(d.status)
        ? el("button", { type: "button", class: "small", "aria-label":
          `Retry ${d.type} ${d.number || d.reference}`, onclick: ev => retryDoc(d, ev.target) },
        "Retry") : ""));
  }));
  $("docs-empty").hidden = j.documents.length > 0;
}

async function retryDoc(d, button) {
  button.disabled = true;
  try { await api("POST", `/api/v1/documents/${d.id}/retry`); }
  catch (e) { alert(`Not retried: ${e.message}`); }
  refresh();
}
$("doc-status").addEventListener("change", () => refresh());
$("doc-type").addEventListener("change", () => refresh());

// ---- SyncTools ----
async function loadTools() {
  const j = await api("GET", "/api/v1/synctools");
  $("tools").replaceChildren(...j.synctools.map(t => el("tr", { "data-tool": t.name },
    el("th", { scope: "row" }, t.name),
    el("td", {}, el("span", { class: "state " + t.status }, t.status === "online"
      ? "Online" : "Offline")),
    el("td", {}, t.status === "online" ? ago(t.last_seen) : when(t.last_seen)),
    el("td", {}, t.version || "—"),
    el("td", {}, t.erp.error ? el("span", { class: "error" }, t.erp.error)
      : `${t.erp.product || "—"} ${t.erp.version || ""}`),
    el("td", {}, t.entities.map(e => e.name).join(", ") || "—"),
    me.may_manage ? el("td", {}, el("button", { type: "button", class: "small danger",
      "aria-label": `Revoke SyncTool ${t.name}`, onclick: () => revokeTool(t.name) },
    "Revoke")) : null)));
  if (!j.synctools.length)
    $("tools").append(el("tr", {}, el("td", { colspan: 7, class: "muted" },
      "No SyncTool enrolled yet.")));
}

async function revokeTool(name) {
  if (!confirm(`Revoke SyncTool ${name}? It stops syncing until enrolled again.`)) return;
  try { await api("POST", `/api/v1/synctools/${encodeURIComponent(name)}/revoke`); }
  catch (e) { alert(e.message); }
  refresh();
}

$("code-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const name = $("code-name").value.trim();
  if (!name) return;
  try {
    const j = await api("POST", "/api/v1/synctools/codes", { name });
    $("code-out").replaceChildren("One-time enrollment code for ", el("strong", {}, j.synctool),
      ": ", el("code", { class: "code" }, j.code), ` (valid until ${when(j.expires_at)}). ` +
      "On the ERP's server: apsync-agent enroll --code " + j.code);
  } catch (e) { $("code-out").textContent = e.message; }
});

// ---- Users ----
const ROLES = ["system_administrator", "invoice_exporter", "invoice_administrator",
  "purchase_order_administrator", "payment_administrator", "approver", "viewer"];

async function loadUsers() {
  const j = await api("GET", "/api/v1/users");
  if (!$("nu-role").options.length)
    $("nu-role").replaceChildren(...ROLES.map(r => el("option", { value: r }, label(r))));
  $("users").replaceChildren(...j.users.map(u => {
    const sel = el("select", { "aria-label": `Role of ${u.email}`,
      onchange: ev => setRole(u, ev.target.value) },
    ...ROLES.map(r => el("option", { value: r, selected: r === u.role }, label(r))));
    return el("tr", {}, el("th", { scope: "row" }, u.email), el("td", {}, sel),
      el("td", {}, u.password ? "Set" : "—"), el("td", {}, when(u.last_active)));
  }));
}

async function setRole(u, role) {
  try { await api("POST", `/api/v1/users/${u.id}/role`, { role });
    $("user-msg").textContent = `${u.email} is now ${label(role)}.`; }
  catch (e) { $("user-msg").textContent = e.message; }
  refresh();
}

$("user-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const body = { email: $("nu-email").value.trim(), role: $("nu-role").value };
  if ($("nu-password").value) body.password = $("nu-password").value;
  try {
    await api("POST", "/api/v1/users", body);
    $("user-msg").textContent = `${body.email} added.`;
    $("nu-email").value = ""; $("nu-password").value = "";
  } catch (e) { $("user-msg").textContent = e.message; }
  refresh();
});

// ---- start: a live session goes straight in ----
fetch("/api/v1/me", { credentials: "same-origin" })
  .then(r => (r.ok ? r.json() : null))
  .then(who => (who && who.auth === "session" ? start(who) : signedOut()))
  .catch(signedOut);
