// Treaty dashboard: a small single-page app over the coordinator's REST API.
// Routes (location.hash): #/ overview, #/transactions?filters, #/txn/<gtid>.
// Data: /v1/stats, /v1/cluster, /v1/transactions, /v1/transactions/{gtid},
// POST .../retry, .../abort, .../pause, .../resume and
// .../branches/{branch}/resolve. Only the actions that apply to the
// transaction's kind, state and paused flag are offered (actionsFor,
// resolveOutcomeFor: the rules of docs/operations.md "Operator actions");
// a refusal shows the server's message. Every value is put in the page as
// text (textContent), never as HTML.
// Access (docs/security.md "Dashboard"): when the API answers 401 the page
// shows a sign-in form; a token is traded for an HttpOnly session cookie
// (POST /v1/session) that this script never sees; DELETE /v1/session signs
// out. Requests go same-origin with credentials, state-changing ones with a
// JSON body (the server refuses anything else). The page runs under a
// Content-Security-Policy without 'unsafe-inline': no inline script, style
// attribute or handler attribute; styles are set through CSSOM only.
"use strict";

const REFRESH_MS = 2000;
const TERMINAL = new Set(["COMMITTED", "ABORTED"]);
// Every state has a text label and an icon; the colour class only adds to it.
const STATE_LOOK = {
  COMMITTED: ["✔", "s-ok"], SUCCEEDED: ["✔", "s-ok"], PREPARED: ["✔", "s-ok"],
  READONLY: ["◌", "s-ok"], COMPENSATED: ["↩", "s-none"],
  ABORTED: ["✖", "s-bad"], FAILED: ["✖", "s-bad"],
  RUNNING: ["▶", "s-run"], ACTIVE: ["○", "s-run"], PREPARING: ["⧗", "s-run"],
  COMMITTING: ["⇢", "s-run"], ENLISTED: ["＋", "s-none"], PENDING: ["…", "s-none"],
  COMPENSATING: ["↺", "s-warn"], ABORTING: ["⇠", "s-warn"],
  alive: ["●", "s-ok"], draining: ["◐", "s-warn"], dead: ["✖", "s-bad"],
};

let timer = null;
let renderSeq = 0;
let signedOut = false;  // the sign-in form is shown; nothing refreshes

// Thrown by api() on 401: the page needs a sign-in.
class NeedsSignIn extends Error {}

// ---------- helpers ----------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") Object.assign(el.style, v);  // CSSOM: allowed by the CSP
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function badge(state) {
  const [icon, cls] = STATE_LOOK[state] || ["•", "s-none"];
  return h("span", { class: "badge " + cls, "data-state": state, title: state }, icon + " " + state);
}

function attentionBadge(on) {
  return on ? h("span", { class: "badge s-warn", "data-attention": "true" }, "⚠ needs attention") : "";
}

function pausedBadge(on) {
  return on ? h("span", { class: "badge s-none", "data-paused": "true" }, "⏸ paused") : "";
}

// The operator actions that apply to transaction `t` (docs/operations.md).
function actionsFor(t) {
  if (TERMINAL.has(t.state)) return [];
  const out = ["retry"];
  const abortable = t.kind === "saga" ? t.state === "RUNNING" : (t.state === "ACTIVE" || t.state === "PREPARING");
  if (abortable) out.push("abort");
  out.push(t.paused ? "resume" : "pause");
  return out;
}

// The outcome an operator may record for branch `b` of transaction `t`, or null.
function resolveOutcomeFor(t, b) {
  if (t.kind === "saga") return t.state === "COMPENSATING" && b.state === "COMPENSATING" ? "COMPENSATED" : null;
  if (t.state === "COMMITTING") return b.state === "COMMITTING" ? "COMMITTED" : null;
  if (t.state === "ABORTING") {
    return ["ABORTING", "ENLISTED", "PREPARING", "PREPARED"].includes(b.state) ? "ABORTED" : null;
  }
  return null;
}

const ACTION_TEXT = {
  retry: ["↻ Retry now", "primary", "Retry now?", (g) => "Run every pending retry of " + g + " now, without waiting for its backoff?"],
  abort: ["✖ Force abort", "danger", "Force abort?", (g) => "Abort " + g + "? A saga compensates every attempted step; this cannot be undone."],
  pause: ["⏸ Pause", "", "Pause?", (g) => "Send no participant call of " + g + " until it is resumed? Calls in flight finish."],
  resume: ["▶ Resume", "primary", "Resume?", (g) => "Send the paused calls of " + g + " again?"],
};

function fmtTime(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  return d.toLocaleString(undefined, { hour12: false });
}

function fmtAge(ms) {
  if (ms === null || ms === undefined) return "—";
  const s = Math.round(ms / 1000);
  if (Math.abs(s) < 60) return s + " s";
  if (Math.abs(s) < 3600) return Math.round(s / 60) + " min";
  if (Math.abs(s) < 86400) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}

function fmtUntil(ms) {
  if (!ms) return "—";
  const d = ms - Date.now();
  return (d <= 0 ? "due now" : "in " + fmtAge(d)) + " (" + fmtTime(ms) + ")";
}

async function api(method, path, body) {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, init);
  let data = null;
  try { data = await r.json(); } catch (e) { /* not JSON */ }
  if (r.status === 401 && path !== "/v1/session") throw new NeedsSignIn("sign in");
  if (!r.ok) {
    const msg = data && data.error ? data.error.code + ": " + data.error.message : "HTTP " + r.status;
    throw new Error(msg);
  }
  return data;
}

function showError(err) {
  const b = document.getElementById("banner");
  if (!err) { b.hidden = true; b.textContent = ""; return; }
  b.hidden = false;
  b.textContent = "⚠ " + err;
}

function markUpdated() {
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString(undefined, { hour12: false });
}

// Asks to confirm; resolves to null (cancelled) or the reason typed (""
// when none). With `needReason` the dialog will not confirm without one.
function confirmAction(title, text, needReason) {
  const dlg = document.getElementById("confirm");
  const reason = document.getElementById("reason-text");
  const error = document.getElementById("reason-error");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("reason-need").textContent = needReason ? "(required: what did you do?)" : "(optional)";
  reason.value = "";
  error.hidden = true;
  const ok = document.getElementById("confirm-ok");
  const check = (e) => {
    if (needReason && reason.value.trim() === "") {
      e.preventDefault();
      error.textContent = "A reason is required.";
      error.hidden = false;
      reason.focus();
    }
  };
  ok.addEventListener("click", check);
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => {
      ok.removeEventListener("click", check);
      resolve(dlg.returnValue === "ok" ? reason.value.trim() : null);
    }, { once: true });
    dlg.returnValue = "";
    dlg.showModal();
  });
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = raw.split("?");
  return { path, params: new URLSearchParams(qs || "") };
}

// ---------- overview ----------
async function renderOverview(view, seq) {
  const [stats, cluster, attention] = await Promise.all([
    api("GET", "/v1/stats"),
    api("GET", "/v1/cluster"),
    api("GET", "/v1/transactions?needs_attention=true&limit=20"),
  ]);
  if (seq !== renderSeq) return;
  const bs = stats.by_state || {};
  const minutes = stats.throughput_per_minute || [];
  const last5 = minutes.slice(-5);
  const sum = (k) => last5.reduce((a, m) => a + m[k], 0);
  const calls5 = sum("calls"), failed5 = sum("failed_calls");
  const finished5 = sum("committed") + sum("aborted");
  const tiles = h("div", { class: "tiles" },
    tile(stats.needs_attention, "⚠ need attention", stats.needs_attention > 0, "tile-attention"),
    tile(stats.in_flight, "▶ in flight"),
    tile(bs.COMMITTED || 0, "✔ committed"),
    tile(bs.ABORTED || 0, "✖ aborted"),
    tile((finished5 / 5).toFixed(1), "finished / min (last 5 min)"),
    tile(calls5 ? (100 * failed5 / calls5).toFixed(1) + " %" : "—", "participant call failures (last 5 min)"),
  );

  const attentionCard = h("section", { class: "card", id: "attention" },
    h("h2", {}, "⚠ Needs attention first"),
    attention.items.length === 0
      ? h("p", { class: "muted" }, "Nothing needs attention.")
      : txnTable(attention.items),
    attention.next ? h("p", {}, h("a", { href: "#/transactions?needs_attention=true" }, "All that need attention →")) : "");

  const countRows = (stats.counts || []).slice().sort((a, b) =>
    (a.kind + a.state).localeCompare(b.kind + b.state));
  const countsCard = h("section", { class: "card" }, h("h2", {}, "Transactions by kind and state"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Kind"), h("th", {}, "State"),
      h("th", {}, "Attention"), h("th", { class: "num" }, "Count"))),
    h("tbody", {}, countRows.length === 0 ? h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No transactions yet.")) : null,
      countRows.map((c) => h("tr", {},
        h("td", {}, c.kind), h("td", {}, badge(c.state)), h("td", {}, attentionBadge(c.needs_attention && !TERMINAL.has(c.state))),
        h("td", { class: "num" }, h("a", { href: "#/transactions?kind=" + encodeURIComponent(c.kind) +
          "&state=" + encodeURIComponent(c.state) + (c.needs_attention ? "&needs_attention=true" : "") }, c.count)))))));

  const maxBar = Math.max(1, ...minutes.map((m) => m.committed + m.aborted));
  const throughputCard = h("section", { class: "card" },
    h("h2", {}, "Throughput, last 15 minutes (this coordinator)"),
    h("div", { class: "bars", role: "img", "aria-label": "finished transactions per minute" },
      minutes.map((m) => h("div", { class: "bar", title: new Date(m.start_ms).toLocaleTimeString() +
        ": " + m.committed + " committed, " + m.aborted + " aborted, " + m.started + " started, " +
        m.failed_calls + "/" + m.calls + " calls failed" },
        h("div", { class: "c", style: { height: (80 * m.committed / maxBar) + "px" } }),
        h("div", { class: "a", style: { height: (80 * m.aborted / maxBar) + "px" } })))),
    h("div", { class: "legend" }, h("span", { class: "sw c" }), "committed",
      h("span", { class: "sw a" }), "aborted (striped)"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Minute"), h("th", { class: "num" }, "Started"),
      h("th", { class: "num" }, "Committed"), h("th", { class: "num" }, "Aborted"), h("th", { class: "num" }, "Call failure rate"))),
    h("tbody", {}, minutes.slice(-5).reverse().map((m) => h("tr", {},
      h("td", {}, new Date(m.start_ms).toLocaleTimeString(undefined, { hour12: false, hour: "2-digit", minute: "2-digit" })),
      h("td", { class: "num" }, m.started), h("td", { class: "num" }, m.committed), h("td", { class: "num" }, m.aborted),
      h("td", { class: "num" }, m.calls ? (100 * m.failed_calls / m.calls).toFixed(1) + " %" : "—"))))));

  const clusterCard = h("section", { class: "card", id: "cluster" }, h("h2", {}, "Cluster coordinators"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Node"), h("th", {}, "State"), h("th", {}, "HTTP"),
      h("th", { class: "num" }, "Heartbeat age"), h("th", { class: "num" }, "Owned"))),
    h("tbody", {}, cluster.coordinators.map((c) => h("tr", {},
      h("td", { title: c.id }, (c.node_name || "(unnamed)") + " ", h("span", { class: "muted" }, c.id)),
      h("td", {}, badge(c.state)), h("td", {}, c.http || "—"),
      h("td", { class: "num" }, fmtAge(c.heartbeat_age_ms)), h("td", { class: "num" }, c.owned))))));

  view.replaceChildren(h("h1", {}, "Overview"), tiles, attentionCard,
    h("div", { class: "grid" }, countsCard, throughputCard), clusterCard);
}

function tile(n, label, alert, id) {
  return h("div", { class: "tile" + (alert ? " alert" : ""), id }, h("div", { class: "n" }, n), h("div", { class: "l" }, label));
}

function txnTable(items) {
  const now = Date.now();
  return h("table", { class: "txns" },
    h("thead", {}, h("tr", {}, h("th", {}, "GTID"), h("th", {}, "Kind"), h("th", {}, "State"),
      h("th", { class: "num" }, "Attempts"), h("th", { class: "num" }, "Age"), h("th", {}, "Updated"), h("th", {}, "Owner"),
      h("th", {}, "Last error"))),
    h("tbody", {}, items.map((t) => h("tr", { class: t.needs_attention ? "attention" : "", "data-gtid": t.gtid },
      h("td", { class: "gtid" }, h("a", { href: "#/txn/" + encodeURIComponent(t.gtid) }, t.gtid)),
      h("td", {}, t.kind),
      h("td", {}, badge(t.state), " ", attentionBadge(t.needs_attention), " ", pausedBadge(t.paused)),
      h("td", { class: "num" }, t.attempts),
      h("td", { class: "num" }, fmtAge(now - t.created_at_ms)),
      h("td", {}, fmtTime(t.updated_at_ms)),
      h("td", { class: "muted" }, t.owner || "—"),
      h("td", { class: "lasterr" }, t.last_error
        ? h("span", { class: "err", title: t.last_error }, t.last_error.length > 80 ? t.last_error.slice(0, 80) + "…" : t.last_error)
        : "—")))));
}

// ---------- transactions list ----------
// Cursor paging: `cursor` is the current page's cursor; `prev` keeps the
// cursors of earlier pages (comma separated) for the Previous button.
async function renderList(view, params, seq) {
  const q = new URLSearchParams();
  for (const k of ["state", "kind", "needs_attention", "paused", "gtid_prefix", "cursor"]) {
    if (params.get(k)) q.set(k, params.get(k));
  }
  const ageS = params.get("min_age_s");
  if (ageS) q.set("min_age_ms", String(Math.round(Number(ageS) * 1000)));
  q.set("limit", params.get("limit") || "50");
  const page = await api("GET", "/v1/transactions?" + q.toString());
  if (seq !== renderSeq) return;
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".filters");
  if (focused && view.querySelector(".filters")) {
    // Don't rebuild the form under the operator's fingers; refresh the table only.
    view.querySelector("#list-body").replaceChildren(listBody(page, params));
    return;
  }
  view.replaceChildren(h("h1", {}, "Transactions"), filterForm(params), h("div", { id: "list-body" }, listBody(page, params)));
}

function listBody(page, params) {
  const prev = (params.get("prev") || "").split(",").filter((x) => x !== "");
  const go = (cursor, prevList) => {
    const p = new URLSearchParams(params);
    if (cursor) p.set("cursor", cursor); else p.delete("cursor");
    if (prevList.length) p.set("prev", prevList.join(",")); else p.delete("prev");
    location.hash = "#/transactions?" + p.toString();
  };
  const pageNo = prev.length + 1;
  const pager = h("div", { class: "pager" },
    h("button", { disabled: pageNo === 1, onclick: () => go("", []) }, "⏮ First"),
    h("button", { disabled: pageNo === 1, onclick: () => {
      const back = prev.slice(0, -1); const c = prev[prev.length - 1];
      go(c === "-" ? "" : c, back);
    } }, "◀ Previous"),
    h("span", {}, "Page " + pageNo + " · " + page.items.length + " rows"),
    h("button", { id: "next-page", disabled: !page.next, onclick: () =>
      go(page.next, prev.concat([params.get("cursor") || "-"])) }, "Next ▶"));
  return h("div", {}, pager, page.items.length ? txnTable(page.items) : h("p", { class: "muted" }, "No transaction matches."), page.items.length > 20 ? pager.cloneNode(true) : "");
}

function filterForm(params) {
  const sel = (name, label, options) => h("label", {}, label,
    h("select", { name }, options.map(([v, t]) => h("option", { value: v, selected: (params.get(name) || "") === v }, t))));
  const states = ["", "RUNNING", "COMPENSATING", "ACTIVE", "PREPARING", "COMMITTING", "ABORTING", "COMMITTED", "ABORTED"];
  const form = h("form", { class: "filters", id: "filters", onsubmit: (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const p = new URLSearchParams();
    for (const [k, v] of fd.entries()) if (v) p.set(k, v);
    location.hash = "#/transactions?" + p.toString();
  } },
    sel("state", "State", states.map((s) => [s, s || "any"])),
    sel("kind", "Kind", [["", "any"], ["saga", "saga"], ["2pc", "2pc"]]),
    sel("needs_attention", "Needs attention", [["", "any"], ["true", "⚠ yes"], ["false", "no"]]),
    sel("paused", "Paused", [["", "any"], ["true", "⏸ yes"], ["false", "no"]]),
    h("label", {}, "Older than (s)", h("input", { name: "min_age_s", type: "number", min: "0", size: "6", value: params.get("min_age_s") || "" })),
    h("label", {}, "GTID prefix", h("input", { name: "gtid_prefix", type: "search", value: params.get("gtid_prefix") || "" })),
    sel("limit", "Page size", [["50", "50"], ["100", "100"], ["500", "500"], ["1000", "1000"]]),
    h("button", { type: "submit", class: "primary" }, "Apply"),
    h("button", { type: "button", onclick: () => { location.hash = "#/transactions"; } }, "Clear"));
  return form;
}

// ---------- transaction detail ----------
async function renderDetail(view, gtid, seq) {
  const t = await api("GET", "/v1/transactions/" + encodeURIComponent(gtid));
  if (seq !== renderSeq) return;
  const terminal = TERMINAL.has(t.state);
  const status = h("span", { class: "toast", id: "action-status", "aria-live": "polite" },
    view.querySelector("#action-status") ? view.querySelector("#action-status").textContent : "");
  const say = (text) => { document.getElementById("action-status").textContent = text; };
  const gpath = "/v1/transactions/" + encodeURIComponent(gtid);
  const act = async (kind) => {
    const [label, , title, text] = ACTION_TEXT[kind];
    const reason = await confirmAction(title, text(gtid), false);
    if (reason === null) return;
    try {
      const r = await api("POST", gpath + "/" + kind, reason ? { reason } : {});
      say(label.slice(2) + " done: now " + r.state + (r.paused ? " (paused)" : ""));
    } catch (e) {
      say("✖ " + e.message);
    }
    refresh();
  };
  const resolve = async (branch, outcome) => {
    const reason = await confirmAction("Mark branch '" + branch + "' " + outcome + "?",
      "Record that you " + (outcome === "COMPENSATED" ? "undid" : outcome === "COMMITTED" ? "committed" : "aborted") +
      " branch '" + branch + "' of " + gtid + " by hand. The coordinator will not call it again for this, and the transaction continues.", true);
    if (reason === null) return;
    try {
      const r = await api("POST", gpath + "/branches/" + encodeURIComponent(branch) + "/resolve", { outcome, reason });
      say("Branch " + branch + " marked " + outcome + ": now " + r.state);
    } catch (e) {
      say("✖ " + e.message);
    }
    refresh();
  };
  const buttons = actionsFor(t).map((kind) => {
    const [label, cls] = ACTION_TEXT[kind];
    return h("button", { id: kind + "-btn", class: cls || undefined, onclick: () => act(kind) }, label);
  });
  const anyResolvable = (t.branches || []).some((b) => resolveOutcomeFor(t, b));
  const spec = t.spec || {};
  view.replaceChildren(
    h("p", {}, h("a", { href: "#/transactions" }, "← Transactions")),
    h("h1", {}, t.kind + " ", h("span", { class: "gtid", id: "detail-gtid" }, t.gtid)),
    h("div", { class: "actions" }, h("span", { id: "detail-state" }, badge(t.state)), attentionBadge(t.needs_attention),
      pausedBadge(t.paused), buttons, status),
    h("section", { class: "card" }, h("dl", { class: "kv" },
      h("dt", {}, "Owner"), h("dd", {}, t.owner || "— (unowned)"),
      h("dt", {}, "Created"), h("dd", {}, fmtTime(t.created_at_ms)),
      h("dt", {}, "Updated"), h("dd", {}, fmtTime(t.updated_at_ms)),
      h("dt", {}, "Deadline"), h("dd", {}, fmtTime(t.deadline_ms)),
      h("dt", {}, "Next attempt"), h("dd", {}, terminal ? "—" : fmtUntil(t.next_attempt_at_ms)),
      h("dt", {}, "Attempts"), h("dd", {}, t.attempts),
      h("dt", {}, "Last error"), h("dd", { id: "detail-last-error" }, t.last_error ? h("span", { class: "err" }, t.last_error) : "—"))),
    h("h2", {}, "Branches"),
    h("table", { id: "branches" }, h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Name"), h("th", {}, "State"),
      h("th", { class: "num" }, "Attempts"), h("th", {}, "Last error"), h("th", {}, "Next retry"), h("th", {}, "Payload"),
      anyResolvable ? h("th", {}, "Resolve by hand") : null)),
    h("tbody", {}, (t.branches || []).map((b) => h("tr", { "data-branch": b.name },
      h("td", {}, b.idx), h("td", {}, b.name), h("td", {}, badge(b.state)),
      h("td", { class: "num" }, b.attempts),
      h("td", {}, b.last_error ? h("span", { class: "err" }, b.last_error) : "—"),
      h("td", {}, b.next_attempt_at_ms ? fmtUntil(b.next_attempt_at_ms) : "—"),
      h("td", {}, h("details", {}, h("summary", {}, "show"), h("pre", {}, JSON.stringify(b.spec, null, 2)))),
      anyResolvable ? h("td", {}, resolveOutcomeFor(t, b)
        ? h("button", { class: "resolve-btn", "data-outcome": resolveOutcomeFor(t, b),
            onclick: () => resolve(b.name, resolveOutcomeFor(t, b)) }, "✎ Mark " + resolveOutcomeFor(t, b).toLowerCase() + "…")
        : "") : null)))),
    h("h2", {}, "History"),
    h("ol", { class: "timeline", id: "history" }, (t.history || []).map((e) => h("li", {},
      h("time", {}, fmtTime(e.at_ms)), e.branch ? h("strong", {}, e.branch + " ") : "",
      h("span", { class: "etype" }, e.type + (e.count > 1 ? " ×" + e.count + " (" + fmtTime(e.first_at_ms) + " .. " + fmtTime(e.at_ms) + ")" : "") + ": "),
      h("span", {}, e.detail)))),
    h("h2", {}, "Submission (with payloads)"),
    h("pre", { id: "spec" }, JSON.stringify(spec, null, 2)));
}

// ---------- router ----------
async function refresh() {
  if (signedOut) return;
  const seq = ++renderSeq;
  const view = document.getElementById("view");
  const { path, params } = parseHash();
  for (const a of document.querySelectorAll("[data-nav]")) {
    const on = (a.dataset.nav === "overview" && path === "/") ||
      (a.dataset.nav === "transactions" && (path.startsWith("/transactions") || path.startsWith("/txn/")));
    a.classList.toggle("current", on);
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  try {
    if (path.startsWith("/txn/")) await renderDetail(view, decodeURIComponent(path.slice(5)), seq);
    else if (path.startsWith("/transactions")) await renderList(view, params, seq);
    else await renderOverview(view, seq);
    showError(null);
    markUpdated();
  } catch (e) {
    if (e instanceof NeedsSignIn) showSignIn();
    else if (seq === renderSeq) showError("Could not load: " + e.message);
  }
}

// ---------- sign-in ----------
function showSignIn(message) {
  signedOut = true;
  ++renderSeq;  // drop renders in flight
  showError(null);
  document.getElementById("view").replaceChildren();
  document.getElementById("who").hidden = true;
  document.getElementById("signin").hidden = false;
  const err = document.getElementById("signin-error");
  err.hidden = !message;
  err.textContent = message || "";
  document.getElementById("signin-token").focus();
}

// Shows who is signed in; with authentication off (method "none") nothing.
function showWho(me) {
  signedOut = false;
  document.getElementById("signin").hidden = true;
  const who = document.getElementById("who");
  who.hidden = me.method === "none";
  document.getElementById("who-name").textContent = "Signed in as " + me.name + " (" + me.roles.join(", ") + ")";
}

async function signIn(e) {
  e.preventDefault();
  const input = document.getElementById("signin-token");
  const r = await fetch("/v1/session", {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: input.value }),
  });
  let data = null;
  try { data = await r.json(); } catch (err) { /* not JSON */ }
  if (!r.ok) {
    showSignIn(r.status === 401 ? "That token is not valid."
      : data && data.error ? data.error.message : "Sign-in failed: HTTP " + r.status);
    return;
  }
  input.value = "";
  showWho(data);
  refresh();
}

async function signOut() {
  try { await api("DELETE", "/v1/session"); } catch (e) { /* signed out anyway */ }
  showSignIn();
}

// Who the page is signed in as; shows the sign-in form when nobody.
async function start() {
  const r = await fetch("/v1/session", { credentials: "same-origin" });
  if (r.status === 401) { showSignIn(); return; }
  if (r.ok) showWho(await r.json());
  refresh();
}

function schedule() {
  clearInterval(timer);
  timer = setInterval(() => {
    if (document.getElementById("live").checked && !document.getElementById("confirm").open) refresh();
  }, REFRESH_MS);
}

window.addEventListener("hashchange", () => { refresh(); schedule(); });
document.getElementById("live").addEventListener("change", refresh);
document.getElementById("signin-form").addEventListener("submit", signIn);
document.getElementById("sign-out").addEventListener("click", signOut);
start().catch((e) => showError("Could not load: " + e.message));
schedule();
