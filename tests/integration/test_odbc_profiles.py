"""The Sage 100, Dynamics GP and Sage 300 mapping profiles (agent/erp/profiles)
against the schema-faithful fixture databases of tests/fixtures/odbc, each
ERP in SQLite (through the SQLite3 ODBC driver) and in PostgreSQL (through the
PostgreSQL Unicode driver, on a throwaway server per class):

- what `apsync-agent erp` counts is what the tables hold, with the profile's
  filters (imported PO types, goods receipts, ...) counted straight from them;
- the rows are the same whichever database holds the ERP, and mean what the
  fixture's business data says (change cursors, PO states and types);
- a real broker and agent sync everything, and after `touch()` moves some
  vendors and a PO the ERP's way, a partial sync reads exactly those rows.

The agent runs in the companies' time zone (America/Chicago), as it would on
the ERP's own network: Sage 100 and Sage 300 stamp rows in local time."""
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from decimal import Decimal

import test_engine
from harness import AGENT, ROOT, Agent, Broker

sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "odbc"))
import erpdb  # noqa: E402
from pgserver import PgServer, ensure_packages  # noqa: E402

ROWS = 40
DIALECTS = ("sqlite", "pg")
LISTS = ["bank_accounts", "divisions", "gl_accounts", "items", "separate_checks", "tax_codes",
         "units", "vendors", "warehouses", "purchase_orders", "receivings"]


def erp_cli(*args):
    p = subprocess.run([AGENT, "erp"] + list(args), capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError("apsync-agent erp %s: %s" % (" ".join(args), p.stderr))
    return p.stdout


def summary_counts(text):
    """{list: rows} from `apsync-agent erp` summary output."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("  ") and len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def zone_offset(zone):
    """The zone's UTC offset now, as the agent's "local" reads it: -06:00."""
    from zoneinfo import ZoneInfo
    z = dt.datetime.now(ZoneInfo(zone)).strftime("%z")
    return z[:3] + ":" + z[3:]


def iso_ms(t, offset):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d" % round(t.microsecond / 1000) + offset


class ProfileChecks:
    """The checks, for one ERP; subclasses say which (a Case mixin)."""
    ERP = PROFILE = COMPANY = None
    ZONE = erpdb.ERP_TZ_NAME       # the agent machine's zone
    COUNTS = {}                    # list -> SQL counting its rows straight from the tables
    PO_NUMBER = None               # model PO number -> the ERP's code

    # -- class fixtures: one PostgreSQL server and the pristine databases ----------

    @classmethod
    def setUpClass(cls):
        ensure_packages("odbc", "postgres")
        cls.saved_tz = os.environ.get("TZ")
        os.environ["TZ"] = cls.ZONE
        cls.dir = tempfile.mkdtemp(prefix="apsync-odbc-profiles-")
        cls.pg = None
        try:
            cls.pg = PgServer()
            cls.lite = os.path.join(cls.dir, cls.ERP + ".sqlite")
            erpdb.build(cls.ERP, "sqlite", cls.lite, rows=ROWS)
            erpdb.build(cls.ERP, "pg", (cls.pg, cls.ERP), rows=ROWS)
            cls.want = {name: cls.count(name, "sqlite") for name in cls.COUNTS}
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.pg:
                cls.pg.stop()
        finally:
            cls.pg = None
            shutil.rmtree(cls.dir, ignore_errors=True)
            if cls.saved_tz is None:
                os.environ.pop("TZ", None)
            else:
                os.environ["TZ"] = cls.saved_tz

    @classmethod
    def count(cls, name, dialect, db=None):
        sql = cls.COUNTS[name]
        if dialect == "sqlite":
            con = sqlite3.connect("file:%s?mode=ro" % (db or cls.lite), uri=True)
            try:
                return con.execute(sql).fetchone()[0]
            finally:
                con.close()
        return int(cls.pg.psql(sql + ";", db or cls.ERP))

    @classmethod
    def spec(cls, dialect, db=None):
        if dialect == "sqlite":
            return "odbc:%s:Driver=SQLite3;Database=%s" % (cls.PROFILE, db or cls.lite)
        return ("odbc:%s:Driver=PostgreSQL Unicode;Server=%s;Port=%d;Database=%s;Uid=%s;"
                "SSLmode=disable" % (cls.PROFILE, cls.pg.host, cls.pg.port, db or cls.ERP,
                                     cls.pg.user))

    def rows(self, dialect, name):
        out = erp_cli("--erp", self.spec(dialect), "--company", self.COMPANY, "--list", name,
                      "--limit", "100000")
        return out, [json.loads(line) for line in out.splitlines()]

    def fixture(self, sql):
        con = sqlite3.connect("file:%s?mode=ro" % self.lite, uri=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    # -- (a) the summary counts what the tables hold ------------------------------

    def test_summary_counts_equal_the_tables(self):
        self.assertEqual(self.want["vendors"], ROWS)
        for dialect in DIALECTS:
            text = erp_cli("--erp", self.spec(dialect))
            self.assertIn("company %s:" % self.COMPANY, text)
            self.assertIn("imports POs of type standard,drop_ship", text)
            got = summary_counts(text)
            want = {name: self.count(name, dialect) for name in self.COUNTS}
            self.assertEqual(want, self.want, dialect)   # the same data in both databases
            self.assertEqual(got, want, dialect)
            self.assertTrue(all(want.values()), want)

    # -- (d) the same rows whatever the database, meaning what the model says -----

    def test_sqlite_and_postgresql_give_the_same_rows(self):
        for name in self.COUNTS:
            lite, rows = self.rows("sqlite", name)
            pg, _ = self.rows("pg", name)
            self.assertEqual(len(rows), self.want[name], name)
            self.assertEqual(pg, lite, name)
            keys = [r["code"] for r in rows]
            self.assertEqual(keys, sorted(keys, key=lambda k: k.encode()), name)  # byte order
            self.assertEqual(len(set(keys)), len(keys), name)
            for r in rows:
                self.assertTrue(r["code"] and r["code"] == r["code"].strip(), (name, r["code"]))
        _, vendors = self.rows("sqlite", "vendors")
        stamps = self.vendor_stamps()
        self.assertEqual({v["code"]: v["modified_at"] for v in vendors}, stamps)
        _, pos = self.rows("sqlite", "purchase_orders")
        model = erpdb.model(ROWS, 1)
        want = {self.PO_NUMBER(p["number"]): p for p in model["pos"]
                if self.imported(p["type"])}
        self.assertEqual(sorted(r["code"] for r in pos), sorted(want))
        for r in pos:
            p = want[r["code"]]
            self.assertEqual((r["status"], r["type"]),
                             (p["status"], "standard" if p["type"] == "repeating" else p["type"]),
                             r["code"])
            self.assertEqual([(x["line"], x["item"], Decimal(x["quantity"]),
                               Decimal(x["received"]), Decimal(x["unit_cost"]), x["gl_account"])
                              for x in r["lines"]],
                             [(x["line"], x["item"], x["quantity"], x["received"], x["unit_cost"],
                               x["gl"]) for x in p["lines"]], r["code"])
            self.assertEqual(Decimal(r["total"]), p["total"], r["code"])

    def imported(self, model_type):
        return model_type in ("standard", "drop_ship")

    # -- (b) + (c) a full sync, then a partial one reads exactly what moved --------

    def sync_world(self, dialect):
        """A copy of the pristine ERP database, a broker and an agent reading it."""
        if dialect == "sqlite":
            db = os.path.join(self.tmp, "erp.sqlite")
            shutil.copyfile(self.lite, db)
            target = db
        else:
            db = "%s_sync" % self.ERP
            self.pg.psql('DROP DATABASE IF EXISTS "%s"; CREATE DATABASE "%s" TEMPLATE "%s";'
                         % (db, db, self.ERP))
            target = (self.pg, db)
        self.broker = Broker(self).start()
        self.broker.tenant("acme")
        self.token = self.broker.user("acme", "ap@acme.test", "invoice_exporter")
        self.agent = Agent(self, self.broker)
        self.agent.enroll(self.broker.code("acme", "ACME-SYNC"))
        # small batches: rows sharing one stamp (a mass update) straddle them
        self.agent.start(self.spec(dialect, db), test_engine.FAST + ["--batch-rows", "3"])
        self.wait_online()
        self.blue = self.entity(self.COMPANY)
        return db, target

    def check_sync(self, dialect):
        _, target = self.sync_world(dialect)
        job = self.run_sync()
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        self.assertEqual(self.stored_counts(self.blue["id"]), self.want)
        # Three vendors (one paid by separate check where the ERP has the flag)
        # and one imported PO are edited the ERP's way: their cursors move.
        vendors, sep = self.touch_vendors(dialect, target)
        po = self.touch_po(dialect, target)
        time.sleep(0.6)  # past the cursor lag
        job = self.run_sync(mode="partial")
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        read = {name: lst["counts"]["read"] for name, lst in self.lists_of(job).items()}
        want = dict.fromkeys(self.want, 0)
        want.update(vendors=len(vendors), purchase_orders=1)
        if "separate_checks" in want:
            want["separate_checks"] = sep
        self.assertEqual(read, want)
        stored = self.items(self.blue["id"], "vendors")
        for code, name in vendors.items():
            self.assertEqual(stored[code]["data"]["name"], name)
        stored = self.items(self.blue["id"], "purchase_orders")[po[0]]["data"]
        self.assertEqual(Decimal(stored["total"]), po[1])
        self.assertEqual(self.stored_counts(self.blue["id"]), self.want)
        # Everything again by modification time, three rows a batch, resuming
        # after (stamp, key) each time: every row once, none lost or repeated,
        # but for the versions the last run confirmed in its overlap (the
        # edited ones), which are skipped.
        job = self.run_sync(mode="partial", since="2000-01-01",
                            lists=["vendors", "purchase_orders"])
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        read = {name: (lst["counts"]["read"], lst["counts"]["unchanged"])
                for name, lst in self.lists_of(job).items()}
        self.assertEqual(read, {"vendors": (self.want["vendors"] - 3,) * 2,
                                "purchase_orders": (self.want["purchase_orders"] - 1,) * 2})

    def test_sync_sqlite(self):
        self.check_sync("sqlite")

    def test_sync_postgresql(self):
        self.check_sync("pg")


class Sage100(ProfileChecks, test_engine.EngineCase):
    ERP = PROFILE = "sage100"
    COMPANY = "SAGE100"
    PO_NUMBER = staticmethod(lambda n: "%07d" % n)
    COUNTS = {
        "bank_accounts": "SELECT count(*) FROM GL_BankCode",
        "divisions": "SELECT count(*) FROM AP_Division",
        "gl_accounts": "SELECT count(*) FROM GL_Account",
        "items": "SELECT count(*) FROM CI_Item WHERE ItemType <> '4'",
        "separate_checks": "SELECT count(*) FROM AP_Vendor WHERE SeparateCheck = 'Y'",
        "tax_codes": "SELECT count(*) FROM SY_SalesTaxCode",
        "units": "SELECT count(*) FROM (SELECT StandardUnitOfMeasure AS u FROM CI_Item UNION "
                 "SELECT PurchaseUnitOfMeasure FROM CI_Item UNION SELECT SalesUnitOfMeasure "
                 "FROM CI_Item UNION SELECT UnitOfMeasure FROM PO_PurchaseOrderDetail) x "
                 "WHERE u <> ''",
        "vendors": "SELECT count(*) FROM AP_Vendor",
        "warehouses": "SELECT count(*) FROM IM_Warehouse",
        "purchase_orders": "SELECT count(*) FROM PO_PurchaseOrderHeader "
                           "WHERE OrderType IN ('S', 'D')",
        "receivings": "SELECT count(*) FROM PO_ReceiptHistoryHeader r JOIN "
                      "PO_PurchaseOrderHeader p ON p.PurchaseOrderNo = r.PurchaseOrderNo "
                      "WHERE r.ReceiptType = 'G' AND p.OrderType IN ('S', 'D')",
    }

    def vendor_stamps(self):
        off = zone_offset(self.ZONE)
        return {"%s-%s" % (d, v): iso_ms(erpdb.sage100_parse(du, tu), off)
                for d, v, du, tu in self.fixture(
                    "SELECT APDivisionNo, VendorNo, DateUpdated, TimeUpdated FROM AP_Vendor")}

    def touch_vendors(self, dialect, target):
        rows = self.fixture("SELECT APDivisionNo, VendorNo, VendorName, SeparateCheck FROM "
                            "AP_Vendor ORDER BY SeparateCheck DESC, VendorNo LIMIT 3")
        out = {}
        for div, no, name, _ in rows:
            erpdb.touch("sage100", dialect, target, "AP_Vendor",
                        {"APDivisionNo": div, "VendorNo": no}, VendorName=name[:20] + " (ed)")
            out["%s-%s" % (div, no)] = name[:20] + " (ed)"
        return out, sum(1 for r in rows if r[3] == "Y")

    def touch_po(self, dialect, target):
        no, total = self.fixture("SELECT PurchaseOrderNo, TaxableAmt + NonTaxableAmt + "
                                 "SalesTaxAmt FROM PO_PurchaseOrderHeader WHERE OrderType = 'D' "
                                 "ORDER BY PurchaseOrderNo LIMIT 1")[0]
        erpdb.touch("sage100", dialect, target, "PO_PurchaseOrderHeader", no,
                    FreightAmt=Decimal("12.50"))
        return no, Decimal(str(total)) + Decimal("12.50")


class DynamicsGP(ProfileChecks, test_engine.EngineCase):
    ERP = PROFILE = "gp"
    COMPANY = "GP"
    PO_NUMBER = staticmethod(lambda n: "PO%07d" % n)
    COUNTS = {
        "bank_accounts": "SELECT count(*) FROM CM00100",
        "divisions": "SELECT count(*) FROM GL40200 WHERE SGMTNUMB = 2",
        "gl_accounts": "SELECT count(*) FROM GL00100",
        "items": "SELECT count(*) FROM IV00101",
        "tax_codes": "SELECT count(*) FROM TX00201 WHERE TXDTLTYP = 2",
        "units": "SELECT count(DISTINCT UOFM) FROM IV40202",
        "vendors": "SELECT count(*) FROM PM00200",
        "warehouses": "SELECT count(*) FROM IV40700",
        "purchase_orders": "SELECT count(*) FROM POP10100 WHERE POTYPE IN (1, 2)",
        "receivings": "SELECT count(*) FROM (SELECT POPRCTNM FROM POP30300 WHERE VOIDSTTS = 0 "
                      "AND POPTYPE IN (1, 3) UNION SELECT POPRCTNM FROM POP10300 WHERE "
                      "POPTYPE IN (1, 3)) r WHERE EXISTS (SELECT 1 FROM POP10500 q JOIN "
                      "POP10100 p ON p.PONUMBER = q.PONUMBER WHERE q.POPRCTNM = r.POPRCTNM AND "
                      "p.POTYPE IN (1, 2))",
    }

    def imported(self, model_type):
        return model_type != "master"   # GP has no repeating type: standard (1)

    def vendor_stamps(self):
        # DEX_ROW_TS is UTC, whatever the agent machine's zone
        return {v.rstrip(): iso_ms(erpdb.gp_parse(ts), "+00:00")
                for v, ts in self.fixture("SELECT VENDORID, DEX_ROW_TS FROM PM00200")}

    def touch_vendors(self, dialect, target):
        out = {}
        for (vid, name) in self.fixture("SELECT VENDORID, VENDNAME FROM PM00200 "
                                        "ORDER BY VENDORID LIMIT 3"):
            erpdb.touch("gp", dialect, target, "PM00200", vid.rstrip(),
                        VENDNAME=name.rstrip() + " (edited)")
            out[vid.rstrip()] = name.rstrip() + " (edited)"
        return out, 0   # GP has no separate-check flag

    def touch_po(self, dialect, target):
        no, total = self.fixture("SELECT PONUMBER, SUBTOTAL - TRDISAMT + FRTAMNT + MSCCHAMT + "
                                 "TAXAMNT FROM POP10100 WHERE POTYPE = 2 ORDER BY PONUMBER "
                                 "LIMIT 1")[0]
        erpdb.touch("gp", dialect, target, "POP10100", no.rstrip(), FRTAMNT=Decimal("12.50"))
        return no.rstrip(), Decimal(str(total)) + Decimal("12.50")

    def test_a_po_line_edit_moves_the_po(self):
        """A line's own DEX_ROW_TS moves its PO (the header's may not)."""
        _, target = self.sync_world("sqlite")
        self.assertEqual(self.run_sync(lists=["purchase_orders"])["status"], "success")
        no, ord_ = self.fixture("SELECT PONUMBER, ORD FROM POP10110 l WHERE EXISTS (SELECT 1 "
                                "FROM POP10100 h WHERE h.PONUMBER = l.PONUMBER AND "
                                "h.POTYPE = 1) ORDER BY PONUMBER, ORD LIMIT 1")[0]
        erpdb.touch("gp", "sqlite", target, "POP10110", (no.rstrip(), ord_),
                    ITEMDESC="Replacement part")
        time.sleep(0.6)
        job = self.run_sync(mode="partial", lists=["purchase_orders"])
        self.assertEqual(self.lists_of(job)["purchase_orders"]["counts"]["read"], 1)
        po = self.items(self.blue["id"], "purchase_orders")[no.rstrip()]["data"]
        self.assertEqual(po["lines"][0]["description"], "Replacement part")


class Sage300(ProfileChecks, test_engine.EngineCase):
    ERP = PROFILE = "sage300"
    COMPANY = "SAMLTD"     # the AUDTORG its rows carry
    PO_NUMBER = staticmethod(lambda n: "PO%06d" % n)
    COUNTS = {
        "bank_accounts": "SELECT count(*) FROM BKACCT",
        "divisions": "SELECT count(*) FROM GLASV WHERE IDSEG = '000002'",
        "gl_accounts": "SELECT count(*) FROM GLAMF",
        "items": "SELECT count(*) FROM ICITEM",
        "separate_checks": "SELECT count(*) FROM APVEN WHERE PRTSEPCHKS = 1",
        "tax_codes": "SELECT count(*) FROM TXAUTH",
        "units": "SELECT count(*) FROM ICUCOD",
        "vendors": "SELECT count(*) FROM APVEN",
        "warehouses": "SELECT count(*) FROM ICLOC",
        "purchase_orders": "SELECT count(*) FROM POPORH1 WHERE PORTYPE IN (1, 2, 3)",
        "receivings": "SELECT count(*) FROM PORCPH1 r WHERE EXISTS (SELECT 1 FROM PORCPL l "
                      "JOIN POPORH1 p ON p.PORHSEQ = l.PORHSEQ WHERE l.RCPHSEQ = r.RCPHSEQ AND "
                      "p.PORTYPE IN (1, 2, 3))",
    }

    def imported(self, model_type):
        return model_type != "master"   # Sage 300 has no repeating type: standing (2)

    def vendor_stamps(self):
        off = zone_offset(self.ZONE)
        return {v.rstrip(): iso_ms(erpdb.sage300_parse(d, t), off)
                for v, d, t in self.fixture("SELECT VENDORID, AUDTDATE, AUDTTIME FROM APVEN")}

    def touch_vendors(self, dialect, target):
        rows = self.fixture("SELECT VENDORID, VENDNAME, PRTSEPCHKS FROM APVEN "
                            "ORDER BY PRTSEPCHKS DESC, VENDORID LIMIT 3")
        out = {}
        for vid, name, _ in rows:
            erpdb.touch("sage300", dialect, target, "APVEN", vid.rstrip(),
                        VENDNAME=name.rstrip() + " (edited)")
            out[vid.rstrip()] = name.rstrip() + " (edited)"
        return out, sum(1 for r in rows if r[2] == 1)

    def touch_po(self, dialect, target):
        seq, no, total = self.fixture("SELECT PORHSEQ, PONUMBER, DOCTOTAL FROM POPORH1 WHERE "
                                      "PORTYPE = 1 ORDER BY PONUMBER LIMIT 1")[0]
        new = Decimal(str(total)) + Decimal("12.50")
        erpdb.touch("sage300", dialect, target, "POPORH1", seq, DOCTOTAL=new)
        return no.rstrip(), new
