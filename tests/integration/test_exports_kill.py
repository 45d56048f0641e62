"""Exactly once under kills, against real ERPs: the agent SIGKILLed at seeded
random points while it exports documents, started again each time, and every
document still ends "success" and is in the ERP exactly once.

- GnuCash (gnucash:BOOK, a book made by GnuCash's engine): 300 bills across
  the book's vendors with GL account lines (some taxed) and 60 payments of
  them (whole, partial, two bills at once), posted in 160 rounds through the
  broker's API, the agent killed after each round. GnuCash's engine then
  reads the book once (gnucash_book.audit_bills): each bill once, posted at
  its total, each payment applied once to the bills it names, A/P and the
  bank account moved by exactly the documents' amounts.
- Tryton (tryton:DB, a real trytond, writes through its JSON-RPC): 40
  invoices and 10 payments, the agent killed 50 times. A write takes about a
  second there (create, taxes, validate, post; the pay wizard). Tryton then
  shows each invoice once, posted (or paid) at its total, and each payment
  made once.

Kills land inside writes on purpose: documents are sent faster than the agent
finishes them, and most kills follow the agent's log (a document received or
done, its login to Tryton) by a seeded random delay of the order of one
write. A kill "interrupted a write" when the agent's journal, read after the
kill, has a document in state "writing": its write to the ERP had begun and
its result was not journaled. The tests assert that many kills did (payments
among them), and that some retries found the document already written
("found in the ERP, not written again"), so that a pass is not vacuous.

Also: a write cut short in mid-COMMIT leaves a hot journal next to the book,
which the agent's read-only open must roll back rather than refuse."""
import datetime
import decimal
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
import unittest
from fractions import Fraction

from harness import AGENT, ROOT, SLOW, Agent, Broker, Case, run

sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "gnucash"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "tryton"))
import gnucash_book as gb  # noqa: E402
import tryton  # noqa: E402

FAST = ["--cursor-lag", "300", "--cursor-overlap", "60000", "--erp-retry", "200"]
DONE = ("success", "failed", "uncertain", "on_hold", "blocked")
FOUND = "(found in the ERP, not written again)"
TRYTON_OK, TRYTON_WHY = tryton.available()


def cents(x):
    """A Fraction of whole cents as a 2-place decimal string."""
    assert (x * 100).denominator == 1, x
    return str((decimal.Decimal(x.numerator) / x.denominator).quantize(decimal.Decimal("0.01")))


def round_half_up(x):
    """A Fraction rounded to cents, halves away from zero (GnuCash's rule)."""
    return Fraction(int(x * 100 + Fraction(1, 2)), 100)


class KillLoop(Case):
    """A broker, an enrolled agent on a real ERP, and the kill loop."""

    SEED = 0

    def start_world(self, erp, extra):
        self.broker = Broker(self, extra=["--export-retry", "1"]).start()
        self.broker.tenant("acme")
        self.token = self.broker.user("acme", "ap@acme.test", "invoice_exporter")
        self.agent = Agent(self, self.broker)
        self.agent.enroll(self.broker.code("acme", "ACME-SYNC"))
        self.erp_arg, self.erp_extra = erp, list(extra)
        self.agent.start(erp, FAST + self.erp_extra)
        self.wait_online()
        self.key = 0

    def full_sync(self, entity):
        """Syncs the lists first, so documents naming them are queued, not On Hold."""
        job = self.wait_job(self.sync(entity["id"])["id"], 120)
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))

    def post(self, entity, docs):
        self.key += 1
        s, j = self.broker.api("POST", "/api/v1/entities/%d/exports" % entity["id"],
                               self.token, {"documents": docs},
                               headers={"Idempotency-Key": "kill-%d" % self.key})
        self.assertEqual(s, 201, j)
        for d in j["documents"]:
            self.assertEqual(d["status"], "queued", d)
        return [d["id"] for d in j["documents"]]

    def journal(self):
        """The agent's write journal (the agent must not be running):
        {doc: (state, updated_at, type)}."""
        db = sqlite3.connect(os.path.join(self.agent.state, "state.db"), timeout=10)
        try:
            return {d: (s, u, t) for d, s, u, t in
                    db.execute("SELECT doc, state, updated_at, type FROM exports")}
        finally:
            db.close()

    def next_line(self, offset, mark, timeout):
        """Waits until the agent's log, past offset, has a line with mark;
        False if it does not within timeout."""
        deadline = time.monotonic() + timeout * SLOW
        with open(self.agent.proc.log_path, "rb") as f:
            f.seek(offset)
            seen = b""
            while time.monotonic() < deadline:
                seen += f.read()
                if mark in seen:
                    return True
                time.sleep(0.0005)
        return False

    def kill_loop(self, rounds, when, ids_out):
        """rounds: (entity, documents) posted one per round; after each, the
        agent is killed and started again. when(rnd) says when to kill:
        (None, s): s seconds after the agent's last start; (MARK, s): s
        seconds after the agent logs a line with MARK (bytes) since its last
        start, e.g. a document received or done, or its login to the ERP: the
        kill then falls among the next documents' lookups and writes.
        Returns the kill statistics, from the journal read after each kill:
        busy (documents were in progress) and in_write (a write had begun,
        its result not journaled)."""
        rnd = self.rnd
        stats = {"kills": 0, "busy": 0, "in_write": 0, "interrupted": set(),
                 "payments": set()}
        started = time.monotonic()
        offset = os.path.getsize(self.agent.proc.log_path)
        for entity, docs in rounds:
            if docs:
                ids_out += self.post(entity, docs)
            mark, delay = when(rnd)
            if mark is None:
                time.sleep(max(0.0, delay - (time.monotonic() - started)))
            elif self.next_line(offset, mark, 10):
                time.sleep(delay)
            self.agent.kill9()
            stats["kills"] += 1
            j = self.journal()
            writing = {(d, u) for d, (s, u, _t) in j.items() if s == "writing"}
            if writing or any(s == "intent" for s, _u, _t in j.values()):
                stats["busy"] += 1
            new = writing - stats["interrupted"]
            if new:
                stats["in_write"] += 1
                stats["interrupted"] |= new
                stats["payments"] |= {d for d, _u in new if j[d][2] == "payment"}
            offset = os.path.getsize(self.agent.proc.log_path)
            self.agent.start(self.erp_arg, FAST + self.erp_extra)
            started = time.monotonic()
        stats["interrupted"] = len(stats["interrupted"])
        stats["payments"] = len(stats["payments"])
        return stats

    def wait_final(self, ids, timeout):
        """Every document's final state, by id."""
        want = set(ids)
        final = {}
        deadline = time.time() + timeout
        while time.time() < deadline:
            final, before = {}, 0
            while True:
                s, j = self.broker.api("GET", "/api/v1/documents?limit=500%s" % (
                    "&before=%d" % before if before else ""), self.token)
                self.assertEqual(s, 200, j)
                for d in j["documents"]:
                    # a failure that passes (ERP busy, unreachable) is retried
                    if d["id"] in want and d["status"] in DONE and not (
                            d["status"] == "failed" and d["error"]["retryable"]):
                        final[d["id"]] = d
                if len(j["documents"]) < 500:
                    break
                before = min(d["id"] for d in j["documents"])
            if len(final) == len(want):
                return final
            time.sleep(0.3)
        s, j = self.broker.api("GET", "/api/v1/documents?limit=500", self.token)
        stuck = [d for d in j["documents"] if d["id"] in want and d["id"] not in final]
        self.fail("%d documents not done after %d s, e.g. %s; agent log tail:\n%s" % (
            len(want) - len(final), timeout, json.dumps(stuck[:3], indent=1),
            self.agent.proc.text()[-3000:]))

    def log_counts(self):
        text = self.agent.proc.text()
        return {"found": text.count(FOUND), "uncertain": text.count(": uncertain"),
                "failed": text.count("): failed")}

    def report(self, name, **kv):
        print("# %s: %s" % (name, ", ".join("%s %s" % (k, v) for k, v in kv.items())),
              flush=True)


class GnucashKills(KillLoop):
    BILLS = 300
    PAYMENTS = 60
    KILLS = 160
    SEED = 20261201

    @classmethod
    def setUpClass(cls):
        if not gb.available():
            raise unittest.SkipTest("GnuCash 4.13 and python3-gnucash are not installed "
                                    "(sh packaging/deps.sh gnucash)")

    def setUp(self):
        super().setUp()
        self.rnd = random.Random(self.SEED)
        self.book = os.path.join(self.tmp, "books.gnucash")
        self.spec = gb.make_book(self.book)
        db = gb._connect_ro(self.book)
        self.guid = db.execute("SELECT guid FROM books").fetchone()[0]
        db.close()

    def bills_and_payments(self):
        """BILLS bills (vendor, number, lines, expected total) and PAYMENTS
        payments of some of them, from the seed."""
        rnd = self.rnd
        vendors = [v["id"] for v in self.spec["vendors"] if v["active"]]
        accounts = ["6100", "6200", "6300", "6400", "6500", "6600", "Expenses:Travel"]
        taxes = {None: 0, gb.SALES_TAX: Fraction("8.25"), "Use Tax 6.5%": Fraction("6.5")}
        bills = []
        for i in range(self.BILLS):
            lines, pretax, tax = [], Fraction(0), Fraction(0)
            for k in range(rnd.randint(1, 4)):
                qty = rnd.choice(["1", "2", "3", "5", "1.5", "12"])
                price = "%d.%02d" % (rnd.randint(1, 900), rnd.randint(0, 99))
                code = rnd.choice(list(taxes))
                ln = {"gl_account": rnd.choice(accounts), "description": "line %d" % (k + 1),
                      "quantity": qty, "unit_price": price}
                if code:
                    ln["tax_code"] = code
                lines.append(ln)
                x = Fraction(qty) * Fraction(price)
                pretax += round_half_up(x)
                tax += x * taxes[code] / 100   # one tax account: rounded once
            total = pretax + round_half_up(tax)
            bills.append({"type": "invoice", "vendor": rnd.choice(vendors),
                          "number": "KB-%04d" % i,
                          "date": "2024-%02d-%02d" % (rnd.randint(2, 5), rnd.randint(1, 28)),
                          "description": "kill test bill %d" % i, "lines": lines,
                          "total": cents(total), "_total": total})
        # Payments: each pays one bill whole or in part, or two bills of a
        # vendor; no bill is paid by two payments.
        unpaid = list(range(self.BILLS))
        rnd.shuffle(unpaid)
        payments = []
        while len(payments) < self.PAYMENTS:
            i = unpaid.pop()
            paid = [(i, bills[i]["_total"] if rnd.random() < 0.7 else
                     round_half_up(bills[i]["_total"] * Fraction(rnd.randint(10, 90), 100)))]
            mate = [j for j in unpaid if bills[j]["vendor"] == bills[i]["vendor"]]
            if mate and rnd.random() < 0.3:
                unpaid.remove(mate[0])
                paid.append((mate[0], bills[mate[0]]["_total"]))
            payments.append({"type": "payment", "vendor": bills[i]["vendor"],
                             "reference": "PK-%04d" % len(payments), "date": "2024-06-15",
                             "bank_account": "1010", "method": "check",
                             "amount": cents(sum(a for _j, a in paid)),
                             "invoices": [{"number": bills[j]["number"], "amount": cents(a)}
                                          for j, a in paid],
                             "_paid": paid})
        return bills, payments

    def test_agent_killed_while_exporting_writes_each_document_once(self):
        t0 = time.time()
        self.start_world("gnucash:" + self.book, [])
        ent = self.entity(self.guid)   # the book is one company, coded by its GUID
        self.assertEqual(ent["name"], "books")
        self.full_sync(ent)
        before = gb.audit_bills(self.book)
        bills, payments = self.bills_and_payments()
        strip = lambda d: {k: v for k, v in d.items() if not k.startswith("_")}  # noqa: E731
        # Rounds: bills spread over the rounds; a payment goes out two rounds
        # after the last bill it pays (the journal keeps documents in order,
        # so this is not needed for correctness, only to mix them).
        where = {}
        rounds = []
        for r in range(self.KILLS):
            some = bills[r * self.BILLS // self.KILLS:(r + 1) * self.BILLS // self.KILLS]
            for b in some:
                where[b["number"]] = r
            rounds.append([ent, [strip(b) for b in some]])
        for p in payments:
            r = max(where[inv["number"]] for inv in p["invoices"]) + 2
            rounds[min(r, len(rounds) - 1)][1].append(strip(p))
        ids = []
        # GnuCash posts a bill in about 5 ms (four times that under ASan,
        # SLOW): most kills follow the agent's log closely, so that some land
        # after a commit and before the journal says done; some come at any
        # time after a start
        stats = self.kill_loop(
            rounds, lambda rnd: (b"agent: document ", rnd.uniform(0, 0.015 * SLOW))
            if rnd.random() < 0.9 else (None, rnd.uniform(0, 0.3)), ids)
        t_kills = time.time() - t0
        final = self.wait_final(ids, 180)
        logs = self.log_counts()
        after = gb.audit_bills(self.book)
        self.report("gnucash", documents=len(ids), kills=stats["kills"],
                    kills_while_exporting=stats["busy"], kills_inside_a_write=stats["in_write"],
                    payments_cut=stats["payments"], found_on_retry=logs["found"],
                    seconds="%.0f (kill loop %.0f)" % (time.time() - t0, t_kills))

        # every document succeeded, and says which GnuCash record it is
        self.assertEqual(len(final), self.BILLS + self.PAYMENTS)
        bad = [d for d in final.values() if d["status"] != "success"]
        self.assertEqual(bad, [], json.dumps(bad[:5], indent=1))
        self.assertEqual(logs["uncertain"], 0)
        by_key = {(d["vendor"], d.get("number") or d.get("reference")): d
                  for d in final.values()}

        # the engine: each bill once, posted at its total, paid as exported
        self.assertEqual(len(after["bills"]), len(before["bills"]) + self.BILLS)
        paid = {}
        for p in payments:
            for j, a in p["_paid"]:
                paid[bills[j]["number"]] = (p["reference"], a)
        for b in bills:
            got = after["bills"].get("%s|%s" % (b["vendor"], b["number"]), [])
            self.assertEqual(len(got), 1, (b["number"], got))
            g = got[0]
            total = b["_total"]
            ref, amount = paid.get(b["number"], (None, Fraction(0)))
            self.assertEqual((g["posted"], g["total"], g["posted_amount"]),
                             (True, cents(total), cents(total)), b["number"])
            self.assertEqual(g["payments"], [[ref, cents(amount)]] if ref else [], b["number"])
            self.assertEqual(g["lot_balance"], cents(total - amount), b["number"])
            self.assertEqual(g["paid"], amount == total, b["number"])
            self.assertEqual(by_key[(b["vendor"], b["number"])]["erp"]["number"], g["id"])
        for p in payments:
            got = after["payments"].get("%s|%s" % (p["vendor"], p["reference"]), [])
            self.assertEqual(len(got), 1, (p["reference"], got))
            self.assertEqual((got[0]["amount"], got[0]["bank"]),
                             (p["amount"], gb.CHECKING_PATH), p["reference"])
            self.assertEqual(sorted(got[0]["bills"]), sorted(
                [after["bills"]["%s|%s" % (p["vendor"], inv["number"])][0]["id"], inv["amount"]]
                for inv in p["invoices"]), p["reference"])
        self.assertEqual(len(after["payments"]), len(before["payments"]) + self.PAYMENTS)
        billed = sum(b["_total"] for b in bills)
        out = sum(Fraction(p["amount"]) for p in payments)
        self.assertEqual(Fraction(after["ap_balance"]),
                         Fraction(before["ap_balance"]) + billed - out)
        self.assertEqual(Fraction(after["checking_balance"]),
                         Fraction(before["checking_balance"]) - out)

        # the kills really fell inside writes, and some retries found the
        # document already written
        self.assertGreaterEqual(stats["kills"], 100)
        self.assertGreaterEqual(stats["busy"], 100, stats)
        self.assertGreaterEqual(stats["in_write"], 40, stats)
        self.assertGreaterEqual(stats["payments"], 3, stats)
        self.assertGreaterEqual(logs["found"], 1, logs)

    def test_a_write_cut_short_is_rolled_back_when_the_agent_opens_the_book(self):
        """A writer killed in mid-COMMIT (the agent, or GnuCash) leaves a hot
        journal and some of its pages in the book. Only a connection that may
        write can roll that back: the agent's read-only open must not refuse
        the book for ever ("attempt to write a readonly database")."""
        lists = gb.read_lists(self.book)
        cut = ("import os, sqlite3, sys\n"
               "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
               "con.execute('PRAGMA cache_size = 1')\n"   # pages reach the book before COMMIT
               "con.execute('BEGIN IMMEDIATE')\n"
               "con.execute(\"UPDATE vendors SET name = name || ' (cut short)'\")\n"
               "con.execute(\"UPDATE slots SET string_val = string_val || ' (cut short)' "
               "WHERE string_val IS NOT NULL\")\n"
               "os._exit(0)\n")
        subprocess.run([sys.executable, "-c", cut, self.book], check=True, timeout=60)
        self.assertTrue(os.path.exists(self.book + "-journal"))
        out = run([AGENT, "erp", "--erp", "gnucash:" + self.book]).stdout
        self.assertIn("company %s: books (USD)" % self.guid, out)
        self.assertFalse(os.path.exists(self.book + "-journal"))
        self.assertEqual(gb.read_lists(self.book), lists)


@unittest.skipUnless(TRYTON_OK, TRYTON_WHY)
class TrytonKills(KillLoop):
    INVOICES = 40
    FIRST = 14          # invoices sent before the payments, which pay some of them
    PAYMENTS = 10
    KILLS = 50
    SEED = 20261202

    def setUp(self):
        super().setUp()
        self.rnd = random.Random(self.SEED)
        self.tryton = tryton.Tryton(os.path.join(self.tmp, "tryton"))
        self.addCleanup(self.tryton.stop)
        self.tryton.start()
        self.password = os.path.join(self.tmp, "admin.pass")
        with open(self.password, "w") as f:
            f.write(self.tryton.password + "\n")

    def invoices_and_payments(self):
        rnd = self.rnd
        c1 = self.tryton.company(0)
        vendors = [v["code"] for v in c1["suppliers"].values()
                   if v["id"] != c1["inactive_supplier"]]
        rate = Fraction(c1["tax"]["rate"])
        today = datetime.date.today().isoformat()
        invoices = []
        for i in range(self.INVOICES):
            while True:   # no half cent in the tax: both rounding rules agree
                qty = rnd.randint(1, 200)
                price = Fraction(rnd.randint(5, 400), 100)
                tax = qty * price * rate
                if (tax * 100).denominator != 2:
                    break
            freight = Fraction(rnd.randint(100, 9000), 100)
            total = qty * price + round_half_up(tax) + freight
            invoices.append({
                "type": "invoice", "vendor": rnd.choice(vendors), "number": "KT-%03d" % i,
                "date": today, "description": "kill test", "currency": "USD",
                "lines": [{"item": "P-1001", "quantity": str(qty), "unit_price": cents(price),
                           "unit": "u", "tax_code": "1", "warehouse": "WH"},
                          {"gl_account": rnd.choice(["5100", "5200"]), "description": "Freight",
                           "quantity": "1", "unit_price": cents(freight),
                           "division": rnd.choice(["100", "200"])}],
                "total": cents(total), "_total": total})
        payments = []
        for k, i in enumerate(rnd.sample(range(self.FIRST), self.PAYMENTS)):
            inv = invoices[i]
            amount = inv["_total"] if k % 3 else round_half_up(inv["_total"] / 2)
            payments.append({"type": "payment", "vendor": inv["vendor"],
                             "reference": "PT-%03d" % k, "date": today, "bank_account": "1",
                             "method": "check", "amount": cents(amount),
                             "invoices": [{"number": inv["number"], "amount": cents(amount)}],
                             "_paid": (i, amount)})
        return invoices, payments

    def test_agent_killed_while_writing_writes_each_document_once(self):
        t0 = time.time()
        self.start_world("tryton:" + self.tryton.db_path,
                         ["--erp-url", self.tryton.url, "--erp-user", "admin",
                          "--erp-password-file", self.password])
        ent = self.entity("1")   # Tryton's company 1, as the agent reported it
        self.assertEqual(ent["name"], "Acme Manufacturing Inc.")
        self.full_sync(ent)
        invoices, payments = self.invoices_and_payments()
        strip = lambda d: {k: v for k, v in d.items() if not k.startswith("_")}  # noqa: E731
        # A few requests: the first invoices, the payments (of those), the
        # other invoices; the agent takes them in that order, the kills going
        # on all along.
        rounds = [[ent, []] for _ in range(self.KILLS)]
        rounds[0][1] += [strip(d) for d in invoices[:self.FIRST]]
        rounds[1][1] += [strip(p) for p in payments]
        rounds[3][1] += [strip(d) for d in invoices[self.FIRST:]]
        ids = []
        # A Tryton write takes about a second: the kill comes at a random
        # point of the first one after the agent's login (or of its lookup)
        stats = self.kill_loop(
            rounds, lambda rnd: (b"tryton: logged in", rnd.uniform(0.02, 1.3)), ids)
        t_kills = time.time() - t0
        final = self.wait_final(ids, 180)
        logs = self.log_counts()
        self.report("tryton", documents=len(ids), kills=stats["kills"],
                    kills_while_exporting=stats["busy"], kills_inside_a_write=stats["in_write"],
                    payments_cut=stats["payments"], found_on_retry=logs["found"],
                    seconds="%.0f (kill loop %.0f)" % (time.time() - t0, t_kills))

        self.assertEqual(len(final), self.INVOICES + self.PAYMENTS)
        bad = [d for d in final.values() if d["status"] != "success"]
        self.assertEqual(bad, [], json.dumps(bad[:5], indent=1))
        self.assertEqual(logs["uncertain"], 0)

        t = self.tryton
        t.use_company(1)
        paid = {invoices[i]["number"]: (p["reference"], a)
                for p in payments for i, a in [p["_paid"]]}
        rows = t.supplier_invoices()
        by_ref = {}
        for r in rows:
            by_ref.setdefault(r["reference"], []).append(r)
        docs = {d.get("number") or d.get("reference"): d for d in final.values()}
        for inv in invoices:
            got = by_ref.get(inv["number"], [])   # cancelled ones too: none
            self.assertEqual(len(got), 1, (inv["number"], got))
            g = got[0]
            self.assertEqual(docs[inv["number"]]["erp"]["id"], str(g["id"]), inv["number"])
            ref, amount = paid.get(inv["number"], (None, Fraction(0)))
            self.assertEqual(Fraction(g["total_amount"]), inv["_total"], inv["number"])
            self.assertEqual(g["state"], "paid" if amount == inv["_total"] else "posted",
                             inv["number"])
            self.assertEqual(Fraction(g["amount_to_pay"]), inv["_total"] - amount,
                             inv["number"])
        for p in payments:
            moves = t.search_read("account.move", [("description", "=", p["reference"])],
                                  ["id", "origin", "state"])
            inv_id = by_ref[invoices[p["_paid"][0]]["number"]][0]["id"]
            self.assertEqual([m["origin"] for m in moves], ["account.invoice,%d" % inv_id],
                             p["reference"])

        self.assertEqual(stats["kills"], self.KILLS)
        self.assertGreaterEqual(stats["busy"], 40, stats)
        self.assertGreaterEqual(stats["in_write"], 20, stats)
        self.assertGreaterEqual(stats["payments"], 1, stats)
        self.assertGreaterEqual(logs["found"], 1, logs)


if __name__ == "__main__":
    unittest.main()
