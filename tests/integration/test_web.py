"""The web page in a real headless Chromium (Debian's, driven by Playwright from
npm) against a real broker and agent: sign in with a password; run a partial
sync and watch it end with a green check; see a failed run's red cross and
open its log; Sync All with a greyed-out entity and its reason; filter the
documents by status; make an enrollment code; the page at phone width; a
user without sync rights sees no Sync button and gets 403 from the API.
Every control has an accessible name; the page loads nothing from outside
the broker. Screenshots of each page go to the test's directory and to
build/screenshots/.

Also: the OpenAPI file the broker serves describes every route of
broker/http.c's table.

Needs `packaging/deps.sh chromium` and npm's registry once (playwright-core is
installed into build/web-test/); skips, saying why, without them."""
import json
import os
import shutil
import sqlite3
import subprocess
import unittest

import test_engine
from harness import BUILD, Case, run, wait_for
from test_tenancy import PASSWORD, make_user, request, routes

CHROMIUM = "/usr/bin/chromium"
NODE_DIR = os.path.join(BUILD, "web-test")
SHOTS = os.path.join(BUILD, "screenshots")

INVOICE = {"type": "invoice", "vendor": "V0000002", "number": "INV-WEB-1", "date": "2024-05-01",
           "lines": [{"gl_account": "1010-00", "description": "Paper", "quantity": "2",
                      "unit_price": "10.00", "tax_code": "CA-LA", "division": "00"}],
           "total": "21.90"}


def playwright():
    """The playwright-core package directory, installed on first use; or why not."""
    if not os.access(CHROMIUM, os.X_OK):
        return None, "no %s: run packaging/deps.sh chromium" % CHROMIUM
    if not shutil.which("node") or not shutil.which("npm"):
        return None, "no node/npm: run packaging/deps.sh chromium"
    pkg = os.path.join(NODE_DIR, "node_modules", "playwright-core")
    if not os.path.isdir(pkg):
        os.makedirs(NODE_DIR, exist_ok=True)
        try:
            p = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                                "--prefix", NODE_DIR, "playwright-core@1"],
                               capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            return None, "npm install playwright-core timed out (registry unreachable?)"
        if p.returncode != 0 or not os.path.isdir(pkg):
            return None, "npm could not install playwright-core (offline?): " + \
                (p.stderr.strip().splitlines() or ["?"])[-1]
    return pkg, None


DRIVER = r"""
const { chromium } = require(process.env.PW);
const cfg = JSON.parse(process.env.CFG);
const out = { steps: [], a11y: [], external: [] };
const shot = async (page, name) => {
  const path = cfg.shots + "/" + name + ".png";
  await page.screenshot({ path, fullPage: true });
  out.steps.push("screenshot " + name);
};
const step = s => { out.steps.push(s); console.log("step: " + s); };
function check(cond, what) { if (!cond) throw new Error("check failed: " + what); }

// Controls without an accessible name, in the visible page.
const unnamed = () => [...document.querySelectorAll("button, input, select, a[href], textarea")]
  .filter(e => e.offsetParent !== null)
  .filter(e => !((e.getAttribute("aria-label") || "").trim() || (e.labels && e.labels.length) ||
    (e.textContent || "").trim() || e.getAttribute("title") || e.getAttribute("aria-labelledby")))
  .map(e => e.outerHTML.slice(0, 120));

async function signIn(browser, email, width, height) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true,
    viewport: { width: width || 1280, height: height || 900 } });
  const page = await ctx.newPage();
  page.on("request", r => { if (!r.url().startsWith(cfg.url)) out.external.push(r.url()); });
  page.on("pageerror", e => out.steps.push("PAGE ERROR " + e.message));
  await page.goto(cfg.url + "/");
  await page.getByRole("textbox", { name: "Company (tenant)" }).fill(cfg.tenant);
  await page.getByRole("textbox", { name: "E-mail" }).fill(email);
  await page.locator("#signin-form").getByLabel("Password").fill(cfg.password);
  return { ctx, page };
}

(async () => {
  const browser = await chromium.launch({ executablePath: cfg.chromium,
    args: ["--no-sandbox", "--disable-dev-shm-usage"] });
  try {
    // ---- sign in ----
    let { ctx, page } = await signIn(browser, cfg.admin);
    await shot(page, "01-sign-in");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "SmartSync" }).waitFor();
    step("signed in");
    const cookies = await ctx.cookies();
    const c = cookies.find(x => x.name === "apsync_session");
    check(c && c.httpOnly && c.secure && c.sameSite === "Strict", "session cookie flags");
    check(await page.evaluate(() => document.cookie.indexOf("apsync_session") < 0),
      "the cookie is out of the page's reach");

    // ---- the entity's defaults ----
    const entity = page.getByLabel("Legal Entity");
    await entity.selectOption({ label: cfg.blue_label });
    await page.waitForTimeout(300);
    check((await page.locator("#synctool-one").textContent()).includes("ACME-SYNC"),
      "SyncTool name filled in");
    check(await page.getByLabel("Partial Sync").isChecked(), "partial by default");
    const since = await page.getByLabel("Sync From").inputValue();
    check(since === cfg.last_success_date, "Sync From defaults to the last success: " + since);
    check(await page.locator("#po-row").isVisible(), "PO & Receivings toggle shown");
    check(await page.getByLabel("PO & Receivings from").inputValue() !== "", "PO date set");

    // ---- a partial sync, watched to its green check ----
    const before = await page.locator("#activities tr[data-sync]").first().getAttribute("data-sync");
    await page.getByRole("button", { name: "Sync", exact: true }).first().click();
    await page.locator("#sync-msg").filter({ hasText: "requested" }).waitFor();
    const msg = await page.locator("#sync-msg").textContent();
    const id = msg.match(/Sync (\d+)/)[1];
    check(Number(id) > Number(before), "a new sync");
    step("sync " + id + " requested");
    const row = page.locator(`#activities tr[data-sync="${id}"]`);
    await row.waitFor();
    await page.locator(`#activities tr[data-sync="${id}"][data-status="success"]`)
      .waitFor({ timeout: 60000 });
    check(await row.getByRole("img", { name: "Succeeded" }).isVisible(), "green check shown");
    step("sync " + id + " ended with a green check");
    out.a11y.push(...(await page.evaluate(unnamed)).map(x => "smartsync: " + x));
    await shot(page, "02-smartsync");

    // ---- a failed run: red cross, its log ----
    const failed = page.locator(`#activities tr[data-sync="${cfg.failed_sync}"]`);
    check(await failed.getByRole("img", { name: "Failed" }).isVisible(), "red cross shown");
    const partial = page.locator(`#activities tr[data-sync="${cfg.partial_sync}"]`);
    check(await partial.getByRole("img", { name: "Succeeded, some sections failed" }).isVisible(),
      "yellow exclamation shown");
    await failed.getByRole("button", { name: /^Log of sync/ }).click();
    const dlg = page.getByRole("dialog");
    await dlg.waitFor();
    await page.locator("#log-text").filter({ hasText: "vendors" }).waitFor();
    check((await page.locator("#log-text").textContent()).includes("ERROR"), "log shows errors");
    await shot(page, "03-failed-run-log");
    await page.getByRole("button", { name: "Close the log" }).click();
    step("failed run's log opened");

    // ---- the export run: some documents did not go in, named in its log ----
    const exp = page.locator(`#activities tr[data-export="${cfg.export_run}"]`);
    check(await exp.getByRole("img", { name: "Succeeded, some sections failed" }).isVisible(),
      "the export run's yellow exclamation");
    await exp.getByRole("button", { name: /^Log of export/ }).click();
    await page.locator("#log-text").filter({ hasText: "INV-WEB-2" }).waitFor();
    const elog = await page.locator("#log-text").textContent();
    check(elog.includes("total_mismatch") && elog.includes("INV-WEB-3"),
      "the export log names the failed and the held invoice");
    await shot(page, "03b-export-run-log");
    await page.getByRole("button", { name: "Close the log" }).click();
    step("export run's log opened");

    // ---- Sync All with a greyed-out entity ----
    const harbor = page.getByLabel(cfg.harbor_label);
    check(await harbor.isDisabled(), "HARBOR greyed out");
    const why = await page.locator(`#all-${cfg.harbor_id}-why`).textContent();
    check(why.includes("never synced"), "the reason shown: " + why);
    check(await page.getByLabel(cfg.blue_label, { exact: true }).last().isChecked(),
      "BLUE checked");
    await page.locator("#all-button").click();
    await page.locator("#all-msg").filter({ hasText: "requested" }).waitFor();
    check((await page.locator("#all-msg").textContent()).startsWith("1 sync"), "one sync");
    step("Sync All: " + await page.locator("#all-msg").textContent());
    // the lists panel
    await page.locator('#lists tr[data-list="vendors"]').waitFor();
    check(await page.locator("#lists tr").count() >= 9, "every list of the entity");
    check(await page.getByRole("button", { name: "Sync Units of Measure now" }).isVisible(), "Sync now");
    await page.locator('#activities tr[data-status="success"]').first().waitFor();
    await page.waitForFunction(() => !document.querySelector(
      '#activities tr[data-status="queued"], #activities tr[data-status="running"], ' +
      '#activities tr[data-status="dispatched"]'), null, { timeout: 60000 });
    await shot(page, "04-smartsync-after-sync-all");

    // ---- documents, filtered by status ----
    await page.getByRole("link", { name: "Documents" }).click();
    await page.getByRole("heading", { name: "Documents" }).waitFor();
    await page.locator("#documents tr").first().waitFor();
    const all = await page.locator("#documents tr").count();
    await shot(page, "05-documents");
    await page.getByLabel("Sync status", { exact: true }).selectOption("failed");
    await page.waitForFunction(() => [...document.querySelectorAll("#documents tr")]
      .every(r => r.dataset.status === "failed") && document.querySelectorAll("#documents tr").length);
    const failedDocs = await page.locator("#documents tr").count();
    check(failedDocs === 1 && all > failedDocs, `filter: ${failedDocs} of ${all}`);
    const badge = page.locator("#documents tr .badge").first();
    check(((await badge.getAttribute("title")) || "").includes("total_mismatch"),
      "the reason on hover");
    check(await page.getByRole("button", { name: /^Retry invoice/ }).isVisible(), "Retry");
    await shot(page, "06-documents-failed");
    await page.getByLabel("Sync status", { exact: true }).selectOption("on_hold");
    await page.waitForFunction(() => [...document.querySelectorAll("#documents tr")]
      .every(r => r.dataset.status === "on_hold") && document.querySelectorAll("#documents tr").length);
    out.a11y.push(...(await page.evaluate(unnamed)).map(x => "documents: " + x));
    step("documents filtered");

    // ---- SyncTools: online, an enrollment code ----
    await page.getByRole("link", { name: "SyncTools" }).click();
    await page.locator('#tools tr[data-tool="ACME-SYNC"]').waitFor();
    check((await page.locator('#tools tr[data-tool="ACME-SYNC"]').textContent()).includes("Online"),
      "SyncTool online");
    await page.getByRole("textbox", { name: "SyncTool name" }).fill("ACME-BACKUP");
    await page.getByRole("button", { name: "Make an enrollment code" }).click();
    await page.locator("#code-out code").waitFor();
    const code = await page.locator("#code-out code").textContent();
    check(/^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/.test(code), "an enrollment code: " + code);
    out.code = code;
    out.a11y.push(...(await page.evaluate(unnamed)).map(x => "synctools: " + x));
    await shot(page, "07-synctools");
    await page.getByRole("link", { name: "Users" }).click();
    await page.locator("#users tr").first().waitFor();
    await shot(page, "08-users");
    await ctx.close();

    // ---- phone width ----
    ({ ctx, page } = await signIn(browser, cfg.admin, 390, 844));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#activities tr[data-sync]").first().waitFor();
    const overflow = await page.evaluate(() =>
      document.documentElement.scrollWidth - document.documentElement.clientWidth);
    const wide = await page.evaluate(() => [...document.querySelectorAll("body *")]
      .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
      .filter(e => !e.parentElement.closest(".scroll"))
      .slice(0, 8).map(e => e.tagName + "#" + e.id + "." + e.className + " " +
        Math.round(e.getBoundingClientRect().right)));
    check(overflow <= 1, "no sideways scrolling at phone width: " + overflow + " " + wide);
    await shot(page, "09-phone");
    await ctx.close();

    // ---- a viewer: no Sync button; the API says 403 ----
    ({ ctx, page } = await signIn(browser, cfg.viewer));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "SmartSync" }).waitFor();
    await page.locator("#activities tr[data-sync]").first().waitFor();
    check(!(await page.locator("#sync-button").isVisible()), "no Sync button for a viewer");
    check(!(await page.locator("#all-button").isVisible()), "no Sync All button for a viewer");
    check(await page.getByRole("button", { name: /Sync .* now/ }).count() === 0, "no Sync now");
    const status = await page.evaluate(async (entity) => {
      const me = await (await fetch("/api/v1/me")).json();
      const r = await fetch("/api/v1/syncs", { method: "POST", headers: {
        "Content-Type": "application/json", "X-CSRF-Token": me.csrf_token },
        body: JSON.stringify({ entity, mode: "partial" }) });
      return r.status;
    }, cfg.blue_id);
    check(status === 403, "the API refuses the viewer: " + status);
    await shot(page, "10-viewer");
    step("viewer: no Sync button, 403");
    // signing out returns to the form
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await ctx.close();
    out.ok = true;
  } catch (e) {
    out.ok = false;
    out.error = String(e.stack || e);
  } finally {
    await browser.close();
    require("fs").writeFileSync(cfg.result, JSON.stringify(out, null, 1));
  }
})();
"""


class WebPage(Case):
    def setUp(self):
        super().setUp()
        self.pw, why = playwright()
        if not self.pw:
            self.skipTest(why)

    def erp_db(self):
        return sqlite3.connect(self.erp, timeout=10)

    def run_sync(self, **kw):
        return self.wait_job(self.sync(self.blue["id"], **kw)["id"], 60)

    def export(self, docs, key):
        s, j = self.broker.api("POST", "/api/v1/entities/%d/exports" % self.blue["id"],
                               self.token, {"documents": docs},
                               headers={"Idempotency-Key": key})
        self.assertEqual(s, 201, j)
        self.export_run = j.get("run")
        return [d["id"] for d in j["documents"]]

    def test_the_page_in_chromium(self):
        self.world(rows=2000, agent_extra=test_engine.FAST,
                   broker_extra=["--export-retry", "600"])
        b = self.broker
        make_user(b, "acme", "admin@acme.test", "system_administrator")
        make_user(b, "acme", "viewer@acme.test", "viewer")
        self.blue = self.entity("BLUE")
        harbor = self.entity("HARBOR")
        first = self.run_sync()
        self.assertEqual(first["status"], "success")
        # a failed run (its one list cannot be read) and a partial one
        db = self.erp_db()
        db.execute("ALTER TABLE vendors RENAME TO vendors_away")
        db.commit()
        failed = self.run_sync(mode="partial", lists=["vendors"])
        self.assertEqual(failed["status"], "failed")
        partial = self.run_sync(mode="partial", lists=["vendors", "units"])
        self.assertEqual(partial["status"], "partial")
        db.execute("ALTER TABLE vendors_away RENAME TO vendors")
        db.commit()
        db.close()
        # documents in several states
        ok, bad, held = self.export([INVOICE, dict(INVOICE, number="INV-WEB-2", total="99.99"),
                                     dict(INVOICE, number="INV-WEB-3", vendor="VNEW0001")],
                                    "web-1")
        for d, want in ((ok, "success"), (bad, "failed"), (held, "on_hold")):
            wait_for(lambda: b.api("GET", "/api/v1/documents/%d" % d, self.token)[1][
                "status"] == want, 30, what="document %d %s" % (d, want))
        s, e = b.api("GET", "/api/v1/entities/%d" % self.blue["id"], self.token)
        last = e["last_success"]["started_at"][:10]

        shots = os.path.join(self.tmp, "screenshots")
        os.makedirs(shots)
        result = os.path.join(self.tmp, "web-result.json")
        driver = os.path.join(self.tmp, "driver.js")
        with open(driver, "w") as f:
            f.write(DRIVER)
        cfg = {"url": "https://127.0.0.1:%d" % b.port, "chromium": CHROMIUM, "shots": shots,
               "result": result, "tenant": "acme", "password": PASSWORD,
               "admin": "admin@acme.test", "viewer": "viewer@acme.test",
               "export_run": self.export_run,
               "blue_id": self.blue["id"], "harbor_id": harbor["id"],
               "blue_label": "%s (%s)" % (self.blue["name"], self.blue["code"]),
               "harbor_label": "%s (%s)" % (harbor["name"], harbor["code"]),
               "last_success_date": last, "failed_sync": failed["id"],
               "partial_sync": partial["id"]}
        env = dict(os.environ, PW=self.pw, CFG=json.dumps(cfg))
        p = subprocess.run(["node", driver], capture_output=True, text=True, timeout=300,
                           env=env, cwd=self.tmp)
        out = json.load(open(result)) if os.path.exists(result) else {}
        os.makedirs(SHOTS, exist_ok=True)
        for name in sorted(os.listdir(shots)):
            shutil.copyfile(os.path.join(shots, name), os.path.join(SHOTS, name))
        self.assertTrue(out.get("ok"), "%s\n%s\n%s" % (out.get("error"), p.stdout[-3000:],
                                                        p.stderr[-3000:]))
        self.assertEqual(out["a11y"], [], "controls without an accessible name")
        self.assertEqual(out["external"], [], "the page loaded something from elsewhere")
        self.assertFalse([s for s in out["steps"] if s.startswith("PAGE ERROR")], out["steps"])
        self.assertEqual(len([n for n in os.listdir(shots) if n.endswith(".png")]), 11)
        # the code the page made enrolls a SyncTool
        from harness import Agent
        Agent(self, b, "backup").enroll(out["code"])


class OpenApi(Case):
    def test_every_route_is_described(self):
        from harness import Broker
        self.broker = Broker(self).start()
        s, doc, _ = request(self.broker, "GET", "/api/v1/openapi.json")
        self.assertEqual(s, 200)
        self.assertTrue(doc["openapi"].startswith("3."))
        described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops
                     if m in ("get", "post", "put", "patch", "delete")}
        for method, pattern, auth in routes():
            path = pattern
            parts = path.split("/")
            for i, seg in enumerate(parts):
                if seg in ("#", "*"):
                    parts[i] = "{%s}" % {"entities": "entity", "syncs": "sync",
                                         "documents": "document", "rules": "rule", "exports": "run",
                                         "users": "user", "lists": "list",
                                         "synctools": "synctool"}[parts[i - 1]]
            path = "/".join(parts)[len("/api/v1"):]
            self.assertIn((method, path), described, "%s %s is not in openapi.json" % (
                method, pattern))
            op = doc["paths"][path][method.lower()]
            self.assertTrue(op.get("summary"), path)
            if not auth:
                self.assertEqual(op.get("security"), [], "%s %s needs no credential" % (
                    method, pattern))
        self.assertEqual(len(described), len(routes()), "openapi.json has routes http.c lacks")


if __name__ == "__main__":
    unittest.main()


class SecurityHeaders(Case):
    def test_the_page_runs_only_its_own_files_in_no_frame(self):
        from harness import Broker
        self.broker = Broker(self).start()
        for path in ("/", "/app.js", "/api/v1/health"):
            s, _, headers = request(self.broker, "GET", path)
            self.assertEqual(s, 200, path)
            h = {k.lower(): v for k, v in headers}
            csp = h.get("content-security-policy", "")
            for part in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'",
                         "object-src 'none'"):
                self.assertIn(part, csp, path)
            self.assertEqual(h.get("x-content-type-options"), "nosniff")
            self.assertEqual(h.get("x-frame-options"), "DENY")
            self.assertEqual(h.get("referrer-policy"), "no-referrer")
            self.assertIn("max-age=", h.get("strict-transport-security", ""))
