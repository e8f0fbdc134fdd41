// Live dashboard for the tweets example. Polls the interactive-query JSON API of the
// instance that served this page and renders three panels. All data goes into the DOM
// through textContent/createElement, never as HTML.
"use strict";

const POLL_MS = 1000;
const TIMEOUT_MS = 5000;
const GRACE_MS = 5000; // must match the grace of the 1-minute hashtag windows
const MINUTES_SHOWN = 3;
const TAGS_PER_MINUTE = 10;
const MAX_TIME = "9223372036854775807"; // i64::MAX as text: exact, unlike a JS number

const WINDOWS_URL = `/v1/stores/hashtag-counts-1m-store/windows?from=0&to=${MAX_TIME}`;
const COUNTRIES_URL = "/v1/stores/country-tweet-counts-store/range";
const USERS_URL = "/v1/stores/user-tweet-counts-store/range";

const $ = (id) => document.getElementById(id);
const search = $("user-search");

// Fetches JSON; a failure becomes an Error whose message is the API's own message when the
// body is the JSON error shape, else the HTTP status.
async function getJson(url) {
  // Without a timeout, one hung request would stall the polling loop for good.
  const signal = AbortSignal.timeout ? AbortSignal.timeout(TIMEOUT_MS) : undefined;
  const res = await fetch(url, { signal, headers: { Accept: "application/json" } });
  if (!res.ok) {
    let message = `HTTP ${res.status}${res.statusText ? " " + res.statusText : ""}`;
    try {
      const body = await res.json();
      if (body && typeof body.message === "string" && body.message) message = body.message;
    } catch { /* not JSON: keep the status */ }
    throw new Error(message);
  }
  return res.json();
}

// Keys and values are usually a string or a number; ones that are not JSON-representable
// arrive base64-encoded and are shown as that raw string.
function text(v) {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  return JSON.stringify(v);
}

// Counts sort as numbers; anything else (e.g. a base64 string) sorts last.
const num = (v) => (typeof v === "number" ? v : -Infinity);

// Plain code-unit order, so ties break the same way in every browser and locale.
const byName = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const byCountThenName = (a, b) => num(b.value) - num(a.value) || byName(text(a.key), text(b.key));

function cell(className, content) {
  const td = document.createElement("td");
  td.className = className;
  td.textContent = content;
  return td;
}

const hhmm = (ms) => new Date(ms).toISOString().slice(11, 16);

// --- Panel 1: hashtags per closed minute -----------------------------------------------

function renderMinutes(windows) {
  const list = Array.isArray(windows) ? windows : windows.entries || [];
  // Stream time is not exposed; the newest window start is a lower bound of it, so a
  // window counted as closed here is certainly closed for the application too.
  let latest = -Infinity;
  for (const w of list) latest = Math.max(latest, Number(w.start));

  const byStart = new Map();
  for (const w of list) {
    const start = Number(w.start);
    const end = Number(w.end);
    if (end + GRACE_MS > latest) continue; // still open: its count may change
    if (!byStart.has(start)) byStart.set(start, { start, end, rows: [] });
    byStart.get(start).rows.push(w);
  }
  const minutes = [...byStart.values()].sort((a, b) => b.start - a.start).slice(0, MINUTES_SHOWN);

  const blocks = minutes.map((m) => {
    const block = document.createElement("div");
    block.className = "minute";
    block.dataset.start = String(m.start);
    const h = document.createElement("h3");
    h.textContent = `${hhmm(m.start)}–${hhmm(m.end)} UTC`;
    const table = document.createElement("table");
    const tbody = table.createTBody();
    for (const w of m.rows.sort(byCountThenName).slice(0, TAGS_PER_MINUTE)) {
      const tr = document.createElement("tr");
      tr.dataset.tag = text(w.key);
      tr.append(cell("tag", "#" + text(w.key)), cell("count", text(w.value)));
      tbody.append(tr);
    }
    block.append(h, table);
    return block;
  });
  $("minutes").replaceChildren(...blocks);
  $("minutes-empty").hidden = blocks.length > 0;
}

// --- Panels 2 and 3: key/count tables ---------------------------------------------------

// Renders `entries` into the table with id `tableId`, one row per key with the key in the
// `data-<attr>` attribute, plus a bar behind the name proportional to the count.
function renderCounts(tableId, attr, entries) {
  const sorted = [...entries].sort(byCountThenName);
  const max = Math.max(1, ...sorted.map((e) => num(e.value)));
  const rows = sorted.map((e) => {
    const tr = document.createElement("tr");
    tr.dataset[attr] = text(e.key);
    const name = cell("name", text(e.key));
    const pct = typeof e.value === "number" ? Math.max(0, (100 * e.value) / max) : 0;
    name.style.setProperty("--pct", `${pct.toFixed(1)}%`);
    tr.append(name, cell("count", text(e.value)));
    return tr;
  });
  $(tableId).tBodies[0].replaceChildren(...rows);
  $(`${tableId}-empty`).hidden = rows.length > 0;
}

// Each users request gets a number; only the newest one may render, so a slow answer for
// an old search term never overwrites the answer for the current one.
let usersSeq = 0;

async function loadUsers() {
  const seq = ++usersSeq;
  const term = search.value;
  const url = term ? `${USERS_URL}?prefix=${encodeURIComponent(term)}` : USERS_URL;
  const body = await getJson(url);
  if (seq === usersSeq) renderCounts("users", "user", body.entries || []);
  return body;
}

// --- Status line and polling ------------------------------------------------------------

function setStatus(state, message) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = message;
}

async function round() {
  const jobs = [
    ["hashtags", getJson(WINDOWS_URL).then((b) => (renderMinutes(b), b))],
    ["countries", getJson(COUNTRIES_URL).then((b) => (renderCounts("countries", "country", b.entries || []), b))],
    ["users", loadUsers()],
  ];
  const results = await Promise.allSettled(jobs.map(([, p]) => p));

  const failed = results.map((r, i) => [jobs[i][0], r]).filter(([, r]) => r.status === "rejected");
  if (failed.length) {
    const [panel, r] = failed[0];
    setStatus("error", r.reason && r.reason.message ? r.reason.message : String(r.reason));
    $("status").title = `failed: ${failed.map(([p]) => p).join(", ")} (first: ${panel})`;
    return;
  }

  // Several instances may have answered (the API fans out to the owners of each key).
  const servers = new Set();
  for (const r of results) {
    const served = r.value && r.value.served_by;
    if (Array.isArray(served)) served.forEach((s) => servers.add(text(s)));
  }
  $("served-by").textContent = servers.size ? [...servers].sort(byName).join(", ") : "–";
  $("updated").textContent = new Date().toLocaleTimeString();
  $("status").title = "";
  setStatus("ok", "ok");
  document.body.dataset.rounds = String(Number(document.body.dataset.rounds || 0) + 1);
}

// The next round is scheduled only after this one finished, so requests never pile up.
async function poll() {
  try {
    await round();
  } catch (e) {
    setStatus("error", e && e.message ? e.message : String(e)); // a rendering bug, say
  }
  setTimeout(poll, POLL_MS);
}

// Searching answers right away instead of waiting for the next round; a short debounce
// keeps fast typing from sending one request per key.
let debounce;
search.addEventListener("input", () => {
  clearTimeout(debounce);
  debounce = setTimeout(() => {
    loadUsers().catch((e) => setStatus("error", e.message));
  }, 150);
});

poll();
