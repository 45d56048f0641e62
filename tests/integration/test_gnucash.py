"""The GnuCash connector (gnucash:BOOK) against real GnuCash 4.13 books.

Books come from tests/fixtures/gnucash/gnucash_book.py: built by GnuCash's own
engine (cached per seed) and copied per test. What the agent reads is
compared with the fixture's verified SELECTs; what it writes is judged by
GnuCash's engine (check_bill, a read-only engine session) and compared row by
row with the fixture's reference writer and with bills the engine posts
itself. Vendors and accounts are edited with the engine, as a user would."""
import json
import os
import subprocess
import sys
import time
import unittest
from fractions import Fraction

from harness import AGENT, ROOT, SANITIZER_MARKS, SLOW, Agent, Broker, Case, env, wait_for

sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "gnucash"))
import gnucash_book as gb  # noqa: E402

FAST = ["--cursor-lag", "300", "--cursor-overlap", "60000", "--erp-retry", "200"]
LISTS = ("bank_accounts", "gl_accounts", "tax_codes", "vendors")
TAX = gb.SALES_TAX


def two_line_bill(number="INV-5001", vendor="V0003", total="1109.56"):
    """Two lines with tax 8.25%: 2 x 12.50 + 1 x 1000.00 = 1025.00, tax
    84.5625 -> 84.56, total 1109.56."""
    doc = {"type": "invoice", "vendor": vendor, "number": number, "date": "2024-05-01",
           "description": "May supplies",
           "lines": [
               {"gl_account": "6100", "description": "Printer paper", "quantity": "2",
                "unit_price": "12.50", "tax_code": TAX},
               {"gl_account": "6200", "description": "Rent May", "quantity": "1",
                "unit_price": "1000.00", "tax_code": TAX}]}
    if total is not None:
        doc["total"] = total
    return doc


def payment(reference, invoices, vendor="V0003", bank="1010", date="2024-05-20"):
    total = sum(Fraction(a) for _n, a in invoices)
    return {"type": "payment", "vendor": vendor, "reference": reference, "date": date,
            "bank_account": bank, "method": "check", "amount": "%.2f" % total,
            "invoices": [{"number": n, "amount": a} for n, a in invoices]}


class GnucashCase(Case):
    @classmethod
    def setUpClass(cls):
        if not gb.available():
            raise unittest.SkipTest("GnuCash 4.13 and python3-gnucash are not installed "
                                    "(sh packaging/deps.sh gnucash)")

    def setUp(self):
        super().setUp()
        self.book = os.path.join(self.tmp, "books.gnucash")
        self.spec = gb.make_book(self.book)
        db = gb._connect_ro(self.book)
        self.guid = db.execute("SELECT guid FROM books").fetchone()[0]
        db.close()

    def cli(self, *args, check=True):
        p = subprocess.run([AGENT] + list(args), capture_output=True, text=True,
                           timeout=120 * SLOW, env=env())
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, p.stderr, "apsync-agent %s" % " ".join(args))
        if check and p.returncode != 0:
            raise AssertionError("apsync-agent %s: exit %d\n%s%s" % (
                " ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def export(self, doc, check=True):
        path = os.path.join(self.tmp, "doc-%d.json" % time.monotonic_ns())
        with open(path, "w") as f:
            json.dump(doc, f)
        p = self.cli("export", "--erp", "gnucash:" + self.book, "--company", self.guid,
                     "--file", path, check=check)
        return p, (json.loads(p.stdout) if p.returncode == 0 else None)

    def counts(self):
        return {name: len(rows) for name, rows in gb.read_lists(self.book).items()}

    def book_token(self):
        return gb.change_token(self.book)


class ReadingABook(GnucashCase):
    def test_erp_lists_the_book_and_its_lists(self):
        out = self.cli("erp", "--erp", "gnucash:" + self.book).stdout
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("GnuCash 4.13 "), out)
        self.assertEqual(lines[1], "company %s: books (USD)" % self.guid)
        seen = {ln.split()[0]: int(ln.split()[1]) for ln in lines[2:]}
        self.assertEqual(seen, self.counts())
        self.assertEqual(seen, {"bank_accounts": 2, "gl_accounts": 24, "tax_codes": 2,
                                "vendors": len(self.spec["vendors"])})
        # row for row what the fixture's SELECTs (checked against the engine) read
        want = gb.read_lists(self.book)
        for name in LISTS:
            got = [json.loads(ln) for ln in self.cli(
                "erp", "--erp", "gnucash:" + self.book, "--company", self.guid, "--list",
                name, "--limit", "1000").stdout.splitlines()]
            self.assertEqual(got, want[name], name)

    def test_the_company_name_option_names_the_company(self):
        # File > Properties > Business > Company Name, as the SQL backend keeps
        # a book option: frames "options" and "options/Business" on the book
        con = gb.sqlite3.connect(self.book, isolation_level=None)
        fmt = gb._sqlite_time_format(con)
        con.execute("BEGIN IMMEDIATE")
        opts = gb._insert_frame(con, self.guid, "options", fmt)
        biz = gb._insert_frame(con, opts, "options/Business", fmt)
        gb._insert_slot(con, biz, "options/Business/Company Name", gb.SLOT_STRING,
                        "Acme Widgets LLC", fmt)
        con.execute("COMMIT")
        con.close()
        out = self.cli("erp", "--erp", "gnucash:" + self.book).stdout
        self.assertIn("company %s: Acme Widgets LLC (USD)" % self.guid, out)

    def test_other_files_are_explained(self):
        p = self.cli("erp", "--erp", "gnucash:" + os.path.join(self.tmp, "none.gnucash"),
                     check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot open the GnuCash book", p.stderr)
        xml = os.path.join(self.tmp, "xml.gnucash")
        with open(xml, "wb") as f:
            f.write(b"\x1f\x8b\x08\x00" + b"\x00" * 600)  # GnuCash's gzipped XML
        p = self.cli("erp", "--erp", "gnucash:" + xml, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a GnuCash book in SQLite format", p.stderr)
        p = self.cli("erp", "--erp", "nosuch:" + xml, check=False)
        self.assertIn("gnucash)", p.stderr)


class SyncingABook(GnucashCase):
    def setup_world(self):
        self.broker = Broker(self).start()
        self.broker.tenant("acme")
        self.token = self.broker.user("acme", "ap@acme.test", "invoice_exporter")
        self.agent = Agent(self, self.broker)
        self.agent.enroll(self.broker.code("acme", "ACME-SYNC"))
        self.agent.start("gnucash:" + self.book, FAST)
        self.wait_online()
        self.ent = self.entity(self.guid)

    def run_sync(self, **kw):
        return self.wait_job(self.sync(self.ent["id"], **kw)["id"], 120)

    def list_counts(self, job, name):
        c = {l["list"]: l for l in job["lists"]}[name]["counts"]
        return {k: v for k, v in c.items()
                if k in ("read", "inserted", "updated", "unchanged", "deleted")}

    def held(self, name):
        return {k: i["data"] for k, i in self.items(self.ent["id"], name).items()
                if not i["deleted"]}

    def test_full_then_partial_syncs_send_exactly_the_engine_edits(self):
        self.setup_world()
        self.assertEqual(self.ent["name"], "books")
        job = self.run_sync()
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        self.assertEqual(self.stored_counts(self.ent["id"]), self.counts())
        want = gb.read_lists(self.book)
        for name in LISTS:
            held = self.held(name)
            for row in want[name]:
                self.assertEqual(held[row["code"]], row, name)
        # an unchanged book reads nothing: its fingerprint did not move
        job = self.run_sync(mode="partial")
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        self.assertEqual(job["totals"]["read"], 0, json.dumps(job["totals"]))
        for name in LISTS:
            self.assertIn("job %d: list %s unchanged since the last sync" % (job["id"], name),
                          self.agent.proc.text())
        # a user edits, adds and deletes vendors and hides an account in GnuCash
        gb.edit_vendor(self.book, "V0002", phone="(555) 555-0102")
        gb.add_vendor(self.book, "V0011", "Zephyr Supplies", addr1="1 Main St", terms="Net 15")
        gb.delete_vendor(self.book, "V0010")
        gb.edit_account(self.book, "Expenses:Shipping", hidden=True)
        job = self.run_sync(mode="partial")
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        self.assertEqual(self.list_counts(job, "vendors"),
                         {"read": 2, "inserted": 1, "updated": 1, "unchanged": 0, "deleted": 1})
        self.assertEqual(self.list_counts(job, "gl_accounts"),
                         {"read": 1, "inserted": 0, "updated": 1, "unchanged": 0, "deleted": 0})
        for name in ("bank_accounts", "tax_codes"):
            self.assertEqual(self.list_counts(job, name)["read"], 0, name)
        vendors = self.held("vendors")
        self.assertNotIn("V0010", vendors)
        self.assertEqual(vendors["V0011"]["name"], "Zephyr Supplies")
        self.assertEqual(vendors["V0011"]["terms"], "Net 15")
        self.assertEqual(vendors["V0002"]["phone"], "(555) 555-0102")
        self.assertEqual(self.held("gl_accounts")["6500"]["status"], "inactive")
        self.assertEqual(self.stored_counts(self.ent["id"]), self.counts())
        # and then nothing again
        job = self.run_sync(mode="partial")
        self.assertEqual(job["totals"]["read"], 0, json.dumps(job["totals"]))

    def test_documents_posted_to_the_broker_reach_the_book_once(self):
        self.setup_world()
        self.assertEqual(self.run_sync()["status"], "success")
        docs = [two_line_bill(), payment("CHK-3001", [("INV-5001", "1109.56")])]
        s, j = self.broker.api("POST", "/api/v1/entities/%d/exports" % self.ent["id"],
                               self.token, {"documents": docs},
                               headers={"Idempotency-Key": "gnucash-1"})
        self.assertEqual(s, 201, j)
        done = []
        for d in j["documents"]:
            done.append(wait_for(lambda: (lambda x: x if x["status"] in (
                "success", "failed", "uncertain", "on_hold", "blocked") else None)(
                self.broker.api("GET", "/api/v1/documents/%d" % d["id"], self.token)[1]),
                30, interval=0.1, what="document %d" % d["id"]))
        self.assertEqual([d["status"] for d in done], ["success", "success"],
                         json.dumps(done, indent=1))
        self.assertEqual((done[0]["erp"]["number"], done[0]["erp"]["state"]),
                         ("000003", "posted"))
        chk = gb.check_bill(self.book, "V0003", "INV-5001")
        self.assertEqual((chk["count"], chk["total"], chk["paid"]), (1, "1109.56", True))

    def test_an_open_book_defers_the_sync_with_the_reason(self):
        self.setup_world()
        self.assertEqual(self.run_sync()["status"], "success")
        gb.lock_book(self.book, hostname="ap-desk", pid=4242)
        job = self.sync(self.ent["id"], mode="partial")
        j = wait_for(lambda: (lambda j: j if j["reason"] else None)(self.broker.api(
            "GET", "/api/v1/syncs/%d" % job["id"], self.token)[1]), 15, what="the reason")
        self.assertIn("GnuCash has the book open (on host ap-desk, process 4242)", j["reason"])
        self.assertEqual(j["status"], "running")
        gb.unlock_book(self.book)
        j = self.wait_job(job["id"])
        self.assertEqual(j["status"], "success", json.dumps(j, indent=1))
        self.assertIsNone(j["reason"])
        log = json.dumps(self.broker.api("GET", "/api/v1/syncs/%d/log" % job["id"],
                                         self.token)[1])
        self.assertIn("waiting for the ERP", log)
        self.assertIn("GnuCash has the book open", log)
        self.assertIn("the ERP answers again", log)


class WritingBills(GnucashCase):
    def test_a_bill_is_posted_once_then_paid(self):
        before = gb.check_bill(self.book, "V0003", "INV-5001")
        self.assertEqual(before["count"], 0)
        ap0 = Fraction(before["ap_balance"])
        bank0 = Fraction(before["checking_balance"])
        p, ref = self.export(two_line_bill())
        self.assertEqual(ref["result"], "written", p.stderr)
        self.assertEqual((ref["number"], ref["state"]), ("000003", "posted"))
        chk = gb.check_bill(self.book, "V0003", "INV-5001")
        self.assertEqual(chk["count"], 1)
        self.assertTrue(chk["posted"])
        self.assertFalse(chk["paid"])
        self.assertEqual(chk["total"], "1109.56")
        self.assertEqual(chk["posted_amount"], "1109.56")
        self.assertEqual(chk["lot_balance"], "1109.56")
        self.assertEqual(Fraction(chk["ap_balance"]), ap0 + Fraction("1109.56"))
        self.assertEqual(chk["id"], "000003")
        self.assertEqual(chk["date_posted"], "2024-05-01")
        self.assertEqual(chk["due_date"], "2024-05-31")  # V0003 is on Net 30
        self.assertIn(["Liabilities:Sales Tax Payable", "84.56"], chk["splits"])
        # the same document again is found, not written
        tok = self.book_token()
        p, again = self.export(two_line_bill())
        self.assertEqual(again["result"], "found")
        self.assertEqual(again["id"], ref["id"])
        self.assertEqual(self.book_token(), tok)
        self.assertEqual(gb.check_bill(self.book, "V0003", "INV-5001")["count"], 1)
        # the payment
        pay = payment("CHK-2001", [("INV-5001", "1109.56")])
        p, pref = self.export(pay)
        self.assertEqual((pref["result"], pref["number"]), ("written", "CHK-2001"), p.stderr)
        paid = gb.check_bill(self.book, "V0003", "INV-5001")
        self.assertTrue(paid["paid"])
        self.assertEqual(paid["lot_balance"], "0.00")
        self.assertEqual(Fraction(paid["ap_balance"]), ap0)
        self.assertEqual(Fraction(paid["checking_balance"]), bank0 - Fraction("1109.56"))
        tok = self.book_token()
        p, again = self.export(pay)
        self.assertEqual((again["result"], again["id"]), ("found", pref["id"]))
        self.assertEqual(self.book_token(), tok)
        # a new payment of the paid bill is refused
        p, _ = self.export(payment("CHK-2002", [("INV-5001", "1.00")]), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("already paid", p.stderr)
        # lookup-only finds both
        for doc in (two_line_bill(), pay):
            path = os.path.join(self.tmp, "lookup.json")
            with open(path, "w") as f:
                json.dump(doc, f)
            out = self.cli("export", "--erp", "gnucash:" + self.book, "--company", self.guid,
                           "--file", path, "--lookup-only").stdout
            self.assertEqual(json.loads(out)["result"], "found")

    def test_rows_equal_the_reference_writer_and_the_engine(self):
        # the reference writer's bill and payment, on a copy of the same book
        ref_book = os.path.join(self.tmp, "reference.gnucash")
        gb.make_book(ref_book)
        doc = {"type": "invoice", "vendor": "V0003", "number": "INV-77001",
               "date": "2024-05-01", "total": "1110.57",
               "lines": [{"gl_account": ln["account"], "description": ln["description"],
                          "quantity": ln["quantity"], "unit_price": ln["price"],
                          "tax_code": ln["tax"]} for ln in gb._ref_lines()]}
        for ln in doc["lines"]:
            if ln["tax_code"] is None:
                del ln["tax_code"]
        self.assertEqual(self.export(doc)[1]["result"], "written")
        gb.write_bill_sql(ref_book, "V0003", "INV-77001", gb._ref_lines(), date="2024-05-01")
        clock = {"transactions.enter_date", "entries.date_entered"}
        diffs = gb.shape_diff(gb.bill_rows(self.book, "V0003", "INV-77001"),
                              gb.bill_rows(ref_book, "V0003", "INV-77001"))
        self.assertLessEqual(diffs, clock)
        self.export(payment("77", [("INV-77001", "1110.57")], date="2024-05-09"))
        gb.write_payment_sql(ref_book, "V0003", "INV-77001", bank_account="1010",
                             date="2024-05-09", num="77")
        (pa,), _ = gb.payment_rows(self.book, "V0003", "INV-77001")
        (pb,), _ = gb.payment_rows(ref_book, "V0003", "INV-77001")
        self.assertLessEqual(gb.shape_diff(pa, pb), clock)
        # awkward amounts: the agent's bill and the engine's own posting agree
        tricky = [{"account": "6100", "description": "a", "quantity": "1", "price": "0.666",
                   "tax": TAX},
                  {"account": "6500", "description": "b", "quantity": "1", "price": "0.785",
                   "tax": TAX},
                  {"account": "6100", "description": "c", "quantity": "3", "price": "1.001",
                   "tax": TAX},
                  {"account": "Expenses:Travel", "description": "d", "quantity": "1",
                   "price": "0.183", "tax": TAX}]
        doc = {"type": "invoice", "vendor": "V0001", "number": "RULE-C", "date": "2024-05-02",
               "lines": [{"gl_account": ln["account"], "description": ln["description"],
                          "quantity": ln["quantity"], "unit_price": ln["price"],
                          "tax_code": ln["tax"]} for ln in tricky]}
        self.assertEqual(self.export(doc)[1]["result"], "written")
        gb.engine_add_bill(self.book, "V0001", "RULE-ENG",
                           [dict(ln, account=gb._path_of(self.book, ln["account"]))
                            for ln in tricky], "2024-05-02")
        a = gb.check_bill(self.book, "V0001", "RULE-C")
        b = gb.check_bill(self.book, "V0001", "RULE-ENG")
        self.assertEqual((a["total"], a["splits"]), (b["total"], b["splits"]))
        self.assertEqual(a["due_date"], b["due_date"])  # 10th Proximo
        diffs = gb.shape_diff(gb.bill_rows(self.book, "V0001", "RULE-C"),
                              gb.bill_rows(self.book, "V0001", "RULE-ENG"))
        self.assertLessEqual(diffs, gb._SHAPE_ALLOWED)

    def test_bill_numbers_follow_the_counter_and_its_format_as_the_reference(self):
        twin = os.path.join(self.tmp, "twin.gnucash")
        gb.make_book(twin)
        lines = [{"account": "6200", "description": "Rent", "quantity": "1",
                  "price": "10.00"}]
        for i, fmt in enumerate((None, "B-%05d", "%-6lld|", "% 4i", "X%.3dY")):
            if fmt:
                for book in (self.book, twin):
                    self.set_counter_format(book, fmt)
            doc = {"type": "invoice", "vendor": "V0004", "number": "N-%d" % i,
                   "date": "2024-06-03", "lines": [{"gl_account": "6200",
                                                    "quantity": "1", "unit_price": "10.00"}]}
            got = self.export(doc)[1]["number"]
            want = gb.write_bill_sql(twin, "V0004", "N-%d" % i, lines, date="2024-06-03")["id"]
            self.assertEqual(got, want, fmt)
        self.assertEqual(got, "X007Y")
        self.assertEqual(gb.check_bill(self.book, "V0004", "N-1")["id"], "B-00004")

    @staticmethod
    def set_counter_format(book, fmt):
        con = gb.sqlite3.connect(book, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        tf = gb._sqlite_time_format(con)
        guid = con.execute("SELECT guid FROM books").fetchone()[0]
        row = con.execute("SELECT guid_val FROM slots WHERE obj_guid = ? AND name = "
                          "'counter_formats'", (guid,)).fetchone()
        frame = row[0] if row else gb._insert_frame(con, guid, "counter_formats", tf)
        con.execute("DELETE FROM slots WHERE obj_guid = ? AND name = 'counter_formats/gncBill'",
                    (frame,))
        gb._insert_slot(con, frame, "counter_formats/gncBill", gb.SLOT_STRING, fmt, tf)
        con.execute("COMMIT")
        con.close()

    def test_one_payment_of_two_bills_one_in_part(self):
        self.export(two_line_bill("INV-A"))
        self.export(two_line_bill("INV-B"))
        bank0 = Fraction(gb.check_bill(self.book, "V0003", "INV-A")["checking_balance"])
        p, ref = self.export(payment("ACH-9", [("INV-A", "1109.56"), ("INV-B", "100.00")]))
        self.assertEqual(ref["result"], "written", p.stderr)
        a = gb.check_bill(self.book, "V0003", "INV-A")
        b = gb.check_bill(self.book, "V0003", "INV-B")
        self.assertTrue(a["paid"])
        self.assertFalse(b["paid"])
        self.assertEqual(b["lot_balance"], "1009.56")
        self.assertEqual(Fraction(b["checking_balance"]), bank0 - Fraction("1209.56"))
        # the engine pays the rest of B as GnuCash would
        gb.engine_pay_bill(self.book, "V0003", "INV-B", amount="1009.56")
        self.assertTrue(gb.check_bill(self.book, "V0003", "INV-B")["paid"])

    def test_an_open_book_is_busy_and_nothing_is_written(self):
        gb.lock_book(self.book, hostname="ap-desk", pid=4242)
        tok = self.book_token()
        p, _ = self.export(two_line_bill(), check=False)
        self.assertEqual(p.returncode, 75, p.stderr)
        self.assertIn("GnuCash has the book open (on host ap-desk, process 4242); close it "
                      "there or wait", p.stderr)
        self.assertEqual(self.book_token(), tok)
        self.assertEqual(gb.check_bill(self.book, "V0003", "INV-5001")["count"], 0)
        gb.unlock_book(self.book)
        p, ref = self.export(two_line_bill())
        self.assertEqual(ref["result"], "written")
        # a bill found is found even while the book is open; a payment waits
        gb.lock_book(self.book)
        p, again = self.export(two_line_bill())
        self.assertEqual(again["result"], "found")
        p, _ = self.export(payment("CHK-1", [("INV-5001", "1109.56")]), check=False)
        self.assertEqual(p.returncode, 75, p.stderr)
        self.assertFalse(gb.check_bill(self.book, "V0003", "INV-5001")["paid"])

    def test_refusals_are_explained_and_write_nothing(self):
        inactive = [v["id"] for v in self.spec["vendors"] if not v["active"]][0]
        bad_account = two_line_bill()
        bad_account["lines"][1]["gl_account"] = "9999"
        placeholder = two_line_bill()
        placeholder["lines"][0]["gl_account"] = "Expenses"
        bad_tax = two_line_bill()
        bad_tax["lines"][0]["tax_code"] = "VAT 20%"
        item_only = two_line_bill()
        item_only["lines"][0] = {"item": "I0001", "quantity": "1", "unit_price": "1.00"}
        cases = [
            (two_line_bill(vendor="V9999"), "GnuCash has no vendor \"V9999\""),
            (bad_account, "line 2: GnuCash has no account \"9999\""),
            (placeholder, "account Expenses is a placeholder"),
            (bad_tax, "GnuCash has no tax table \"VAT 20%\""),
            (two_line_bill(vendor=inactive), "is inactive in GnuCash"),
            (two_line_bill(total="1109.57"), "total_mismatch: the invoice's total is 1109.57 "
                                             "but GnuCash computes 1109.56 USD"),
            (item_only, "GnuCash has no items"),
            (payment("CHK-1", [("NO-SUCH", "5.00")]), "has no bill numbered NO-SUCH"),
        ]
        tok = self.book_token()
        for doc, why in cases:
            p, _ = self.export(doc, check=False)
            self.assertEqual(p.returncode, 1, (why, p.stderr))
            self.assertIn(why, p.stderr)
        self.assertEqual(self.book_token(), tok, "a refused document changed the book")
        self.assertEqual(gb.check_bill(self.book, "V0003", "INV-5001")["count"], 0)
        # the counter did not move: the next bill is still 000003
        self.assertEqual(self.export(two_line_bill())[1]["number"], "000003")


if __name__ == "__main__":
    unittest.main()
