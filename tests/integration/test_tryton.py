"""Tryton 6.0, the reference partner, read for real: a trytond on a free
loopback port over a database built once per run (tests/fixtures/tryton),
the agent reading it through the tryton profile. Every list the agent reads
equals the fixture's own verified queries; a full sync stores it; data changed
through Tryton's own JSON-RPC shows up in a partial sync, exactly."""
import datetime
import json
import os
import sys
import time
import unittest

import test_engine
from harness import AGENT, ROOT, run

sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures", "tryton"))
import tryton  # noqa: E402

LISTS = ["bank_accounts", "divisions", "gl_accounts", "items", "tax_codes", "units", "vendors",
         "warehouses", "purchase_orders", "receivings"]
OK, WHY = tryton.available()


def instant(iso):
    """An ISO 8601 time with offset → an aware datetime (microseconds kept)."""
    return datetime.datetime.fromisoformat(iso)


def agent_rows(db, company, name):
    out = run([AGENT, "erp", "--erp", "tryton:" + db, "--company", str(company), "--list", name,
               "--limit", "100000"]).stdout
    return [json.loads(line) for line in out.splitlines()]


@unittest.skipUnless(OK, WHY)
class TrytonLists(test_engine.EngineCase):
    def setUp(self):
        super().setUp()
        self.tryton = tryton.Tryton(os.path.join(self.tmp, "tryton"))
        self.addCleanup(self.tryton.stop)

    def erp_spec(self, path):
        return "tryton:" + path

    def test_every_list_equals_the_verified_queries(self):
        db = self.tryton.db_path
        for company in (1, 2):
            for name in LISTS:
                # the agent reads in binary key order, the fixture by id or code
                want = sorted(tryton.reference_list(db, name, company),
                              key=lambda r: r["code"].encode())
                got = agent_rows(db, company, name)
                self.assertEqual([r["code"] for r in got], [r["code"] for r in want])
                self.assertEqual(len(got), len(want), (company, name))
                for g, w in zip(got, want):
                    for ts in ("created_at", "modified_at"):
                        # the agent keeps Tryton's microseconds; the fixture prints ms
                        self.assertLess(abs(instant(g.pop(ts)) - instant(w.pop(ts))),
                                        datetime.timedelta(milliseconds=1), (name, g["code"]))
                    self.assertEqual(g, dict(w, **{k: None for k in g if k not in w}),
                                     (company, name))
        self.assertTrue(any(r["lines"] for r in agent_rows(db, 1, "purchase_orders")))
        rcv = agent_rows(db, 1, "receivings")
        self.assertTrue(all(line["po_line"] for r in rcv for line in r["lines"]))

    def test_full_sync_then_partial_sees_exactly_the_changes(self):
        self.tryton.start()
        self.world(start_agent=False)
        self.erp = self.tryton.db_path
        self.agent.start(self.erp, test_engine.FAST)
        self.wait_online()
        ents = {e["code"]: e for e in self.broker.api("GET", "/api/v1/entities", self.token)[1]
                ["entities"]}
        self.assertEqual(ents["1"]["name"], "Acme Manufacturing Inc.")
        self.blue = ents["1"]
        job = self.run_sync()
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        stored = self.stored_counts(self.blue["id"])
        for name in LISTS:
            self.assertEqual(stored.get(name, 0),
                             len(tryton.reference_list(self.erp, name, 1)), name)
        # change data through Tryton's own API
        self.tryton.rename_party("Acme Steel Supply", "Acme Steel Supply Co.")
        new = self.tryton.create_party("Zenith Fasteners", street="9 Bolt Way", city="Tulsa")
        self.tryton.deactivate_party("Delta Office Products")
        product = self.tryton.create_product("Hex Nut M8", code="P-2001")
        time.sleep(0.6)  # past the window's lag (--cursor-lag 300 ms)
        job = self.run_sync(mode="partial")
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        ls = self.lists_of(job)
        v = ls["vendors"]["counts"]
        self.assertEqual((v["read"], v["inserted"], v["updated"]), (3, 1, 2), json.dumps(v))
        self.assertEqual(ls["items"]["counts"]["read"], 1)
        for name in LISTS:
            if name not in ("vendors", "items"):
                self.assertEqual(ls[name]["counts"]["read"], 0, name)
        vendors = self.items(self.blue["id"], "vendors")
        self.assertEqual(vendors[new["code"]]["data"]["name"], "Zenith Fasteners")
        self.assertEqual(vendors[new["code"]]["data"]["city"], "Tulsa")
        names = {i["data"]["name"]: i["data"] for i in vendors.values()}
        self.assertIn("Acme Steel Supply Co.", names)
        self.assertEqual(names["Delta Office Products"]["status"], "inactive")
        self.assertIn(product["code"], self.items(self.blue["id"], "items"))
        # and nothing twice
        job = self.run_sync(mode="partial")
        self.assertEqual(job["totals"]["read"], 0, json.dumps(job["totals"]))
