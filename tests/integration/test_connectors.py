"""ERP connectors: the profile-driven SQL connector (sqlmap) reads through a
mapping profile exactly what a hand-written connector reads, directly from a
SQLite file and through unixODBC, and the sync engine's guarantees hold on it;
bad profiles and unreachable data sources get clear errors."""
import json
import os
import subprocess

import test_engine
from harness import AGENT, ROOT, Case, demo_erp, run

LISTS = ["bank_accounts", "divisions", "gl_accounts", "items", "separate_checks", "tax_codes",
         "units", "vendors", "warehouses", "purchase_orders", "receivings"]


def odbc_ready():
    run(["sh", os.path.join(ROOT, "packaging", "deps.sh"), "odbc"], timeout=600)


def erp_cli(*args, check=True):
    p = subprocess.run([AGENT, "erp"] + list(args), capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("apsync-agent erp %s: %s" % (" ".join(args), p.stderr))
    return p


def odbc_spec(path):
    return "odbc:demo:Driver=SQLite3;Database=" + path


class ProfileEngine(Case):
    @classmethod
    def setUpClass(cls):
        odbc_ready()

    def test_profile_reads_what_the_demo_connector_reads(self):
        erp = demo_erp(self, 1500)
        for spec in ("sqlite:demo:" + erp, odbc_spec(erp)):
            summary = erp_cli("--erp", spec).stdout
            self.assertIn("company BLUE: Blue Ridge Manufacturing Inc. (USD)", summary)
            self.assertEqual(summary.split("\n", 1)[1],
                             erp_cli("--erp", "demo:" + erp).stdout.split("\n", 1)[1], spec)
            for company in ("BLUE", "HARBOR"):
                for name in LISTS:
                    want = erp_cli("--erp", "demo:" + erp, "--company", company, "--list", name,
                                   "--limit", "100000").stdout
                    got = erp_cli("--erp", spec, "--company", company, "--list", name,
                                  "--limit", "100000").stdout
                    self.assertTrue(want, (company, name))
                    self.assertEqual(got, want, "%s %s through %s" % (company, name, spec))
        rows = [json.loads(line) for line in want.splitlines()]
        self.assertTrue(all(isinstance(r["lines"], list) for r in rows))

    def test_bad_profiles_and_sources_are_explained(self):
        erp = demo_erp(self)
        p = erp_cli("--erp", "sqlite:nosuch:" + erp, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot read the ERP profile", p.stderr)
        self.assertIn("nosuch.json", p.stderr)
        bad = os.path.join(self.tmp, "bad.json")
        with open(bad, "w") as f:
            json.dump({"product": "X", "companies": "SELECT 'A', 'B', 'USD'",
                       "lists": {"vendor": {"from": "t", "key": "k", "columns": {}}}}, f)
        p = erp_cli("--erp", "sqlite:%s:%s" % (bad, erp), check=False)
        self.assertIn("\"vendor\" is not a canonical list", p.stderr)
        with open(bad, "w") as f:
            json.dump({"product": "X", "companies": "SELECT 'A', 'B', 'USD'",
                       "lists": {"vendors": {"from": "vendors t", "key": "t.vendor_no",
                                             "columns": {"nickname": "t.name"}}}}, f)
        p = erp_cli("--erp", "sqlite:%s:%s" % (bad, erp), check=False)
        self.assertIn("no column \"nickname\"", p.stderr)
        with open(bad, "w") as f:
            json.dump({"product": "X", "companies": "SELECT 'A', 'B', 'USD'",
                       "lists": {"vendors": {"from": "no_such_table t", "key": "t.k",
                                             "columns": {}}}}, f)
        p = erp_cli("--erp", "sqlite:%s:%s" % (bad, erp), "--company", "A", "--list", "vendors",
                    check=False)
        self.assertIn("does not have what this ERP's profile reads", p.stderr)
        self.assertIn("no_such_table", p.stderr)
        p = erp_cli("--erp", "odbc:demo:DSN=apsync_no_such_dsn", check=False)
        self.assertIn("Data source name not found", p.stderr)
        p = erp_cli("--erp", "sqlite:demo:" + os.path.join(self.tmp, "missing.db"), check=False)
        self.assertIn("cannot open the SQLite file", p.stderr)
        with open(os.path.join(self.tmp, "junk.db"), "wb") as f:
            f.write(b"this is not a database" * 100)
        p = erp_cli("--erp", "sqlite:demo:" + os.path.join(self.tmp, "junk.db"), check=False)
        self.assertIn("not a SQLite database or is damaged", p.stderr)

    def test_a_locked_company_is_busy_with_the_reason(self):
        import sqlite3
        erp = demo_erp(self)
        db = sqlite3.connect(erp)
        db.execute("INSERT INTO locks(company_code, user_name, reason, since) VALUES "
                   "('BLUE', 'maria', 'period close', '2024-05-01 10:00:00')")
        db.commit()
        db.close()
        p = erp_cli("--erp", "sqlite:demo:" + erp, "--company", "BLUE", "--list", "vendors",
                    check=False)
        self.assertEqual(p.returncode, 75, p.stderr)
        self.assertIn("locked by user 'maria' (period close)", p.stderr)


# The engine's own guarantees, with the agent reading through the profile.
class PartialSyncThroughAProfile(test_engine.PartialSync):
    def erp_spec(self, path):
        return "sqlite:demo:" + path


class ReconciliationThroughODBC(test_engine.Reconciliation):
    @classmethod
    def setUpClass(cls):
        odbc_ready()

    def erp_spec(self, path):
        return odbc_spec(path)


class ErpMatrix(Case):
    NAMED = ["Microsoft Dynamics GP", "NetSuite", "Sage 50 CA", "Sage 50 US", "Sage 100",
             "Sage 300", "Sage Intacct", "QuickBooks Desktop", "QuickBooks Online", "Twinfield",
             "AFAS", "Exact Online", "Visma eAccounting", "Visma.net", "SnelStart", "AccountView"]

    def test_every_named_erp_is_in_the_api_and_the_readme_alike(self):
        from harness import Broker
        broker = Broker(self).start()
        broker.tenant("acme")
        token = broker.user("acme", "ap@acme.test", "viewer")
        s, j = broker.api("GET", "/api/v1/erps", token)
        self.assertEqual(s, 200, j)
        erps = {e["name"]: e for e in j["erps"]}
        for name in self.NAMED:
            self.assertIn(name, erps)
        s, _ = broker.api("GET", "/api/v1/erps", None)
        self.assertEqual(s, 401)
        with open(os.path.join(ROOT, "README.md")) as f:
            text = f.read()
        section = text[text.index("## ERPs"):text.index("## How it fits together")]
        rows = [line.split("|")[1:-1] for line in section.splitlines()
                if line.startswith("| ") and not line.startswith("| ERP ")]
        readme = {r[0].strip(): (r[1].strip(), r[2].strip(), r[3].strip()) for r in rows}
        self.assertEqual(set(readme), set(erps))
        states = {"tested": "tested", "profile": "profile", "not_yet": "not yet"}
        for name, e in erps.items():
            runs = "cloud (agentless)" if e["deployment"] == "cloud" else "desktop (SyncTool)"
            self.assertEqual(readme[name][0], runs, name)
            self.assertEqual(readme[name][2], states[e["state"]], name)
            self.assertEqual(e["synctool"], e["deployment"] == "desktop", name)
            for lst in e["lists"]:
                self.assertIn(lst, LISTS, name)
            if e["state"] != "not_yet":
                self.assertTrue(e["connector"], name)


def unstamped_profile(case):
    """The demo profile as if the ERP kept no modification times (like GnuCash):
    no list has a change cursor."""
    with open(os.path.join(ROOT, "agent", "erp", "profiles", "demo.json")) as f:
        prof = json.load(f)
    for lst in prof["lists"].values():
        lst.pop("modified", None)
    path = os.path.join(case.tmp, "demo-unstamped.json")
    with open(path, "w") as f:
        json.dump(prof, f)
    return path


class ListsWithoutModificationTimes(test_engine.EngineCase):
    """Partial syncs of lists an ERP keeps no modification time for: the agent
    compares row hashes with what the broker confirmed, sends only what changed
    and the keys that are gone, and reads nothing when the file did not change."""

    def erp_spec(self, path):
        return "sqlite:%s:%s" % (self.profile, path)

    def setUp(self):
        super().setUp()
        self.profile = unstamped_profile(self)

    def counts(self, job, name):
        return {k: v for k, v in self.lists_of(job)[name]["counts"].items()
                if k in ("read", "inserted", "updated", "unchanged", "deleted")}

    def test_partial_sends_changes_and_deletions_then_nothing(self):
        self.setup_world(rows=3000, agent_extra=["--batch-rows", "500"])
        job = self.run_sync()
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        self.assertEqual(self.counts(job, "vendors")["read"], 3000)
        # nothing changed in the file: every list is skipped by its fingerprint
        job = self.run_sync(mode="partial")
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        self.assertEqual(job["totals"]["read"], 0, json.dumps(job["totals"]))
        # 3 edits, 2 deletions (one far past the last batch), 1 new vendor
        keys = self.vendor_keys(3, offset=700)
        gone = self.vendor_keys(1, offset=10) + self.vendor_keys(1, offset=2999)
        self.edit_vendors(keys)
        db = self.erp_db()
        db.executemany("DELETE FROM vendors WHERE company_code='BLUE' AND vendor_no=?",
                       [(k,) for k in gone])
        db.execute("INSERT INTO vendors SELECT company_code, 'V9999999', 'Brand New Vendor', "
                   "address1, address2, city, state, zip, phone, email, tax_id, terms_code, "
                   "currency, 0, 'A', created_at, modified_at FROM vendors WHERE "
                   "company_code='BLUE' LIMIT 1")
        db.commit()
        db.close()
        job = self.run_sync(mode="partial")
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        self.assertEqual(self.counts(job, "vendors"),
                         {"read": 4, "inserted": 1, "updated": 3, "unchanged": 0, "deleted": 2})
        for name, l in self.lists_of(job).items():
            if name not in ("vendors", "separate_checks"):
                self.assertEqual(l["counts"]["read"], 0, name)
        held = self.store_vendors()
        self.assertEqual(len(held), 3000 - 2 + 1)
        for k in gone:
            self.assertNotIn(k, held)
        self.assertEqual(held[keys[0]]["name"], self.erp_vendor_names()[keys[0]])
        self.assertEqual(held["V9999999"]["name"], "Brand New Vendor")
        # and then nothing again
        job = self.run_sync(mode="partial")
        self.assertEqual(job["totals"]["read"], 0, json.dumps(job["totals"]))
        # a full sync agrees with the store, then partials still compare right
        job = self.run_sync()
        self.assertEqual(self.counts(job, "vendors")["unchanged"], 2999)
        self.edit_vendors(self.vendor_keys(1, offset=5))
        job = self.run_sync(mode="partial")
        self.assertEqual(self.counts(job, "vendors")["updated"], 1)

    def test_a_cancelled_partial_confirms_nothing_and_the_next_sends_the_changes(self):
        self.setup_world(rows=2000)
        self.assertEqual(self.run_sync()["status"], "success")
        keys = self.vendor_keys(2, offset=100)
        self.edit_vendors(keys)
        # the run waits for the ERP's lock and is cancelled: nothing is confirmed
        db = self.erp_db()
        db.execute("INSERT INTO locks(company_code, user_name, reason, since) VALUES "
                   "('BLUE', 'maria', 'period close', '2024-05-01 10:00:00')")
        db.commit()
        db.close()
        j = self.sync(self.blue["id"], mode="partial")
        self.wait_job(j["id"], 30, done=("running", "dispatched", "queued"))
        s, _ = self.broker.api("POST", "/api/v1/syncs/%d/cancel" % j["id"], self.token)
        self.assertEqual(s, 200)
        self.assertEqual(self.wait_job(j["id"], 30)["status"], "cancelled")
        db = self.erp_db()
        db.execute("DELETE FROM locks")
        db.commit()
        db.close()
        job = self.run_sync(mode="partial")
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        self.assertEqual(self.counts(job, "vendors")["updated"], 2)


def export(erp, doc, company="BLUE", *extra):
    import tempfile
    fd, path = tempfile.mkstemp(prefix="doc-", suffix=".json")
    os.close(fd)
    with open(path, "w") as f:
        json.dump(doc, f)
    p = subprocess.run([AGENT, "export", "--erp", erp, "--company", company, "--file", path] +
                       list(extra), capture_output=True, text=True, timeout=60)
    os.unlink(path)
    return p.returncode, (json.loads(p.stdout) if p.stdout.strip() else None), p.stderr


class DemoExports(Case):
    """The demo ERP takes invoices and payments (proto/EXPORTS.md) exactly once,
    checking every reference and the total, and refuses clearly."""

    INVOICE = {"type": "invoice", "vendor": "V0000002", "number": "INV-1001",
               "date": "2024-05-01", "currency": "USD",
               "lines": [{"gl_account": "1010-00", "description": "Paper", "quantity": "2",
                          "unit_price": "10.00", "tax_code": "CA-LA", "division": "00"},
                         {"item": "I0000002", "quantity": "100", "unit_price": "0.45",
                          "tax_code": "FL"}],
               "total": "69.60"}

    def setUp(self):
        super().setUp()
        self.erp = "demo:" + demo_erp(self, 100)
        self.db = self.erp[5:]

    def invoices(self):
        import sqlite3
        db = sqlite3.connect(self.db)
        rows = db.execute("SELECT invoice_no, total, amount_paid, status FROM ap_invoices "
                          "ORDER BY invoice_id").fetchall()
        db.close()
        return rows

    def test_an_invoice_and_its_payment_are_written_once(self):
        rc, out, err = export(self.erp, self.INVOICE)
        self.assertEqual((rc, out["result"], out["state"]), (0, "written", "posted"), err)
        rc, again, _ = export(self.erp, self.INVOICE)
        self.assertEqual((rc, again["result"], again["id"]), (0, "found", out["id"]))
        second = dict(self.INVOICE, number="INV-1002")
        self.assertEqual(export(self.erp, second)[0], 0)
        self.assertEqual(self.invoices(), [("INV-1001", "69.60", "0.00", "O"),
                                           ("INV-1002", "69.60", "0.00", "O")])
        pay = {"type": "payment", "vendor": "V0000002", "reference": "CHK-1",
               "date": "2024-05-03", "bank_account": "A", "amount": "100.00",
               "invoices": [{"number": "INV-1001", "amount": "69.60"},
                            {"number": "INV-1002", "amount": "30.40"}]}
        rc, out, err = export(self.erp, pay)
        self.assertEqual((rc, out["result"]), (0, "written"), err)
        self.assertEqual(export(self.erp, pay)[1]["result"], "found")
        self.assertEqual(self.invoices(), [("INV-1001", "69.60", "69.60", "P"),
                                           ("INV-1002", "69.60", "30.40", "O")])
        over = dict(pay, reference="CHK-2", amount="40.00",
                    invoices=[{"number": "INV-1002", "amount": "40.00"}])
        rc, _, err = export(self.erp, over)
        self.assertEqual(rc, 1)
        self.assertIn("which has 39.20 open", err)
        self.assertEqual(self.invoices()[1], ("INV-1002", "69.60", "30.40", "O"))

    def test_refusals_name_what_is_wrong_and_write_nothing(self):
        cases = [
            (dict(self.INVOICE, total="71.60"), 1, "total_mismatch: the demo ERP computes 69.60"),
            (dict(self.INVOICE, vendor="NOPE"), 1, "vendor \"NOPE\" is not in company BLUE"),
            (dict(self.INVOICE, vendor="V0000001"), 1, "vendor \"V0000001\" is inactive"),
            (dict(self.INVOICE, lines=[dict(self.INVOICE["lines"][0], gl_account="9999")]), 1,
             "GL account \"9999\" is not in company BLUE"),
            (dict(self.INVOICE, lines=[dict(self.INVOICE["lines"][0], quantity="1e3")]), 1,
             "\"quantity\" is not a decimal string"),
            (dict(self.INVOICE, currency="EUR"), 1, "keeps its books in USD"),
            ({"type": "memo"}, 1, "not invoice or payment"),
        ]
        for doc, code, why in cases:
            rc, _, err = export(self.erp, doc)
            self.assertEqual(rc, code, err)
            self.assertIn(why, err)
        self.assertEqual(self.invoices(), [])
        import sqlite3
        db = sqlite3.connect(self.db)
        db.execute("INSERT INTO locks VALUES('BLUE', 'maria', 'period close', 'now')")
        db.commit()
        db.close()
        rc, _, err = export(self.erp, self.INVOICE)
        self.assertEqual(rc, 75)
        self.assertIn("locked by user 'maria' (period close)", err)
        self.assertEqual(self.invoices(), [])
        # a connector that cannot write says so
        rc, _, err = export("sqlite:demo:" + self.db, self.INVOICE)
        self.assertEqual(rc, 1)
        self.assertIn("connector does not write invoices", err)
