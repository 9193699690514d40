// Dashboard test in a real browser (run by run_dashboard_test.sh):
// starts treatyd on a fresh SQLite store and a scriptable participant (a
// small node HTTP server), creates a saga whose compensation keeps failing
// (stuck, needs attention), then in headless Chromium: sees it on the
// overview, filters the list (with its last error), opens it, sees only the
// buttons that apply (no force abort while compensating, a resolve button
// on the compensating step that will not go without a reason), fixes the
// participant, presses "Retry now", confirms, and sees it finish ABORTED.
// Then: a 2PC stuck COMMITTING offers resolve COMMITTED and no abort; an
// action refused by the server (abort of a 2PC committed meanwhile) shows
// the server's message; pause and resume (needs the engine's Pause).
// Access (docs/security.md): treatyd runs with --auth-tokens; the page
// first shows a sign-in form, a wrong token is refused, the right one gives
// an HttpOnly SameSite=Strict session cookie and the flow above runs on it
// under the dashboard's Content-Security-Policy (no violation allowed). Then
// a page of another origin (another port) tries a text/plain form POST to
// .../retry, a no-cors POST and a credentialed fetch PUT of the log level
// (nothing changes), and frames the dashboard (refused: X-Frame-Options
// DENY, frame-ancestors 'none'); a foreign Host header is refused (421);
// sign-out. Last, a treatyd without --auth-tokens serves the dashboard
// without sign-in, as before.
// Screenshots go to ARTIFACT_DIR. Exits non-zero on any failure.
//   usage: node dashboard.test.mjs TREATYD ARTIFACT_DIR CHROMIUM
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [treatydPath, artifactDir, chromiumPath] = process.argv.slice(2);
const started = Date.now();
let passed = 0;
const log = (...a) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);
function check(cond, what) {
  if (!cond) throw new Error("check failed: " + what);
  passed++;
  log("ok -", what);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- participant: /<branch>/<op>; "hotel" action is a business failure,
// "flight" compensation fails (500) until fixed.
let compensationBroken = true;
const participant = http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const [, branch, op] = req.url.split("/");
    let status = 200;
    if (branch === "hotel" && op === "action") status = 409;
    if (branch === "flight" && op === "compensate" && compensationBroken) status = 500;
    if (branch === "ledger" && op === "commit") status = 404;
    res.writeHead(status, { "Content-Type": "application/json" });
    res.end(status === 500 ? '{"error":"flight service: database is read-only"}' : "{}");
  });
});
await new Promise((r) => participant.listen(0, "127.0.0.1", r));
const pport = participant.address().port;
const purl = (branch, op) => `http://127.0.0.1:${pport}/${branch}/${op}`;

// ---- treatyd, with a tokens file (docs/security.md "Tokens file")
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "treaty-browser-"));
const TOKEN = crypto.randomBytes(24).toString("hex");
const sha256 = (s) => crypto.createHash("sha256").update(s).digest("hex");
fs.writeFileSync(path.join(dir, "tokens"), `ops-alice submit,read,operate,admin ${sha256(TOKEN)}\n`);
const children = [];
// Starts treatyd with `extra` arguments; resolves to its base URL.
async function startTreatyd(name, extra) {
  const child = spawn(treatydPath, [
    "--store", `sqlite:${dir}/${name}.db`, "--http", "127.0.0.1:0", "--thrift", "127.0.0.1:0",
    "--node-name", "browser-test", ...extra,
  ], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  child.stderr.pipe(fs.createWriteStream(path.join(artifactDir, name + ".log")));
  return new Promise((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => reject(new Error("treatyd did not start: " + out)), 20000);
    child.stdout.on("data", (c) => {
      out += c;
      const m = out.match(/listening on (http:\/\/[0-9.:]+)/);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    child.on("exit", (code) => reject(new Error("treatyd exited " + code + ": " + out)));
  });
}
const base = await startTreatyd("treatyd", [
  "--auth-tokens", path.join(dir, "tokens"),
  "--attention-after", "2", "--retry-max-backoff-ms", "600000",
]);
log("treatyd at", base);

async function api(method, p, body) {
  const r = await fetch(base + p, {
    method, body: body && JSON.stringify(body),
    headers: { "Content-Type": "application/json", "Authorization": "Bearer " + TOKEN },
  });
  return { status: r.status, body: await r.json() };
}

// ---- a page of another origin (another port of the same host): attacks.
const evilSite = http.createServer((req, res) => {
  const u = new URL(req.url, "http://x");
  const target = u.searchParams.get("target") || "";
  const pages = {
    // A form POST needs no CORS preflight: text/plain, submitted at once.
    "/csrf-form": `<form id="f" method="POST" enctype="text/plain" action="${target}">` +
      `<input name='{"reason":"csrf","x":"' value='"}'></form>` +
      `<script>document.getElementById("f").submit();</script>`,
    "/frame": `<p>framing</p><script>const f = document.createElement("iframe");` +
      `f.id = "victim"; f.width = 800; f.height = 600;` +
      `f.addEventListener("load", () => { window.frameLoaded = true; });` +
      `f.src = ${JSON.stringify(target)}; document.body.append(f);</script>`,
    "/blank": "<p>nothing here</p>",
  };
  res.writeHead(pages[u.pathname] ? 200 : 404, { "Content-Type": "text/html" });
  res.end(pages[u.pathname] || "");
});
await new Promise((r) => evilSite.listen(0, "127.0.0.1", r));
const evil = `http://127.0.0.1:${evilSite.address().port}`;

// GET `p` of `url` with raw `headers` (node:http lets Host and Cookie be set).
function rawGet(url, p, headers) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({ host: u.hostname, port: u.port, path: p, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
    req.end();
  });
}

let browser;
let exitCode = 0;
try {
  const step = (name) => ({
    name, action: purl(name, "action"), compensate: purl(name, "compensate"),
    payload: { item: name, price: 120 },
    retry: { max_attempts: 2, initial_backoff_ms: 50, max_backoff_ms: 100 },
  });
  for (let i = 0; i < 3; i++) {
    const ok = await api("POST", "/v1/sagas", { gtid: `trip-ok-${i}`, wait: true, steps: [step("flight"), step("car")] });
    check(ok.body.state === "COMMITTED", `trip-ok-${i} committed`);
  }
  const gtid = "trip-stuck-1";
  const sub = await api("POST", "/v1/sagas", { gtid, steps: [step("flight"), step("hotel")] });
  check(sub.status === 201, "stuck saga submitted");
  for (let i = 0; i < 100; i++) {
    const d = await api("GET", `/v1/transactions/${gtid}`);
    if (d.body.needs_attention) break;
    await sleep(100);
  }
  check((await api("GET", `/v1/transactions/${gtid}`)).body.needs_attention === true, "saga flagged needs_attention");

  browser = await chromium.launch({
    executablePath: chromiumPath, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
  const page = await context.newPage();
  const pageErrors = [];
  const cspViolations = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) cspViolations.push(m.text());
  });

  // Sign-in: the API answers 401, so the page asks for a token.
  const first = await page.goto(base + "/");
  await page.locator("#signin").waitFor({ state: "visible", timeout: 10000 });
  check(await page.locator("#view *").count() === 0, "signed out: the page shows the sign-in form and no data");
  check(first.headers()["x-frame-options"] === "DENY", "the dashboard answers X-Frame-Options: DENY");
  const csp = first.headers()["content-security-policy"] || "";
  check(csp.includes("frame-ancestors 'none'") && csp.includes("default-src 'self'"),
    "the dashboard answers a CSP with frame-ancestors 'none': " + csp);
  check(first.headers()["x-content-type-options"] === "nosniff", "the dashboard answers nosniff");
  await page.fill("#signin-token", "not-the-token");
  await page.click("#signin-submit");
  await page.locator("#signin-error").getByText("not valid").waitFor({ timeout: 5000 });
  check((await context.cookies()).length === 0, "a wrong token is refused and sets no cookie");
  await page.screenshot({ path: path.join(artifactDir, "signin.png") });
  await page.fill("#signin-token", TOKEN);
  await page.click("#signin-submit");
  await page.locator("#who-name").getByText("ops-alice").waitFor({ timeout: 10000 });
  check(await page.locator("#signin").isHidden(), "signed in: the form is gone, the name is shown");
  const session = (await context.cookies()).find((c) => c.name === "treaty_session");
  check(session && session.httpOnly === true, "the session cookie is HttpOnly");
  check(session && session.sameSite === "Strict", "the session cookie is SameSite=Strict");
  check(session && session.secure === false && session.path === "/", "no Secure flag on plain HTTP; Path=/");
  check(await page.evaluate(() => document.cookie) === "", "the page's script cannot read the cookie");

  // Overview: the stuck saga is in "Needs attention first", with a text label.
  const attentionRow = page.locator(`#attention tr[data-gtid="${gtid}"]`);
  await attentionRow.waitFor({ timeout: 15000 });
  check(await attentionRow.locator('[data-state="COMPENSATING"]').innerText() === "↺ COMPENSATING", "overview shows the state as text");
  check((await attentionRow.innerText()).includes("needs attention"), "overview flags it in words");
  check((await page.locator("#tile-attention .n").innerText()) === "1", "overview tile counts 1 needing attention");
  await page.locator("#cluster").getByText("browser-test").waitFor({ timeout: 5000 });
  check(true, "overview lists the coordinator");
  await page.screenshot({ path: path.join(artifactDir, "overview.png"), fullPage: true });

  // Transactions list: filter by needs_attention, then by gtid prefix.
  await page.goto(base + "/#/transactions");
  // The list renders a placeholder row until its first fetch answers: wait
  // for the real rows rather than counting whatever is there first.
  const allRows = await page
    .waitForFunction(() => document.querySelectorAll("table.txns tbody tr[data-gtid]").length === 4,
                     null, { timeout: 10000 })
    .then(() => true, () => false);
  check(allRows, "list shows all 4 transactions");
  await page.selectOption('select[name="needs_attention"]', "true");
  await page.click('#filters button[type="submit"]');
  await page.waitForFunction(() => document.querySelectorAll("table.txns tbody tr").length === 1);
  check(true, "needs_attention filter leaves 1 row");
  await page.fill('input[name="gtid_prefix"]', "trip-ok");
  await page.selectOption('select[name="needs_attention"]', "");
  await page.click('#filters button[type="submit"]');
  await page.waitForFunction(() => document.querySelectorAll("table.txns tbody tr").length === 3);
  check(true, "gtid prefix filter leaves 3 rows");
  await page.goto(base + "/#/transactions?needs_attention=true");
  const listRow = page.locator(`table.txns tr[data-gtid="${gtid}"]`);
  await listRow.waitFor({ timeout: 10000 });
  await listRow.locator("td.lasterr .err").waitFor({ timeout: 10000 });
  check((await listRow.locator("td.lasterr").innerText()).includes("500"), "list shows the last error");
  await page.goto(base + "/#/transactions?limit=50&needs_attention=true");
  await page.screenshot({ path: path.join(artifactDir, "list.png"), fullPage: true });

  // Detail: open it from the list.
  await page.click(`a[href="#/txn/${gtid}"]`);
  await page.locator("#detail-gtid").waitFor();
  check(await page.locator("#detail-gtid").innerText() === gtid, "detail opened");
  const flight = page.locator('#branches tr[data-branch="flight"]');
  check((await flight.innerText()).includes("COMPENSATING"), "flight branch is compensating");
  check((await flight.innerText()).includes("500"), "flight branch shows its last error");
  check((await page.locator('#branches tr[data-branch="hotel"]').innerText()).includes("COMPENSATED"), "hotel branch (the failed step) is compensated");
  check(await page.locator("#history li").count() >= 4, "history timeline is shown");
  check((await page.locator("#spec").innerText()).includes('"price": 120'), "payloads are shown");
  await page.screenshot({ path: path.join(artifactDir, "detail-stuck.png"), fullPage: true });

  // Only the buttons that apply to a COMPENSATING saga.
  check(await page.locator("#retry-btn").count() === 1, "compensating saga: retry offered");
  check(await page.locator("#abort-btn").count() === 0, "compensating saga: no force abort (already compensating)");
  check(await page.locator("#pause-btn").count() === 1, "compensating saga: pause offered");
  check(await page.locator("#resume-btn").count() === 0, "not paused: no resume");
  check(await flight.locator(".resolve-btn").count() === 1, "compensating step: resolve offered");
  check(await flight.locator('.resolve-btn[data-outcome="COMPENSATED"]').count() === 1, "resolve records COMPENSATED");
  check(await page.locator('#branches tr[data-branch="hotel"] .resolve-btn').count() === 0, "compensated step: no resolve");
  // Resolve asks for a reason and will not go without one.
  await flight.locator(".resolve-btn").click();
  await page.locator("#confirm[open]").waitFor();
  check((await page.locator("#reason-need").innerText()).includes("required"), "resolve asks for a reason");
  await page.click("#confirm-ok");
  check(await page.locator("#confirm[open]").count() === 1, "resolve without a reason does not close the dialog");
  check(!(await page.locator("#reason-error").isHidden()), "resolve without a reason says a reason is required");
  await page.screenshot({ path: path.join(artifactDir, "resolve-reason.png") });
  await page.click("#confirm-cancel");
  check((await page.locator("#action-status").innerText()) === "", "cancelled resolve does nothing");

  // Cancel first: nothing happens.
  await page.click("#retry-btn");
  await page.locator("#confirm[open]").waitFor();
  await page.click("#confirm-cancel");
  check((await page.locator("#action-status").innerText()) === "", "cancel does nothing");

  // Let the backoff grow so that only "Retry now" can finish it in time.
  let nextAt = 0;
  for (let i = 0; i < 400 && nextAt - Date.now() < 8000; i++) {
    const d = await api("GET", `/v1/transactions/${gtid}`);
    nextAt = d.body.branches.find((b) => b.name === "flight").next_attempt_at_ms;
    await sleep(100);
  }
  check(nextAt - Date.now() >= 8000, "next automatic retry is at least 8 s away");
  await page.locator('#branches tr[data-branch="flight"]').getByText(/in \d+ s/).waitFor({ timeout: 5000 });
  check(true, "detail shows the next retry time");

  // Fix the participant, retry now, confirm, watch it finish.
  compensationBroken = false;
  await page.click("#retry-btn");
  await page.locator("#confirm[open]").waitFor();
  await page.screenshot({ path: path.join(artifactDir, "confirm.png") });
  await page.click("#confirm-ok");
  await page.locator('#detail-state [data-state="ABORTED"]').waitFor({ timeout: 7000 });
  check(Date.now() < nextAt, "saga finished ABORTED after Retry now, before its scheduled retry");
  check(await page.locator("#retry-btn, #abort-btn, #pause-btn, #resume-btn, .resolve-btn").count() === 0,
    "no action offered once terminal");
  check((await flight.innerText()).includes("COMPENSATED"), "flight branch compensated");
  await page.screenshot({ path: path.join(artifactDir, "detail-finished.png"), fullPage: true });

  // A 2PC stuck COMMITTING (its commit URL answers 404): resolve COMMITTED, no abort.
  const branch2pc = (name) => ({ name, prepare: purl(name, "prepare"), commit: purl(name, "commit"), abort: purl(name, "abort") });
  check((await api("POST", "/v1/2pc", { gtid: "pay-stuck-1" })).status === 201, "2PC begun");
  check((await api("POST", "/v1/2pc/pay-stuck-1/branches", branch2pc("ledger"))).status === 201, "2PC branch enlisted");
  check((await api("POST", "/v1/2pc/pay-stuck-1/commit", {})).body.state === "COMMITTING", "2PC decided COMMITTING");
  await page.goto(base + "/#/txn/pay-stuck-1");
  const ledger = page.locator('#branches tr[data-branch="ledger"]');
  await ledger.locator('.resolve-btn[data-outcome="COMMITTED"]').waitFor({ timeout: 10000 });
  check(true, "committing 2PC branch: resolve COMMITTED offered");
  check(await page.locator("#abort-btn").count() === 0, "committing 2PC: no force abort (decision durable)");
  check(await page.locator("#retry-btn").count() === 1, "committing 2PC: retry offered");
  await page.screenshot({ path: path.join(artifactDir, "detail-committing.png"), fullPage: true });

  // A refused action shows the server's message: the page still offers abort
  // of an ACTIVE 2PC that was committed meanwhile (live refresh off).
  check((await api("POST", "/v1/2pc", { gtid: "pay-race-1" })).status === 201, "second 2PC begun");
  // Live refresh off first: unchecking refreshes once, and that refresh must
  // not land after the commit below (it would show COMMITTED, no abort).
  // The page shown then (pay-stuck-1) offers no abort, so the button waited
  // for is pay-race-1's.
  await page.uncheck("#live");
  await page.goto(base + "/#/txn/pay-race-1");
  await page.locator("#abort-btn").waitFor({ timeout: 10000 });
  check(true, "active 2PC: force abort offered");
  check((await api("POST", "/v1/2pc/pay-race-1/commit", {})).body.state === "COMMITTED", "committed behind the page's back");
  await page.click("#abort-btn");
  await page.locator("#confirm[open]").waitFor();
  await page.fill("#reason-text", "customer cancelled");
  await page.click("#confirm-ok");
  await page.locator("#action-status").getByText(/✖ conflict: .*COMMITTED/).waitFor({ timeout: 10000 });
  check(true, "refused abort shows the server's message: " + await page.locator("#action-status").innerText());
  await page.screenshot({ path: path.join(artifactDir, "refused.png"), fullPage: true });
  await page.check("#live");

  // Pause and resume (with a reason) on the stuck 2PC.
  await page.goto(base + "/#/txn/pay-stuck-1");
  await page.locator("#pause-btn").waitFor({ timeout: 10000 });
  await page.click("#pause-btn");
  await page.locator("#confirm[open]").waitFor();
  await page.fill("#reason-text", "ledger maintenance");
  await page.click("#confirm-ok");
  await page.locator("#resume-btn").waitFor({ timeout: 10000 });
  check(await page.locator('[data-paused="true"]').count() >= 1, "paused transaction shows the paused flag");
  check(await page.locator("#pause-btn").count() === 0, "paused: no pause button");
  await page.click("#resume-btn");
  await page.locator("#confirm[open]").waitFor();
  await page.click("#confirm-ok");
  await page.locator("#pause-btn").waitFor({ timeout: 10000 });
  check(true, "resumed: pause offered again");
  check(pageErrors.length === 0, "no JavaScript errors on the page: " + pageErrors.join("; "));
  check(cspViolations.length === 0, "no Content-Security-Policy violation: " + cspViolations.join("; "));

  // ---- attacks from another origin, with the session cookie in the browser.
  const operatorEvents = async (g) =>
    (await api("GET", `/v1/transactions/${g}`)).body.history.filter((e) => e.type === "operator").length;
  const eventsBefore = await operatorEvents("pay-stuck-1");
  const levelBefore = (await api("GET", "/v1/admin/log-level")).body.level;
  const attacker = await context.newPage();
  const retryUrl = base + "/v1/transactions/pay-stuck-1/retry";
  const [formAnswer] = await Promise.all([
    attacker.waitForResponse((r) => r.url() === retryUrl, { timeout: 10000 }),
    attacker.goto(evil + "/csrf-form?target=" + encodeURIComponent(retryUrl)),
  ]);
  check(formAnswer.status() === 403,
    "cross-origin text/plain form POST to .../retry is refused: " + formAnswer.status() + " " + await formAnswer.text());
  await attacker.goto(evil + "/blank");
  const fetched = await attacker.evaluate(async ([logLevelUrl, retry]) => {
    const out = {};
    try {
      const r = await fetch(logLevelUrl, {
        method: "PUT", credentials: "include",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify({ level: "off" }),
      });
      out.put = "answered " + r.status;
    } catch (e) { out.put = "blocked"; }
    try {
      await fetch(retry, { method: "POST", mode: "no-cors", credentials: "include", body: "{}" });
      out.post = "sent";
    } catch (e) { out.post = "blocked"; }
    return out;
  }, [base + "/v1/admin/log-level", retryUrl]);
  check(fetched.put === "blocked", "cross-origin fetch PUT of the log level fails (no CORS grant): " + fetched.put);
  check((await api("GET", "/v1/admin/log-level")).body.level === levelBefore, "the log level is unchanged");
  check(await operatorEvents("pay-stuck-1") === eventsBefore,
    "the transaction was not retried (no operator event; no-cors POST " + fetched.post + ")");

  // Framing: the browser refuses to render the dashboard inside another origin's page.
  const [framed] = await Promise.all([
    attacker.waitForResponse((r) => r.url() === base + "/", { timeout: 10000 }),
    attacker.goto(evil + "/frame?target=" + encodeURIComponent(base + "/")),
  ]);
  check(framed.headers()["x-frame-options"] === "DENY" &&
    (framed.headers()["content-security-policy"] || "").includes("frame-ancestors 'none'"),
    "the framed request got X-Frame-Options DENY and frame-ancestors 'none'");
  await attacker.waitForFunction(() => window.frameLoaded === true, null, { timeout: 10000 });
  const child = attacker.frames().find((f) => f !== attacker.mainFrame());
  const rendered = child
    ? await child.evaluate(() => document.querySelector(".brand, #view") !== null).catch(() => false)
    : false;
  check(!rendered, "the dashboard is not rendered inside the other origin's frame (frame at " +
    (child ? child.url() : "none") + ")");
  await attacker.screenshot({ path: path.join(artifactDir, "framed.png") });
  await attacker.close();

  // DNS rebinding: a Host header that is not this coordinator's is refused.
  check(await rawGet(base, "/", { Host: "evil.example" }) === 421, "Host: evil.example is refused (421)");
  check(await rawGet(base, "/", { Host: new URL(base).host }) === 200, "Host: 127.0.0.1:port is served");

  // Sign-out ends the session.
  await page.click("#sign-out");
  await page.locator("#signin").waitFor({ state: "visible", timeout: 10000 });
  check(!(await context.cookies()).some((c) => c.name === "treaty_session" && c.value !== ""),
    "sign-out clears the session cookie");
  check(await page.evaluate(async () => (await fetch("/v1/stats")).status) === 401, "signed out: the API answers 401");
  check(await rawGet(base, "/v1/stats", { Cookie: "treaty_session=" + session.value }) === 401,
    "the old session id no longer works");

  // Without --auth-tokens the dashboard works as before: no sign-in.
  const openBase = await startTreatyd("treatyd-open", []);
  const open = await context.newPage();
  await open.goto(openBase + "/");
  await open.locator("#cluster").getByText("browser-test").waitFor({ timeout: 10000 });
  check(await open.locator("#signin").isHidden() && await open.locator("#who").isHidden(),
    "authentication off: the overview shows at once, without sign-in");
  await open.close();
} catch (e) {
  exitCode = 1;
  console.error("FAILED:", e.stack || e);
  if (browser) {
    for (const ctx of browser.contexts()) {
      for (const p of ctx.pages()) await p.screenshot({ path: path.join(artifactDir, "failure.png"), fullPage: true }).catch(() => {});
    }
  }
} finally {
  if (browser) await browser.close();
  for (const child of children) {
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null ? r() : child.on("exit", r)));
  }
  participant.close();
  evilSite.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(`screenshots in ${artifactDir}`);
console.log(`dashboard: ${passed} passed, ${exitCode} failed`);
process.exit(exitCode);
