"""Invoices and payments written into a real Tryton 6.0 through its JSON-RPC by
`apsync-agent export`, exactly once: a bill is posted once and found after;
a draft left by a crash between create and post is finished, not doubled;
payments (whole and partial) are made once through Tryton's pay wizard and
found by vendor + reference; refusals name what is wrong and post nothing;
a stopped Tryton "does not answer" and nothing is written; company 2 is
written by switching the user's company as the Tryton client does.

One trytond (tests/fixtures/tryton) serves the class; each test uses its
own invoice numbers and references."""
import datetime
import decimal
import json
import os
import shutil
import sys
import tempfile
import unittest

from harness import AGENT, ROOT, Case, run

sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "tryton"))
import tryton  # noqa: E402

OK, WHY = tryton.available()
TODAY = datetime.date.today().isoformat()
ACME = "Acme Steel Supply"


def bill(number, vendor="3", total="73.71", **kw):
    """A 2-line bill: a product with its 8.25 % tax, and a GL line with a
    division. 100 x 0.45 = 45.00 + 3.71 tax, + 25.00 freight = 73.71."""
    doc = {"type": "invoice", "vendor": vendor, "number": number, "date": TODAY,
           "description": "Supplies", "currency": "USD",
           "lines": [{"item": "P-1001", "quantity": "100", "unit_price": "0.45", "unit": "u",
                      "tax_code": "1", "warehouse": "WH"},
                     {"gl_account": "5100", "description": "Freight", "quantity": "1",
                      "unit_price": "25.00", "division": "100"}],
           "total": total}
    doc.update(kw)
    return doc


def payment(reference, paid, vendor="3", bank="1"):
    """A payment of {invoice number: amount}."""
    total = sum(decimal.Decimal(a) for a in paid.values())
    return {"type": "payment", "vendor": vendor, "reference": reference, "date": TODAY,
            "bank_account": bank, "method": "check", "amount": str(total),
            "invoices": [{"number": n, "amount": a} for n, a in paid.items()]}


@unittest.skipUnless(OK, WHY)
class TrytonExports(Case):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="apsync-tryton-exports-")
        cls.tryton = tryton.Tryton(os.path.join(cls.dir, "tryton"))
        try:
            cls.tryton.start()
        except BaseException:
            cls.tryton.stop()
            shutil.rmtree(cls.dir, ignore_errors=True)
            raise
        cls.password = os.path.join(cls.dir, "admin.pass")
        with open(cls.password, "w") as f:
            f.write(cls.tryton.password + "\n")

    @classmethod
    def tearDownClass(cls):
        cls.tryton.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.ndoc = 0
        self.use_company(1)

    def use_company(self, company):
        """The admin user's current company, whatever the agent left it on
        (the fixture's use_company trusts its cached context)."""
        t = self.tryton
        t.rpc("model.res.user.set_preferences", {"company": company})
        t.context = None
        t.context = t.rpc("model.res.user.get_preferences", True)

    def export(self, doc, company=1, url=None, password=None, lookup_only=False):
        """Runs apsync-agent export: (exit code, printed JSON or None, stderr)."""
        self.ndoc += 1
        path = os.path.join(self.tmp, "doc-%d.json" % self.ndoc)
        with open(path, "w") as f:
            json.dump(doc, f)
        args = [AGENT, "export", "--erp", "tryton:" + self.tryton.db_path,
                "--erp-url", url or self.tryton.url, "--erp-user", "admin",
                "--erp-password-file", password or self.password, "--company", str(company),
                "--file", path] + (["--lookup-only"] if lookup_only else [])
        p = run(args, check=False, timeout=120)
        out = json.loads(p.stdout) if p.returncode == 0 else None
        return p.returncode, out, p.stderr

    def written(self, doc, company=1, result="written"):
        code, out, err = self.export(doc, company)
        self.assertEqual(code, 0, err)
        self.assertEqual(out["result"], result, out)
        return out

    def refused(self, doc, *words, company=1):
        code, out, err = self.export(doc, company)
        self.assertEqual(code, 1, (out, err))
        for w in words:
            self.assertIn(w, err)
        return err

    def invoices(self, number):
        return self.tryton.supplier_invoices(reference=number)

    def payment_moves(self, reference):
        return self.tryton.search_read("account.move", [("description", "=", reference)],
                                       ["id", "origin"])

    def test_bill_is_posted_once_then_found(self):
        out = self.written(bill("INV-1001"))
        rows = self.invoices("INV-1001")
        self.assertEqual(len(rows), 1, rows)
        inv = rows[0]
        self.assertEqual((inv["state"], inv["untaxed_amount"], inv["tax_amount"],
                          inv["total_amount"]), ("posted", "70.00", "3.71", "73.71"))
        self.assertEqual(inv["invoice_date"], TODAY)
        self.assertEqual((out["id"], out["number"], out["state"]),
                         (str(inv["id"]), inv["number"], "posted"))
        self.assertTrue(inv["number"].startswith("AM"), inv)
        self.assertEqual(out["link"], "tryton://127.0.0.1:%d/apsync/model/account.invoice/%d"
                         % (self.tryton.port, inv["id"]))
        # What the client's on_change would have filled in, and the division.
        c1 = self.tryton.company(0)
        lines = self.tryton.search_read("account.invoice.line", [("invoice", "=", inv["id"])],
                                        ["product", "account", "taxes", "analytic_accounts"],
                                        order=[("id", "ASC")])
        self.assertEqual([(x["account"], x["taxes"]) for x in lines],
                         [(c1["expense_account"], [c1["tax"]["id"]]),
                          (c1["accounts"]["5100"], [])])
        entries = self.tryton.search_read("analytic.account.entry",
                                          [("id", "in", lines[1]["analytic_accounts"])],
                                          ["account"])
        self.assertEqual([e["account"] for e in entries], [c1["departments"]["100"]])

        again = self.written(bill("INV-1001"), result="found")
        self.assertEqual((again["id"], again["number"], again["state"]),
                         (out["id"], out["number"], "posted"))
        self.assertEqual(len(self.invoices("INV-1001")), 1)

    def test_a_draft_left_by_a_crash_is_finished_not_doubled(self):
        # What a crash between create and post leaves: the natural key, unposted.
        draft = self.tryton.create_supplier_invoice(ACME, "INV-2001", [
            {"product": "P-1001", "quantity": "100", "unit_price": "0.45"},
            {"account": "5100", "description": "Freight", "quantity": "1",
             "unit_price": "25.00", "taxes": [], "division": "100"}], post=False,
            invoice_date=datetime.date.today())
        self.assertEqual(draft["state"], "draft")
        code, out, err = self.export(bill("INV-2001"), lookup_only=True)
        self.assertEqual(code, 3, (out, err))  # not written until posted
        out = self.written(bill("INV-2001"))
        rows = self.invoices("INV-2001")
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual((rows[0]["id"], rows[0]["state"], rows[0]["total_amount"]),
                         (draft["id"], "posted", "73.71"))
        self.assertEqual(out["id"], str(draft["id"]))
        self.written(bill("INV-2001"), result="found")

    def test_payment_pays_once_and_is_found(self):
        self.written(bill("INV-3001"))
        pay = payment("CHK-3001", {"INV-3001": "73.71"})
        out = self.written(pay)
        inv = self.invoices("INV-3001")[0]
        self.assertEqual(inv["state"], "paid")
        self.assertEqual(decimal.Decimal(inv["amount_to_pay"]), 0)
        moves = self.payment_moves("CHK-3001")
        self.assertEqual([(str(m["id"]), m["origin"]) for m in moves],
                         [(out["id"], "account.invoice,%d" % inv["id"])])
        self.assertEqual(out["state"], "paid")
        self.assertTrue(out["link"].endswith("/model/account.move/" + out["id"]), out)

        again = self.written(pay, result="found")
        self.assertEqual((again["id"], again["state"]), (out["id"], "paid"))
        self.assertEqual(len(self.payment_moves("CHK-3001")), 1)
        # Another payment of it is refused: it is paid.
        self.refused(payment("CHK-3002", {"INV-3001": "1.00"}), "INV-3001", "already paid")
        self.assertEqual(self.payment_moves("CHK-3002"), [])

    def test_partial_payments(self):
        for n in ("INV-4001", "INV-4002"):
            self.tryton.create_supplier_invoice(ACME, n, [
                {"account": "5100", "description": "Freight", "quantity": "1",
                 "unit_price": "100.00", "taxes": []}], invoice_date=datetime.date.today())
        # One payment: part of one invoice, all of another.
        out = self.written(payment("ACH-4001", {"INV-4001": "30.00", "INV-4002": "100.00"}))
        self.assertEqual(out["state"], "posted")  # not every invoice is paid
        first, second = self.invoices("INV-4001")[0], self.invoices("INV-4002")[0]
        self.assertEqual((first["state"], first["amount_to_pay"]), ("posted", "70.00"))
        self.assertEqual((second["state"], decimal.Decimal(second["amount_to_pay"])),
                         ("paid", 0))
        self.written(payment("ACH-4001", {"INV-4001": "30.00", "INV-4002": "100.00"}),
                     result="found")
        self.assertEqual(len(self.payment_moves("ACH-4001")), 2)
        self.refused(payment("ACH-4002", {"INV-4001": "70.01"}), "more than the 70.00 left")
        self.written(payment("ACH-4003", {"INV-4001": "70.00"}))
        self.assertEqual(self.invoices("INV-4001")[0]["state"], "paid")

    def test_refusals_name_what_is_wrong_and_post_nothing(self):
        self.refused(bill("INV-5001", vendor="NOPE"), "vendor NOPE is not in Tryton")
        doc = bill("INV-5002")
        doc["lines"][1]["gl_account"] = "9999"
        self.refused(doc, "GL account 9999 (line 2) is not in Tryton")
        self.refused(bill("INV-5003", total="80.00"), "total_mismatch", "73.71", "80.00",
                     "nothing was posted")
        self.refused(bill("INV-5004", vendor="9"), "vendor 9 is inactive")
        for n in ("INV-5001", "INV-5002", "INV-5003", "INV-5004"):
            self.assertEqual(self.invoices(n), [], n)  # not even a draft
        self.refused(payment("CHK-5001", {"INV-5999": "1.00"}),
                     "invoice INV-5999 of vendor 3 is not in Tryton")
        bad = os.path.join(self.tmp, "wrong.pass")
        with open(bad, "w") as f:
            f.write("not-the-password\n")
        code, out, err = self.export(bill("INV-5005"), password=bad)
        self.assertEqual(code, 1, (out, err))
        self.assertIn("refused the login of user \"admin\"", err)
        self.assertNotIn("not-the-password", err)
        self.assertEqual(self.invoices("INV-5005"), [])

    def test_company_2_through_the_users_preferences(self):
        doc = {"type": "invoice", "vendor": "7", "number": "INV-6001", "date": TODAY,
               "lines": [{"item": "S-2002", "quantity": "2", "unit_price": "110.00"},
                         {"item": "P-1003", "quantity": "10", "unit_price": "1.15",
                          "division": "200"}],
               "total": "232.22"}  # 220.00 service + 11.50 goods taxed 6.25 % (0.72)
        out = self.written(doc, company=2)
        self.assertTrue(out["number"].startswith("AS"), out)
        self.written(doc, company=2, result="found")
        try:
            self.use_company(2)
            rows = self.invoices("INV-6001")
        finally:
            self.use_company(1)
        self.assertEqual([(r["company"], r["state"], r["total_amount"]) for r in rows],
                         [(2, "posted", "232.22")])
        self.assertEqual(self.invoices("INV-6001"), [])  # company 1 has none
        # ... and back on company 1 for the next document.
        self.written(bill("INV-6002"), company=1)
        self.assertEqual(len(self.invoices("INV-6002")), 1)


@unittest.skipUnless(OK, WHY)
class TrytonStopped(Case):
    def test_a_stopped_tryton_does_not_answer_and_nothing_is_written(self):
        t = tryton.Tryton(os.path.join(self.tmp, "tryton"))
        self.addCleanup(t.stop)
        t.start()
        url = t.url
        t.stop()
        password = os.path.join(self.tmp, "admin.pass")
        with open(password, "w") as f:
            f.write("admin\n")
        path = os.path.join(self.tmp, "bill.json")
        with open(path, "w") as f:
            json.dump(bill("INV-7001"), f)
        p = run([AGENT, "export", "--erp", "tryton:" + t.db_path, "--erp-url", url,
                 "--erp-user", "admin", "--erp-password-file", password, "--company", "1",
                 "--file", path], check=False)
        self.assertIn(p.returncode, (1, 75), p.stderr)
        self.assertIn("does not answer", p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertEqual(t.sql("SELECT count(*) AS n FROM account_invoice WHERE reference = ?",
                               ("INV-7001",)), [{"n": 0}])


if __name__ == "__main__":
    unittest.main()
