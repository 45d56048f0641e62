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
