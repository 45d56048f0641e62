"""The spine, end to end with the real programs over TLS: enrollment, trust,
a full sync whose counts equal the ERP's, crashes of either side mid-sync,
heartbeats and reconnects, and the REST API's answers."""
import hashlib
import json
import os
import signal
import sqlite3
import ssl
import time

from harness import (AGENT, Agent, Broker, Case, demo_erp, erp_counts, run, wait_for)


def cert_sha256(path):
    with open(path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


class Enrollment(Case):
    def test_enroll_then_online_with_name_version_and_entities(self):
        self.world()
        tool = self.wait_online()
        self.assertEqual(tool["version"], "0.1.0")
        self.assertEqual(tool["erp"]["product"], "apsync Demo ERP")
        self.assertIsNotNone(tool["last_seen"])
        self.assertEqual(sorted(e["code"] for e in tool["entities"]), ["BLUE", "HARBOR"])
        s, j = self.broker.api("GET", "/api/v1/entities", self.token)
        self.assertEqual(s, 200)
        blue = [e for e in j["entities"] if e["code"] == "BLUE"][0]
        self.assertEqual(blue["synctools"][0]["name"], "ACME-SYNC")
        self.assertIn("vendors", blue["lists"])
        self.assertEqual(blue["po_types"], "standard,drop_ship")
        cred = os.path.join(self.agent.state, "credential.json")
        self.assertEqual(os.stat(cred).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(self.agent.state).st_mode & 0o777, 0o700)
        self.assertNotIn(self.agent.credential()["credential"], self.agent.proc.text())

    def test_code_works_once(self):
        self.broker = Broker(self).start()
        self.broker.tenant("acme")
        code = self.broker.code("acme", "ACME-SYNC")
        Agent(self, self.broker, "a1").enroll(code)
        p = Agent(self, self.broker, "a2").enroll(code, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("already used", p.stderr)

    def test_expired_and_unknown_codes(self):
        self.broker = Broker(self).start()
        self.broker.tenant("acme")
        code = self.broker.code("acme", "ACME-SYNC")
        db = sqlite3.connect(os.path.join(self.broker.data, "broker.db"))
        db.execute("UPDATE enroll_codes SET expires_at = 1")  # as if a day had passed
        db.commit()
        db.close()
        p = Agent(self, self.broker, "a1").enroll(code, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("expired", p.stderr)
        p = Agent(self, self.broker, "a2").enroll("ABCD-EFGH-JKMN-PQRS", check=False)
        self.assertIn("unknown", p.stderr)
        p = Agent(self, self.broker, "a3").enroll("not-a-code", check=False)
        self.assertIn("enrollment code like", p.stderr)

    def test_wrong_credential_is_refused_clearly_on_both_sides(self):
        self.world(start_agent=False)
        path = os.path.join(self.agent.state, "credential.json")
        with open(path) as f:
            c = json.load(f)
        c["credential"] = c["credential"][:-4] + "AAAA"
        with open(path, "w") as f:
            json.dump(c, f)
        self.agent.start(self.erp)
        self.assertEqual(self.agent.proc.wait(15), 77)
        self.assertIn("credential refused", self.agent.proc.text())
        self.assertIn("enrolled again", self.agent.proc.text())
        self.assertIn("unauthorized", self.broker.proc.text())

    def test_revoked_credential_is_dropped_within_a_heartbeat(self):
        self.world(broker_extra=["--heartbeat", "1"])
        self.broker.admin("synctool", "revoke", "--tenant", "acme", "--name", "ACME-SYNC")
        self.assertEqual(self.agent.proc.wait(15), 77)
        self.assertIn("revoked", self.agent.proc.text())
        s, j = self.broker.api("GET", "/api/v1/synctools", self.token)
        self.assertEqual(j["synctools"], [])

    def test_enrolling_the_name_again_replaces_the_old_agent(self):
        self.world()
        new = Agent(self, self.broker, "agent2")
        new.enroll(self.broker.code("acme", "ACME-SYNC"))
        new.start(self.erp)
        self.assertEqual(self.agent.proc.wait(15), 77)  # the old one is refused
        tool = self.wait_online()
        self.assertEqual(tool["id"], new.credential()["agent_id"])
        self.assertEqual(len(tool["entities"]), 2)


class Trust(Case):
    def test_pinned_fingerprint(self):
        self.broker = Broker(self).start()
        self.broker.tenant("acme")
        fp = cert_sha256(self.broker.cert)
        wrong = "0" * 64
        p = Agent(self, self.broker, "bad").enroll(self.broker.code("acme", "X"),
                                                   trust="pin:" + wrong, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("does not match the pinned fingerprint", p.stderr)
        colons = ":".join(fp[i:i + 2] for i in range(0, 64, 2)).upper()
        a = Agent(self, self.broker, "good")
        a.enroll(self.broker.code("acme", "X"), trust="pin:" + colons)
        a.start(demo_erp(self))
        self.token = self.broker.user("acme", "ap@acme.test")
        self.wait_online("X")

    def test_self_signed_broker_is_not_trusted_without_ca(self):
        self.broker = Broker(self).start()
        self.broker.tenant("acme")
        p = Agent(self, self.broker).enroll(self.broker.code("acme", "X"), trust=None,
                                            check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not trusted", p.stderr)

    def test_insecure_only_for_loopback_and_loud(self):
        p = run([AGENT, "enroll", "--broker", "wss://broker.example.invalid:443", "--code",
                 "ABCD-EFGH-JKMN-PQRS", "--state", os.path.join(self.tmp, "s"), "--insecure"],
                check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("only allowed for a broker on this machine", p.stderr)
        self.broker = Broker(self).start()
        self.broker.tenant("acme")
        a = Agent(self, self.broker)
        p = a.enroll(self.broker.code("acme", "X"), trust="insecure")
        self.assertIn("CHECKS ARE OFF", p.stderr)
        a.start(demo_erp(self))
        wait_for(lambda: "CHECKS ARE OFF" in a.proc.text(), 10, what="warning in the log")


class FullSync(Case):
    def check_equal_to_erp(self, job, entity_id, company="BLUE"):
        want = erp_counts(self.erp, company)
        self.assertEqual(job["status"], "success", json.dumps(job, indent=1))
        got = {l["list"]: l for l in job["lists"]}
        self.assertEqual(sorted(got), sorted(want))
        for name, n in want.items():
            self.assertEqual(got[name]["counts"]["read"], n, name)
            self.assertEqual(got[name]["reported"], n, name)
            self.assertEqual(got[name]["checksum"], got[name]["checksum_agent"], name)
        self.assertEqual(self.stored_counts(entity_id),
                         {k: v for k, v in want.items() if v})
        return got

    def test_full_sync_counts_equal_the_erp(self):
        self.world(rows=3000)
        blue = self.entity("BLUE")
        job = self.sync(blue["id"])
        self.assertEqual(job["status"], "queued" if job["status"] == "queued" else job["status"])
        job = self.wait_job(job["id"])
        got = self.check_equal_to_erp(job, blue["id"])
        for l in got.values():
            self.assertEqual(l["counts"]["inserted"], l["counts"]["read"])
            self.assertIsNotNone(l["duration_ms"])
        self.assertIsNotNone(job["duration_ms"])
        self.assertEqual(job["requested_by"], "ap@acme.test")
        # what was stored is what the ERP holds, in canonical form
        erp = sqlite3.connect(self.erp)
        v = erp.execute("SELECT vendor_no, name, status, modified_at FROM vendors WHERE "
                        "company_code='BLUE' ORDER BY vendor_no LIMIT 1 OFFSET 17").fetchone()
        data = self.items(blue["id"], "vendors")[v[0]]["data"]
        self.assertEqual(data["name"], v[1])
        self.assertEqual(data["status"], {"A": "active", "I": "inactive"}[v[2]])
        self.assertEqual(data["modified_at"], v[3].replace(" ", "T") + "-05:00")
        for acct in self.items(blue["id"], "bank_accounts").values():
            self.assertEqual(len(acct["data"]["account_last4"]), 4)
        # the other entity was not touched
        harbor = self.entity("HARBOR")
        self.assertEqual(self.stored_counts(harbor["id"]), {})
        s, log = self.broker.api("GET", "/api/v1/syncs/%d/log" % job["id"], self.token)
        self.assertEqual(s, 200)
        text = " ".join(l["message"] for l in log["log"])
        self.assertIn("requested by ap@acme.test", text)
        self.assertIn("sync ended: success", text)

    def test_second_sync_is_unchanged_and_sees_an_edit(self):
        self.world()
        blue = self.entity("BLUE")
        self.wait_job(self.sync(blue["id"])["id"])
        job = self.wait_job(self.sync(blue["id"])["id"])
        self.assertEqual(job["status"], "success")
        self.assertEqual(job["totals"]["inserted"] + job["totals"]["updated"], 0)
        self.assertEqual(job["totals"]["unchanged"], job["totals"]["read"])
        erp = sqlite3.connect(self.erp)
        erp.execute("UPDATE vendors SET name='Renamed Vendor LLC' WHERE company_code='BLUE' AND "
                    "vendor_no=(SELECT min(vendor_no) FROM vendors WHERE company_code='BLUE')")
        erp.commit()
        erp.close()
        job = self.wait_job(self.sync(blue["id"])["id"])
        vendors = [l for l in job["lists"] if l["list"] == "vendors"][0]
        self.assertEqual(vendors["counts"]["updated"], 1)
        self.assertEqual(job["totals"]["updated"], 1)

    def test_chosen_lists_only(self):
        self.world()
        blue = self.entity("BLUE")
        job = self.wait_job(self.sync(blue["id"], lists=["vendors", "units"])["id"])
        self.assertEqual(job["status"], "success")
        self.assertEqual(sorted(l["list"] for l in job["lists"]), ["units", "vendors"])

    def test_job_for_an_offline_agent_waits_then_runs(self):
        self.world()
        blue = self.entity("BLUE")
        self.agent.stop()
        wait_for(lambda: self.broker.api("GET", "/api/v1/synctools", self.token)[1]
                 ["synctools"][0]["status"] == "offline", 10, what="offline")
        job = self.sync(blue["id"])
        time.sleep(0.5)
        s, j = self.broker.api("GET", "/api/v1/syncs/%d" % job["id"], self.token)
        self.assertEqual(j["status"], "queued")
        self.agent.start(self.erp)
        self.check_equal_to_erp(self.wait_job(job["id"]), blue["id"])

    def test_api_answers_with_status_and_reason(self):
        self.world()
        blue = self.entity("BLUE")
        api = self.broker.api
        s, j = api("GET", "/api/v1/entities")
        self.assertEqual((s, j["error"]["code"]), (401, "unauthorized"))
        s, j = api("GET", "/api/v1/entities", "apt_" + "x" * 43)
        self.assertEqual(s, 401)
        viewer = self.broker.user("acme", "view@acme.test", "viewer")
        s, j = api("POST", "/api/v1/syncs", viewer, {"entity": blue["id"], "mode": "full"})
        self.assertEqual((s, j["error"]["code"]), (403, "forbidden"))
        s, j = api("POST", "/api/v1/syncs", self.token, {"entity": 999, "mode": "full"})
        self.assertEqual(s, 404)
        s, j = api("POST", "/api/v1/syncs", self.token, {"entity": "BLUE", "mode": "full"})
        self.assertEqual((s, j["error"]["code"]), (400, "bad_request"))
        s, j = api("POST", "/api/v1/syncs", self.token, raw="{not json")
        self.assertEqual((s, j["error"]["code"]), (400, "bad_json"))
        s, j = api("POST", "/api/v1/syncs", self.token, {"entity": blue["id"], "mode": "daily"})
        self.assertEqual(s, 400)
        s, j = api("GET", "/api/v1/syncs/424242", self.token)
        self.assertEqual(s, 404)
        s, j = api("DELETE", "/api/v1/syncs/1", self.token)
        self.assertEqual(s, 405)
        s, j = api("GET", "/api/v1/nothing", self.token)
        self.assertEqual(s, 404)
        s, j = api("POST", "/api/v1/syncs", self.token, raw="x" * (9 << 20))
        self.assertEqual((s, j["error"]["code"]), (413, "too_large"))
        s, j = api("GET", "/api/v1/me", viewer)
        self.assertEqual((j["role"], j["may_sync"]), ("viewer", False))

    def test_tenants_do_not_see_each_other(self):
        self.world()
        blue = self.entity("BLUE")
        job = self.wait_job(self.sync(blue["id"])["id"])
        self.broker.tenant("other")
        other = self.broker.user("other", "x@other.test", "system_administrator")
        api = self.broker.api
        self.assertEqual(api("GET", "/api/v1/entities", other)[1]["entities"], [])
        self.assertEqual(api("GET", "/api/v1/synctools", other)[1]["synctools"], [])
        self.assertEqual(api("GET", "/api/v1/syncs/%d" % job["id"], other)[0], 404)
        self.assertEqual(api("GET", "/api/v1/syncs/%d/log" % job["id"], other)[0], 404)
        s, j = api("POST", "/api/v1/syncs", other, {"entity": blue["id"], "mode": "full"})
        self.assertEqual(s, 404)


class Resilience(Case):
    ROWS = 60000

    def mid_sync(self, crash):
        """Starts a full sync of a big list, calls crash() once batches are
        flowing, and checks the job completes with every row exactly once."""
        self.world(rows=self.ROWS, agent_extra=["--batch-rows", "200"])
        blue = self.entity("BLUE")
        job = self.sync(blue["id"], lists=["vendors"])

        def flowing():
            s, j = self.broker.api("GET", "/api/v1/syncs/%d" % job["id"], self.token)
            v = [l for l in j["lists"] if l["list"] == "vendors"]
            return v and 0 < v[0]["counts"]["read"] < self.ROWS // 2
        wait_for(flowing, 30, interval=0.01, what="batches flowing")
        crash()
        done = self.wait_job(job["id"], 120)
        self.assertEqual(done["status"], "success", json.dumps(done, indent=1))
        v = done["lists"][0]
        want = erp_counts(self.erp, "BLUE")["vendors"]
        self.assertEqual(v["counts"]["read"], want)  # nothing lost, nothing twice
        self.assertEqual(v["reported"], want)
        self.assertEqual(v["checksum"], v["checksum_agent"])
        self.assertEqual(self.stored_counts(blue["id"])["vendors"], want)

    def test_agent_killed_mid_sync_resumes(self):
        def crash():
            self.agent.kill9()
            self.agent.start(self.erp, ["--batch-rows", "200"])
        self.mid_sync(crash)
        self.assertIn("resuming at list", self.agent.proc.text())

    def test_broker_killed_mid_sync_resumes(self):
        def crash():
            self.broker.kill9()
            self.broker.start()
        self.mid_sync(crash)

    def test_missed_heartbeats_mark_offline_then_back(self):
        self.world(broker_extra=["--heartbeat", "1"])
        self.agent.proc.signal(signal.SIGSTOP)
        t0 = time.time()
        try:
            tool = wait_for(lambda: [t for t in self.broker.api(
                "GET", "/api/v1/synctools", self.token)[1]["synctools"]
                if t["status"] == "offline"], 15, what="offline")[0]
        finally:
            self.agent.proc.signal(signal.SIGCONT)
        self.assertLess(time.time() - t0, 10)
        self.assertIsNotNone(tool["last_seen"])
        self.wait_online()
        self.assertIn("heartbeats missed", self.broker.proc.text())

    def test_reconnects_with_growing_jittered_delays(self):
        self.world()
        port = self.broker.port
        self.broker.stop()
        time.sleep(3)
        self.broker.start()
        self.assertEqual(self.broker.port, port)
        self.wait_online()
        stamps = []
        for line in self.agent.proc.text().splitlines():
            if "connecting to" in line:
                t = time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S")
                stamps.append(time.mktime(t) + int(line[20:23]) / 1000)
        gaps = [b - a for a, b in zip(stamps, stamps[1:])][1:]
        self.assertGreaterEqual(len(gaps), 3, gaps)
        # 0.1 s doubling to the 1 s cap, each plus up to 30 %
        self.assertLess(gaps[0], 0.6)
        self.assertTrue(all(g < 1.3 + 0.25 for g in gaps), gaps)
        self.assertGreater(max(gaps), 0.7, gaps)

    def test_erp_gone_then_back(self):
        self.world(start_agent=False)
        erp = os.path.join(self.tmp, "later.db")
        self.agent.start(erp, ["--erp-retry", "200"])
        tool = self.wait_online()
        self.assertIn("later.db", tool["erp"]["error"])
        self.assertIn("demo-erp", tool["erp"]["error"])  # says how to make one
        os.rename(self.erp, erp)
        blue = self.entity("BLUE")  # announced once the ERP is back
        job = self.wait_job(self.sync(blue["id"])["id"])
        self.assertEqual(job["status"], "success")
        tool = self.wait_online()
        self.assertIsNone(tool["erp"]["error"])

    def test_sigterm_stops_cleanly_and_shows_offline(self):
        self.world()
        self.assertEqual(self.agent.stop(), 0)
        self.assertIn("stopped", self.agent.proc.text())
        wait_for(lambda: self.broker.api("GET", "/api/v1/synctools", self.token)[1]
                 ["synctools"][0]["status"] == "offline", 10, what="offline")
        self.assertEqual(self.broker.stop(), 0)


class DamagedFiles(Case):
    def test_damaged_store_is_refused_with_advice(self):
        b = Broker(self)
        os.makedirs(b.data)
        with open(os.path.join(b.data, "broker.db"), "wb") as f:
            f.write(b"SQLite format 3\x00" + os.urandom(3000))
        p = b.case.spawn([AGENT.replace("apsync-agent", "apsync-broker"), "serve", "--listen",
                          "127.0.0.1:0", "--data", b.data], "broker")
        self.assertNotEqual(p.wait(10), 0)
        self.assertIn("not a SQLite database or is damaged", p.text())
        self.assertIn("restore it from a backup", p.text())

    def test_store_from_a_newer_version_is_refused(self):
        self.broker = Broker(self).start()
        self.broker.stop()
        db = sqlite3.connect(os.path.join(self.broker.data, "broker.db"))
        db.execute("INSERT INTO schema_version VALUES(99)")
        db.commit()
        db.close()
        p = self.broker.admin("tenant", "create", "x", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("newer than this program", p.stderr)

    def test_damaged_agent_state_is_refused(self):
        self.world(start_agent=False)
        with open(os.path.join(self.agent.state, "state.db"), "wb") as f:
            f.write(os.urandom(5000))
        self.agent.start(self.erp)
        self.assertEqual(self.agent.proc.wait(10), 1)
        self.assertIn("damaged", self.agent.proc.text())
