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
// Screenshots go to ARTIFACT_DIR. Exits non-zero on any failure.
//   usage: node dashboard.test.mjs TREATYD ARTIFACT_DIR CHROMIUM
import { spawn } from "node:child_process";
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

// ---- treatyd
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "treaty-browser-"));
const treatyd = spawn(treatydPath, [
  "--store", `sqlite:${dir}/treaty.db`, "--http", "127.0.0.1:0", "--thrift", "127.0.0.1:0",
  "--node-name", "browser-test",
  "--attention-after", "2", "--retry-max-backoff-ms", "600000",
], { stdio: ["ignore", "pipe", "pipe"] });
const treatydLog = fs.createWriteStream(path.join(artifactDir, "treatyd.log"));
treatyd.stderr.pipe(treatydLog);
const base = await new Promise((resolve, reject) => {
  let out = "";
  const t = setTimeout(() => reject(new Error("treatyd did not start: " + out)), 20000);
  treatyd.stdout.on("data", (c) => {
    out += c;
    const m = out.match(/listening on (http:\/\/[0-9.:]+)/);
    if (m) { clearTimeout(t); resolve(m[1]); }
  });
  treatyd.on("exit", (code) => reject(new Error("treatyd exited " + code + ": " + out)));
});
log("treatyd at", base);

async function api(method, p, body) {
  const r = await fetch(base + p, {
    method, body: body && JSON.stringify(body), headers: { "Content-Type": "application/json" },
  });
  return { status: r.status, body: await r.json() };
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
  const page = await browser.newPage({ viewport: { width: 1366, height: 800 } });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  // Overview: the stuck saga is in "Needs attention first", with a text label.
  await page.goto(base + "/");
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
  await page.goto(base + "/#/txn/pay-race-1");
  await page.locator("#abort-btn").waitFor({ timeout: 10000 });
  check(true, "active 2PC: force abort offered");
  await page.uncheck("#live");
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
  treatyd.kill("SIGTERM");
  await new Promise((r) => (treatyd.exitCode !== null ? r() : treatyd.on("exit", r)));
  participant.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(`screenshots in ${artifactDir}`);
console.log(`dashboard: ${passed} passed, ${exitCode} failed`);
process.exit(exitCode);
