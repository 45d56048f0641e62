"""The sync engine with the real programs: partial syncs that see exactly the
changes, cursors that neither lose nor repeat rows (edits during a sync, ties
across batch boundaries, failed runs), deletion detection, the PO & Receivings
toggle, job states (queued, waiting reasons, cancel, time-outs, one per
entity), Sync All, and what the API tells about runs, lists and items."""
import datetime
import json
import os
import signal
import sqlite3
import threading
import time

from harness import Case, erp_counts, wait_for

FAST = ["--cursor-lag", "300", "--cursor-overlap", "60000", "--erp-retry", "200"]
ERP_TZ = datetime.timezone(datetime.timedelta(hours=-5))  # the demo ERP's offset


def erp_now(delta_s=0.0):
    t = datetime.datetime.now(ERP_TZ) + datetime.timedelta(seconds=delta_s)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + "%03d" % (t.microsecond // 1000)


class EngineCase(Case):
    def setup_world(self, rows=2000, agent_extra=(), broker_extra=()):
        self.world(rows=rows, agent_extra=FAST + list(agent_extra), broker_extra=broker_extra)
        self.blue = self.entity("BLUE")

    def erp_db(self):
        return sqlite3.connect(self.erp, timeout=10)

    def edit_vendors(self, keys, stamp=None, name_suffix=" (edited)"):
        db = self.erp_db()
        for k in keys:
            db.execute("UPDATE vendors SET name=name||?, modified_at=? WHERE company_code='BLUE' "
                       "AND vendor_no=?", (name_suffix, stamp or erp_now(), k))
        db.commit()
        db.close()

    def vendor_keys(self, n, offset=0):
        db = self.erp_db()
        keys = [r[0] for r in db.execute(
            "SELECT vendor_no FROM vendors WHERE company_code='BLUE' ORDER BY vendor_no "
            "LIMIT ? OFFSET ?", (n, offset))]
        db.close()
        return keys

    def run_sync(self, **kw):
        return self.wait_job(self.sync(self.blue["id"], **kw)["id"], 120)

    def lists_of(self, job):
        return {l["list"]: l for l in job["lists"]}

    def store_vendors(self):
        return {k: i["data"] for k, i in self.items(self.blue["id"], "vendors").items()
                if not i["deleted"]}

    def erp_vendor_names(self):
        db = self.erp_db()
        rows = dict(db.execute("SELECT vendor_no, name FROM vendors WHERE company_code='BLUE'"))
        db.close()
        return rows


class PartialSync(EngineCase):
    def test_partial_sees_exactly_the_change_and_then_nothing(self):
        self.setup_world()
        self.assertEqual(self.run_sync()["status"], "success")
        keys = self.vendor_keys(3, offset=10)
        time.sleep(0.5)
        self.edit_vendors(keys)
        db = self.erp_db()
        for i in range(2):
            db.execute("INSERT INTO vendors SELECT company_code, 'VNEW%d', 'New Vendor %d', "
                       "address1, address2, city, state, zip, phone, email, tax_id, terms_code, "
                       "currency, separate_check, 'A', ?, ? FROM vendors WHERE "
                       "company_code='BLUE' LIMIT 1" % (i, i), (erp_now(), erp_now()))
        db.commit()
        db.close()
        time.sleep(0.5)
        job = self.run_sync(mode="partial")
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        ls = self.lists_of(job)
        v = ls["vendors"]["counts"]
        self.assertEqual((v["read"], v["updated"], v["inserted"], v["unchanged"]), (5, 3, 2, 0))
        db = self.erp_db()
        sep = db.execute("SELECT count(*) FROM vendors WHERE company_code='BLUE' AND "
                         "separate_check=1 AND (vendor_no IN (?,?,?) OR vendor_no LIKE 'VNEW%')",
                         keys).fetchone()[0]
        db.close()
        self.assertEqual(ls["separate_checks"]["counts"]["read"], sep)  # they changed too
        for name, l in ls.items():
            if name not in ("vendors", "separate_checks"):
                self.assertEqual(l["counts"]["read"], 0, name)  # O(changed), not the table
        self.assertEqual(self.store_vendors()[keys[0]]["name"], self.erp_vendor_names()[keys[0]])
        # the next partial re-reads the overlap but sends nothing again
        job = self.run_sync(mode="partial")
        self.assertEqual(job["status"], "success")
        self.assertEqual(job["totals"]["read"], 0, json.dumps(job["totals"]))

    def test_edits_during_a_full_sync_are_neither_lost_nor_repeated(self):
        self.setup_world(rows=40000, agent_extra=["--batch-rows", "200"])
        keys = self.vendor_keys(40000)
        targets = keys[::397]  # spread over the whole key range
        job = self.sync(self.blue["id"], lists=["vendors"])
        stop = threading.Event()

        def editor():
            for i, k in enumerate(targets):
                if stop.is_set():
                    return
                self.edit_vendors([k], name_suffix=" v%d" % i)
                time.sleep(0.01)
        t = threading.Thread(target=editor)
        t.start()
        done = self.wait_job(job["id"], 120)
        stop.set()
        t.join()
        self.assertEqual(done["status"], "success")
        time.sleep(0.5)  # past the lag
        part = self.run_sync(mode="partial", lists=["vendors"])
        v = self.lists_of(part)["vendors"]["counts"]
        self.assertEqual(v["unchanged"], 0, v)  # nothing the broker already had
        self.assertLessEqual(v["read"], len(targets))
        stored, erp = self.store_vendors(), self.erp_vendor_names()
        self.assertEqual({k: d["name"] for k, d in stored.items()}, erp)  # nothing lost
        self.assertEqual(self.run_sync(mode="partial", lists=["vendors"])["totals"]["read"], 0)

    def test_rows_sharing_one_timestamp_across_batch_boundaries(self):
        self.setup_world(agent_extra=["--batch-rows", "150"])
        self.assertEqual(self.run_sync()["status"], "success")
        stamp = erp_now(-1)
        keys = self.vendor_keys(1000)
        self.edit_vendors(keys, stamp=stamp, name_suffix="")  # only the stamp changes
        time.sleep(0.5)
        job = self.run_sync(mode="partial", lists=["vendors"])
        v = self.lists_of(job)["vendors"]["counts"]
        self.assertEqual((v["read"], v["updated"]), (1000, 1000))  # 7 batches, one timestamp
        stamped = [k for k, d in self.store_vendors().items()
                   if d["modified_at"].startswith(stamp.replace(" ", "T"))]
        self.assertEqual(len(stamped), 1000)
        job = self.run_sync(mode="partial", lists=["vendors"])
        self.assertEqual(job["totals"]["read"], 0)

    def test_a_failed_run_does_not_move_the_cursor(self):
        self.world(agent_extra=["--cursor-lag", "300", "--cursor-overlap", "1000",
                                "--erp-retry", "200"])
        self.blue = self.entity("BLUE")
        self.assertEqual(self.run_sync()["status"], "success")
        key = self.vendor_keys(1, offset=5)[0]
        self.edit_vendors([key])
        time.sleep(3)
        db = self.erp_db()
        db.execute("ALTER TABLE vendors RENAME TO vendors_away")
        db.commit()
        job = self.run_sync(mode="partial", lists=["vendors", "units"])
        self.assertEqual(job["status"], "partial")
        self.assertEqual(self.lists_of(job)["vendors"]["status"], "failed")
        self.assertIn("vendors", self.lists_of(job)["vendors"]["error"]["message"])
        db.execute("ALTER TABLE vendors_away RENAME TO vendors")
        db.commit()
        db.close()
        time.sleep(2)  # the failed run's window end is now well past the edit + overlap
        job = self.run_sync(mode="partial", lists=["vendors"])
        self.assertEqual(self.lists_of(job)["vendors"]["counts"]["updated"], 1)
        self.assertEqual(self.store_vendors()[key]["name"], self.erp_vendor_names()[key])

    def test_sync_from_date(self):
        self.setup_world()
        self.assertEqual(self.run_sync()["status"], "success")
        job = self.run_sync(mode="partial", since="2000-01-01", lists=["units"])
        units = erp_counts(self.erp, "BLUE")["units"]
        # everything since 2000, but the broker already had each version
        self.assertEqual(self.lists_of(job)["units"]["counts"]["read"], units)
        self.assertEqual(self.lists_of(job)["units"]["counts"]["unchanged"], units)
        s, j = self.broker.api("POST", "/api/v1/syncs", self.token,
                               {"entity": self.blue["id"], "mode": "partial", "since": "May 1"})
        self.assertEqual(s, 400)


class Reconciliation(EngineCase):
    def test_full_sync_marks_deleted_rows(self):
        self.setup_world(agent_extra=["--batch-rows", "100"])
        self.assertEqual(self.run_sync()["status"], "success")
        keys = self.vendor_keys(2000)
        gone = [keys[0], keys[150], keys[151], keys[999], keys[-1]]
        db = self.erp_db()
        saved = [db.execute("SELECT * FROM vendors WHERE company_code='BLUE' AND vendor_no=?",
                            (k,)).fetchone() for k in gone]
        db.executemany("DELETE FROM vendors WHERE company_code='BLUE' AND vendor_no=?",
                       [(k,) for k in gone])
        db.commit()
        job = self.run_sync(lists=["vendors"])
        v = self.lists_of(job)["vendors"]["counts"]
        self.assertEqual((v["deleted"], v["read"]), (5, 2000 - 5))
        s, page = self.broker.api("GET", "/api/v1/entities/%d/lists/vendors?status=deleted"
                                  % self.blue["id"], self.token)
        self.assertEqual(sorted(i["key"] for i in page["items"]), sorted(gone))
        self.assertTrue(all(i["deleted"] for i in page["items"]))
        # one comes back
        db.execute("INSERT INTO vendors VALUES(%s)" % ",".join("?" * len(saved[2])), saved[2])
        db.commit()
        db.close()
        job = self.run_sync(lists=["vendors"])
        v = self.lists_of(job)["vendors"]["counts"]
        self.assertEqual((v["inserted"], v["deleted"]), (1, 0))
        self.assertEqual(len(self.store_vendors()), 2000 - 4)

    def test_emptied_list(self):
        self.setup_world()
        self.assertEqual(self.run_sync(lists=["divisions"])["status"], "success")
        db = self.erp_db()
        n = db.execute("DELETE FROM divisions WHERE company_code='BLUE'").rowcount
        db.commit()
        db.close()
        job = self.run_sync(lists=["divisions"])
        self.assertEqual(self.lists_of(job)["divisions"]["counts"]["deleted"], n)


class PurchaseOrders(EngineCase):
    def test_toggle_off_leaves_po_lists_out(self):
        self.setup_world()
        job = self.run_sync(po={"enabled": False})
        names = set(self.lists_of(job))
        self.assertNotIn("purchase_orders", names)
        self.assertNotIn("receivings", names)
        self.assertIn("vendors", names)

    def test_po_start_date_windows_only_po_lists(self):
        self.setup_world()
        db = self.erp_db()
        cut = db.execute("SELECT modified_at FROM po_headers WHERE company_code='BLUE' AND "
                         "po_type IN ('S','D') ORDER BY modified_at DESC LIMIT 1 OFFSET 99"
                         ).fetchone()[0]
        want = db.execute("SELECT count(*) FROM po_headers WHERE company_code='BLUE' AND "
                          "po_type IN ('S','D') AND modified_at>=?", (cut,)).fetchone()[0]
        db.close()
        since = cut.replace(" ", "T") + "-05:00"
        job = self.run_sync(po={"enabled": True, "since": since})
        ls = self.lists_of(job)
        self.assertEqual(ls["purchase_orders"]["counts"]["read"], want)
        self.assertEqual(ls["vendors"]["counts"]["read"], erp_counts(self.erp, "BLUE")["vendors"])


class JobStates(EngineCase):
    def test_cancel_a_queued_sync(self):
        self.setup_world()
        self.agent.stop()
        job = self.sync(self.blue["id"])
        s, j = self.broker.api("POST", "/api/v1/syncs/%d/cancel" % job["id"], self.token)
        self.assertEqual((s, j["status"]), (200, "cancelled"))
        s, j = self.broker.api("POST", "/api/v1/syncs/%d/cancel" % job["id"], self.token)
        self.assertEqual(s, 409)
        self.agent.start(self.erp, FAST)
        self.wait_online()
        nxt = self.run_sync(lists=["units"])
        self.assertEqual(nxt["status"], "success")
        self.assertNotIn("job %d" % job["id"], self.agent.proc.text())  # never sent

    def test_cancel_a_running_sync_and_the_next_one_runs(self):
        self.setup_world(rows=60000, agent_extra=["--batch-rows", "100"])
        job = self.sync(self.blue["id"], lists=["vendors"])
        wait_for(lambda: self.broker.api("GET", "/api/v1/syncs/%d" % job["id"], self.token)[1]
                 ["status"] == "running", 20, what="running")
        second = self.sync(self.blue["id"], lists=["units"])
        s, j = self.broker.api("POST", "/api/v1/syncs/%d/cancel" % job["id"], self.token)
        self.assertEqual((s, j["status"]), (200, "cancelled"))
        self.assertEqual(self.wait_job(second["id"])["status"], "success")
        wait_for(lambda: "job %d: ended cancelled" % job["id"] in self.agent.proc.text(), 20,
                 what="the agent to stop the job")
        j = self.broker.api("GET", "/api/v1/syncs/%d/log" % job["id"], self.token)[1]
        self.assertIn("cancelled by ap@acme.test", json.dumps(j))

    def test_one_sync_per_entity_at_a_time(self):
        self.setup_world(rows=20000, agent_extra=["--batch-rows", "200"])
        a = self.sync(self.blue["id"], lists=["vendors"])
        b = self.sync(self.blue["id"], lists=["vendors"])
        a, b = self.wait_job(a["id"]), self.wait_job(b["id"])
        self.assertEqual((a["status"], b["status"]), ("success", "success"))
        self.assertGreaterEqual(b["started_at"], a["finished_at"])

    def test_waiting_sync_says_why_and_times_out(self):
        self.setup_world(rows=20000, broker_extra=["--stale-after", "1", "--job-timeout", "10",
                                                   "--heartbeat", "1"])
        self.agent.stop()
        queued = self.sync(self.blue["id"])
        j = wait_for(lambda: (lambda j: j if j["reason"] else None)(self.broker.api(
            "GET", "/api/v1/syncs/%d" % queued["id"], self.token)[1]), 15, what="a reason")
        self.assertEqual(j["status"], "queued")
        self.assertIn("ACME-SYNC offline since", j["reason"])
        # a running sync whose SyncTool vanishes times out
        self.agent.start(self.erp, FAST + ["--batch-rows", "50"])
        self.wait_online()
        self.wait_job(queued["id"])
        big = self.sync(self.blue["id"], lists=["vendors", "items"])
        wait_for(lambda: self.broker.api("GET", "/api/v1/syncs/%d" % big["id"], self.token)[1]
                 ["status"] == "running", 20, what="running")
        self.agent.proc.signal(signal.SIGSTOP)
        try:
            j = self.wait_job(big["id"], 40)
        finally:
            self.agent.proc.signal(signal.SIGCONT)
        self.assertEqual(j["status"], "timed_out")
        self.assertIn("offline since", j["error"]["message"])
        # back, the agent is told and stops; the next sync runs
        self.wait_online()
        self.assertEqual(self.run_sync(lists=["units"])["status"], "success")
        wait_for(lambda: "job %d: ended cancelled" % big["id"] in self.agent.proc.text(), 20,
                 what="the agent to drop the timed-out job")

    def test_busy_erp_defers_with_a_reason_then_runs(self):
        self.setup_world()
        db = self.erp_db()
        db.execute("INSERT INTO locks VALUES('BLUE', 'jsmith', 'period-end close', ?)",
                   (erp_now(),))
        db.commit()
        job = self.sync(self.blue["id"], lists=["vendors"])
        j = wait_for(lambda: (lambda j: j if j["reason"] else None)(self.broker.api(
            "GET", "/api/v1/syncs/%d" % job["id"], self.token)[1]), 15, what="the reason")
        self.assertIn("jsmith", j["reason"])
        self.assertEqual(j["status"], "running")
        db.execute("DELETE FROM locks")
        db.commit()
        db.close()
        j = self.wait_job(job["id"])
        self.assertEqual(j["status"], "success")
        self.assertIsNone(j["reason"])
        log = json.dumps(self.broker.api("GET", "/api/v1/syncs/%d/log" % job["id"],
                                         self.token)[1])
        self.assertIn("waiting for the ERP", log)
        self.assertIn("the ERP answers again", log)


class SyncAllAndReports(EngineCase):
    def test_sync_all_refuses_never_synced_entities_with_the_reason(self):
        self.setup_world()
        harbor = self.entity("HARBOR")
        s, j = self.broker.api("GET", "/api/v1/entities", self.token)
        for e in j["entities"]:
            self.assertFalse(e["sync_all"]["eligible"])
            self.assertIn("never synced successfully", e["sync_all"]["reason"])
        self.assertEqual(self.run_sync()["status"], "success")
        s, j = self.broker.api("POST", "/api/v1/syncs/all", self.token, {"mode": "partial"})
        self.assertEqual(s, 202)
        self.assertEqual([x["entity"]["id"] for x in j["syncs"]], [self.blue["id"]])
        self.assertEqual([x["entity"] for x in j["refused"]], [harbor["id"]])
        self.assertIn("never synced", j["refused"][0]["reason"])
        self.assertEqual(self.wait_job(j["syncs"][0]["id"])["status"], "success")
        viewer = self.broker.user("acme", "v@acme.test", "viewer")
        s, _ = self.broker.api("POST", "/api/v1/syncs/all", viewer, {"mode": "partial"})
        self.assertEqual(s, 403)

    def test_what_a_run_tells(self):
        self.setup_world(rows=30000, agent_extra=["--batch-rows", "100"])
        job = self.sync(self.blue["id"], lists=["vendors", "units"])
        seen = wait_for(lambda: [l for l in self.broker.api(
            "GET", "/api/v1/syncs/%d" % job["id"], self.token)[1]["lists"]
            if l["list"] == "vendors" and 0 < l["counts"]["read"] < 30000], 30, interval=0.02,
            what="progress")[0]
        self.assertEqual(seen["estimate"], 30000)  # done / estimated total while running
        running = wait_for(lambda: [l["running"] for l in self.broker.api(
            "GET", "/api/v1/entities/%d/lists" % self.blue["id"], self.token)[1]["lists"]
            if l["list"] == "vendors" and l["running"]], 30, interval=0.02,
            what="the list panel's progress")[0]
        self.assertEqual((running["sync"], running["estimate"]), (job["id"], 30000))
        self.wait_job(job["id"])
        s, lists = self.broker.api("GET", "/api/v1/entities/%d/lists" % self.blue["id"],
                                   self.token)
        v = [l for l in lists["lists"] if l["list"] == "vendors"][0]
        self.assertEqual((v["status"], v["items"]), ("success", 30000))
        self.assertIsNotNone(v["last_synced"])
        self.assertIsNotNone(v["duration_ms"])
        self.assertIsNotNone(v["estimate_ms"])
        never = [l for l in lists["lists"] if l["list"] == "items"][0]
        self.assertIsNone(never["last_synced"])
        e = self.broker.api("GET", "/api/v1/entities/%d" % self.blue["id"], self.token)[1]
        self.assertEqual(e["last_success"]["sync"], job["id"])
        self.assertIsNotNone(e["estimate_ms"]["full"])
        self.assertIsNone(e["estimate_ms"]["partial"])
        second = self.run_sync(mode="partial", lists=["units"])
        s, ov = self.broker.api("GET", "/api/v1/overview", self.token)
        blue = [o for o in ov["overview"] if o["entity"] == self.blue["id"]][0]
        self.assertEqual(blue["latest"]["id"], second["id"])
        harbor = [o for o in ov["overview"] if o["code"] == "HARBOR"][0]
        self.assertIsNone(harbor["latest"])
        s, acts = self.broker.api("GET", "/api/v1/syncs?entity=%d&limit=1" % self.blue["id"],
                                  self.token)
        self.assertEqual([a["id"] for a in acts["syncs"]], [second["id"]])

    def test_items_api_pages_filters_and_changes(self):
        self.setup_world()
        self.assertEqual(self.run_sync(lists=["vendors"])["status"], "success")
        path = "/api/v1/entities/%d/lists/vendors" % self.blue["id"]
        keys, cursor = [], None
        while True:
            s, page = self.broker.api("GET", path + "?limit=300" + (
                "&cursor=" + cursor if cursor else ""), self.token)
            self.assertEqual(s, 200)
            keys += [i["key"] for i in page["items"]]
            cursor = page["next"]
            if not cursor:
                break
        self.assertEqual(len(keys), 2000)
        self.assertEqual(keys, sorted(set(keys)))
        db = self.erp_db()
        inactive = db.execute("SELECT count(*) FROM vendors WHERE company_code='BLUE' AND "
                              "status='I'").fetchone()[0]
        db.close()
        s, page = self.broker.api("GET", path + "?status=inactive&limit=1000", self.token)
        self.assertEqual(len(page["items"]), inactive)
        self.assertTrue(all(i["data"]["status"] == "inactive" for i in page["items"]))
        time.sleep(0.05)
        t = datetime.datetime.now(datetime.timezone.utc)
        mark = t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)
        edited = self.vendor_keys(2, offset=100)
        time.sleep(0.4)
        self.edit_vendors(edited)
        time.sleep(0.5)
        self.run_sync(mode="partial", lists=["vendors"])
        s, page = self.broker.api("GET", path + "?changed_since=" + mark, self.token)
        self.assertEqual(sorted(i["key"] for i in page["items"]), sorted(edited))
        s, _ = self.broker.api("GET", path + "?cursor=zz&changed_since=" + mark, self.token)
        self.assertEqual(s, 400)
        self.broker.tenant("other")
        other = self.broker.user("other", "o@other.test")
        self.assertEqual(self.broker.api("GET", path, other)[0], 404)
