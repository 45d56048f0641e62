"""Exports with the real programs: invoices and payments posted through the
broker's API reach the demo ERP exactly once. Idempotency keys replay the
first answer; documents referring to what the synced lists lack wait On Hold
and go out by themselves after a sync brings it; rules block; business errors
fail with the ERP's sentence; passing causes retry with backoff; the agent
killed at random points while exporting hundreds of documents still writes
each exactly once."""
import json
import random
import sqlite3
import time

import test_engine
from harness import Case, wait_for

INVOICE = {"type": "invoice", "vendor": "V0000002", "number": "INV-1001", "date": "2024-05-01",
           "lines": [{"gl_account": "1010-00", "description": "Paper", "quantity": "2",
                      "unit_price": "10.00", "tax_code": "CA-LA", "division": "00"}],
           "total": "21.90"}
DONE = ("success", "failed", "uncertain", "on_hold", "blocked")


def invoice(number, **kw):
    return dict(INVOICE, number=number, **kw)


class ExportCase(Case):
    def setUp(self):
        super().setUp()
        self.world(rows=300, broker_extra=["--export-retry", "1"],
                   agent_extra=test_engine.FAST)
        self.blue = self.entity("BLUE")
        s, job = self.broker.api("POST", "/api/v1/syncs", self.token,
                                 {"entity": self.blue["id"], "mode": "full"})
        self.assertEqual(self.wait_job(job["id"], 60)["status"], "success")
        self.key = 0

    def post(self, docs, key=None, token=None, dry_run=None, expect=201):
        self.key += 1
        body = {"documents": docs}
        if dry_run is not None:
            body["dry_run"] = dry_run
        s, j = self.broker.api("POST", "/api/v1/entities/%d/exports" % self.blue["id"],
                               token or self.token, body,
                               headers={"Idempotency-Key": key or "k%d" % self.key})
        self.assertEqual(s, expect, j)
        return j

    def run_of(self, run_id, statuses=("success", "partial", "failed")):
        def ended():
            s, j = self.broker.api("GET", "/api/v1/exports/%d" % run_id, self.token)
            self.assertEqual(s, 200, j)
            return j if j["status"] in statuses else None
        return wait_for(ended, 30, interval=0.1, what="export run %d" % run_id)

    def doc(self, doc_id):
        s, j = self.broker.api("GET", "/api/v1/documents/%d" % doc_id, self.token)
        self.assertEqual(s, 200, j)
        return j

    def wait_doc(self, doc_id, statuses=DONE, timeout=30):
        return wait_for(lambda: (lambda d: d if d["status"] in statuses else None)(
            self.doc(doc_id)), timeout, interval=0.1, what="document %d" % doc_id)

    def erp_invoices(self):
        db = sqlite3.connect(self.erp, timeout=10)
        rows = db.execute("SELECT invoice_no, total, amount_paid, status FROM ap_invoices "
                          "ORDER BY invoice_id").fetchall() if db.execute(
            "SELECT 1 FROM sqlite_master WHERE name='ap_invoices'").fetchone() else []
        db.close()
        return rows


class Exports(ExportCase):
    def test_invoice_then_payment_exactly_once_with_idempotent_requests(self):
        pay = {"type": "payment", "vendor": "V0000002", "reference": "CHK-1",
               "date": "2024-05-03", "bank_account": "A", "amount": "21.90",
               "invoices": [{"number": "INV-1001", "amount": "21.90"}]}
        first = self.post([INVOICE, pay], key="batch-1")
        ids = [d["id"] for d in first["documents"]]
        self.assertEqual([d["status"] for d in first["documents"]], ["queued", "queued"])
        inv = self.wait_doc(ids[0])
        self.assertEqual(inv["status"], "success", json.dumps(inv))
        self.assertEqual((inv["erp"]["number"], inv["erp"]["state"]), ("AP000001", "posted"))
        self.assertEqual(self.wait_doc(ids[1])["status"], "success")
        self.assertEqual(self.erp_invoices(), [("INV-1001", "21.90", "21.90", "P")])
        run = self.run_of(first["run"])
        self.assertEqual((run["status"], run["documents"], run["document_ids"]),
                         ("success", 2, ids))
        self.assertEqual(run["log"][-1]["message"], "export run ended success: 2 of 2 "
                                                    "documents in the ERP")
        # the same request replays the first answer; another body under the key is refused
        self.assertEqual(self.post([INVOICE, pay], key="batch-1"), first)
        self.post([invoice("INV-9")], key="batch-1", expect=409)
        # the same invoice in a new request is recognised, never sent again
        again = self.post([INVOICE])["documents"][0]
        self.assertEqual((again["id"], again["duplicate"]), (ids[0], True))
        self.assertEqual(len(self.erp_invoices()), 1)
        s, j = self.broker.api("GET", "/api/v1/documents?entity=%d&status=success&type=invoice"
                               % self.blue["id"], self.token)
        self.assertEqual([d["id"] for d in j["documents"]], [ids[0]])

    def test_on_hold_until_a_sync_brings_what_it_lacks(self):
        held = self.post([invoice("INV-2001", vendor="VNEW0001")])["documents"][0]
        self.assertEqual(held["status"], "on_hold")
        self.assertIn("vendor VNEW0001 is not in the synced list", held["reason"])
        dry = self.post([invoice("INV-2002", vendor="V0000001")], dry_run=True, expect=200)
        self.assertIn("vendor V0000001 is inactive in the ERP", dry["documents"][0]["reason"])
        s, j = self.broker.api("GET", "/api/v1/documents?status=on_hold", self.token)
        self.assertEqual([d["id"] for d in j["documents"]], [held["id"]])  # dry run stored nothing
        time.sleep(1)
        db = sqlite3.connect(self.erp, timeout=10)
        db.execute("INSERT INTO vendors SELECT company_code, 'VNEW0001', 'New Vendor', address1, "
                   "address2, city, state, zip, phone, email, tax_id, terms_code, currency, 0, "
                   "'A', ?, ? FROM vendors WHERE company_code='BLUE' LIMIT 1",
                   (test_engine.erp_now(), test_engine.erp_now()))
        db.commit()
        db.close()
        time.sleep(0.5)
        s, job = self.broker.api("POST", "/api/v1/syncs", self.token,
                                 {"entity": self.blue["id"], "mode": "partial"})
        self.assertEqual(self.wait_job(job["id"], 60)["status"], "success")
        self.assertEqual(self.wait_doc(held["id"])["status"], "success")
        self.assertEqual(self.erp_invoices()[0][0], "INV-2001")

    def test_rules_block_and_release(self):
        admin = self.broker.user("acme", "admin@acme.test", "system_administrator")
        s, rule = self.broker.api("POST", "/api/v1/rules", admin,
                                  {"kind": "block_amount_above", "value": "1000"})
        self.assertEqual(s, 201, rule)
        s, _ = self.broker.api("POST", "/api/v1/rules", self.token,
                               {"kind": "block_vendor", "value": "V0000002"})
        self.assertEqual(s, 403)  # only a system administrator sets rules
        big = invoice("INV-3001", lines=[dict(INVOICE["lines"][0], unit_price="600.00")],
                      total=None)
        del big["total"]
        d = self.post([big])["documents"][0]
        self.assertEqual(d["status"], "blocked")
        self.assertIn("amount 1200.00 is above 1000", d["reason"])
        self.assertEqual(self.erp_invoices(), [])
        s, _ = self.broker.api("POST", "/api/v1/rules/%d/delete" % rule["id"], admin)
        self.assertEqual(s, 200)
        self.assertEqual(self.wait_doc(d["id"])["status"], "success")

    def test_errors_are_actionable_and_retries_wait(self):
        bad = self.post([invoice("INV-4001", total="99.99")])["documents"][0]
        d = self.wait_doc(bad["id"])
        self.assertEqual(d["status"], "failed")
        self.assertEqual(d["error"], {"code": "erp_error", "retryable": False})
        self.assertIn("total_mismatch: the demo ERP computes 21.90", d["reason"])
        # a run with a good and a bad document ends partial, naming the bad one
        mixed = self.post([invoice("INV-4003"), invoice("INV-4004", total="1.00")])
        run = self.run_of(mixed["run"])
        self.assertEqual(run["status"], "partial", json.dumps(run, indent=1))
        bad_id = mixed["documents"][1]["id"]
        self.assertTrue(any(l["message"].startswith("document %d, invoice INV-4004 of vendor "
                                                    "V0000002: failed: total_mismatch" % bad_id)
                            for l in run["log"]), run["log"])
        s, runs = self.broker.api("GET", "/api/v1/exports?entity=%d" % self.blue["id"],
                                  self.token)
        self.assertEqual(runs["runs"][0]["id"], mixed["run"])
        time.sleep(1.5)
        self.assertEqual(self.doc(bad["id"])["attempts"], 1)  # business errors are not retried
        # by hand: posted in the ERP by someone, marked so
        s, m = self.broker.api("POST", "/api/v1/documents/%d/mark-exported" % bad["id"],
                               self.token, {"erp_id": "MANUAL-1"})
        self.assertEqual((s, m["status"], m["marked_by_hand"], m["erp"]["id"]),
                         (200, "success", True, "MANUAL-1"))
        # a locked company fails for a passing cause: retried by itself
        db = sqlite3.connect(self.erp, timeout=10)
        db.execute("INSERT INTO locks VALUES('BLUE', 'maria', 'period close', 'now')")
        db.commit()
        d = self.post([invoice("INV-4002")])["documents"][0]
        d = self.wait_doc(d["id"], ("failed",))
        self.assertTrue(d["error"]["retryable"], d)
        self.assertIn("locked by user 'maria'", d["reason"])
        self.assertTrue(d["next_retry_at"])
        db.execute("DELETE FROM locks")
        db.commit()
        db.close()
        d = self.wait_doc(d["id"], ("success",))
        self.assertGreaterEqual(d["attempts"], 2)
        self.assertEqual([r[0] for r in self.erp_invoices()], ["INV-4003", "INV-4002"])

    def test_roles_and_tenants(self):
        viewer = self.broker.user("acme", "look@acme.test", "viewer")
        self.post([invoice("INV-5001")], token=viewer, expect=403)
        s, _ = self.broker.api("GET", "/api/v1/documents", viewer)
        self.assertEqual(s, 200)
        d = self.post([invoice("INV-5002")])["documents"][0]
        self.broker.tenant("other")
        other = self.broker.user("other", "x@other.test", "system_administrator")
        s, _ = self.broker.api("GET", "/api/v1/documents/%d" % d["id"], other)
        self.assertEqual(s, 404)
        s, j = self.broker.api("GET", "/api/v1/documents", other)
        self.assertEqual(j["documents"], [])
        s, _ = self.broker.api("POST", "/api/v1/entities/%d/exports" % self.blue["id"], other,
                               {"documents": [INVOICE]}, headers={"Idempotency-Key": "x"})
        self.assertEqual(s, 404)
        s, j = self.broker.api("POST", "/api/v1/entities/%d/exports" % self.blue["id"],
                               self.token, {"documents": [INVOICE]})
        self.assertEqual((s, j["error"]["code"]), (400, "idempotency_key_required"))
        s, j = self.broker.api("POST", "/api/v1/entities/%d/exports" % self.blue["id"],
                               self.token, {"documents": [{"type": "invoice"}]},
                               headers={"Idempotency-Key": "bad"})
        self.assertEqual((s, j["error"]["code"]), (400, "bad_document"))


class ImportedPayments(ExportCase):
    """Payments made in the ERP arrive as the payments list, and each exported
    invoice shows the ERP's payments of it."""

    def test_payments_made_in_the_erp_show_on_the_invoice(self):
        a, b = self.post([invoice("INV-6001"), invoice("INV-6002")])["documents"]
        for d in (a, b):
            self.assertEqual(self.wait_doc(d["id"])["status"], "success")
        pay = {"type": "payment", "vendor": "V0000002", "reference": "CHK-77",
               "date": "2024-05-03", "bank_account": "A", "amount": "21.90",
               "invoices": [{"number": "INV-6001", "amount": "21.90"}]}
        self.assertEqual(self.wait_doc(self.post([pay])["documents"][0]["id"])["status"],
                         "success")
        # someone pays part of the other invoice by hand, in the ERP
        db = sqlite3.connect(self.erp, timeout=10)
        db.execute("INSERT INTO ap_payments(company_code, payment_no, vendor_no, reference, "
                   "payment_date, bank_code, method, amount, status, created_at, modified_at) "
                   "VALUES('BLUE', 'PY900001', 'V0000002', 'WIRE-5', '2024-05-04', 'A', 'wire', "
                   "'10.00', 'P', ?1, ?1)", (test_engine.erp_now(),))
        db.execute("INSERT INTO ap_payment_lines SELECT p.payment_id, i.invoice_id, '10.00' FROM "
                   "ap_payments p, ap_invoices i WHERE p.payment_no='PY900001' AND "
                   "i.invoice_no='INV-6002'")
        db.commit()
        db.close()
        time.sleep(0.5)
        s, job = self.broker.api("POST", "/api/v1/syncs", self.token,
                                 {"entity": self.blue["id"], "mode": "partial"})
        job = self.wait_job(job["id"], 60)
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        pays = self.items(self.blue["id"], "payments")
        self.assertEqual(sorted(p["data"]["reference"] for p in pays.values()),
                         ["CHK-77", "WIRE-5"])
        self.assertEqual([(p["reference"], p["amount"]) for p in self.doc(a["id"])["payments"]],
                         [("CHK-77", "21.90")])
        self.assertEqual([(p["reference"], p["amount"], p["date"])
                          for p in self.doc(b["id"])["payments"]],
                         [("WIRE-5", "10.00", "2024-05-04")])


class ExactlyOnceUnderKills(ExportCase):
    DOCS = 200
    KILLS = 25

    def test_agent_killed_at_random_points_writes_each_document_once(self):
        rnd = random.Random(20261130)
        docs = [invoice("K-%04d" % i) for i in range(self.DOCS)]
        ids = []
        per_round = self.DOCS // self.KILLS
        for i in range(0, self.DOCS, per_round):
            # documents arrive, the agent starts writing them, and dies at a
            # random point: before, during or after a write or its report
            ids += [d["id"] for d in self.post(docs[i:i + per_round])["documents"]]
            time.sleep(rnd.uniform(0.0, 0.06))
            self.agent.kill9()
            self.agent.start(self.erp, test_engine.FAST)
        final = {}
        deadline = time.time() + 120
        while time.time() < deadline and len(final) < len(ids):
            s, j = self.broker.api("GET", "/api/v1/documents?limit=500", self.token)
            final = {d["id"]: d for d in j["documents"] if d["status"] in DONE}
            time.sleep(0.3)
        self.assertEqual(sorted(final), sorted(ids))
        self.assertEqual({d["status"] for d in final.values()}, {"success"})
        rows = self.erp_invoices()
        self.assertEqual(len(rows), self.DOCS)
        self.assertEqual(sorted(r[0] for r in rows), sorted(d["number"] for d in docs))
