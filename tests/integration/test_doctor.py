"""apsync-agent doctor against the real programs: a healthy SyncTool passes
every check; each way things go wrong in the field (broker down, a
certificate it does not trust, a revoked credential, an ERP gone, a state
directory open to others) is named with a fix."""
import json
import os
import subprocess

from harness import AGENT, Case, run


class Doctor(Case):
    def setUp(self):
        super().setUp()
        self.world(start_agent=False)

    def doctor(self, *extra):
        p = subprocess.run([AGENT, "doctor", "--state", self.agent.state, "--erp",
                            "demo:" + self.erp] + list(extra), capture_output=True, text=True,
                           timeout=60)
        return p.returncode, p.stdout + p.stderr

    def line(self, out, what):
        return [l for l in out.splitlines() if what in l]

    def test_a_healthy_synctool_passes_every_check(self):
        os.chmod(self.agent.state, 0o700)
        rc, out = self.doctor()
        self.assertEqual(rc, 0, out)
        for what in ("state directory", "credential", "state database", "broker name",
                     "broker route", "broker TLS", "broker credential", "ERP company"):
            self.assertTrue(any(l.startswith("[ ok ]") for l in self.line(out, what)),
                            "%s\n%s" % (what, out))
        self.assertIn("accepted: SyncTool \"ACME-SYNC\" of tenant acme", out)
        self.assertIn("BLUE \"Blue Ridge Manufacturing Inc.\"", out)
        self.assertIn("0 problems", out)

    def test_problems_are_named_with_a_fix(self):
        os.chmod(self.agent.state, 0o755)
        rc, out = self.doctor("--erp", "demo:" + os.path.join(self.tmp, "gone.db"))
        self.assertEqual(rc, 1, out)
        self.assertTrue(self.line(out, "[warn] state directory"), out)
        self.assertIn("chmod 700", out)
        self.assertTrue(self.line(out, "[FAIL] ERP"), out)
        self.assertIn("does not exist", out)
        # a certificate the agent does not trust
        cred = os.path.join(self.agent.state, "credential.json")
        with open(cred) as f:
            c = json.load(f)
        other = os.path.join(self.tmp, "other.pem")
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", os.path.join(self.tmp, "other.key"), "-out", other, "-days",
             "1", "-subj", "/CN=other"])
        good = c["ca"]
        c["ca"] = other
        with open(cred, "w") as f:
            json.dump(c, f)
        rc, out = self.doctor()
        self.assertEqual(rc, 1)
        self.assertTrue(self.line(out, "[FAIL] broker TLS"), out)
        self.assertIn("give the broker's CA with --ca", out)
        c["ca"] = good
        with open(cred, "w") as f:
            json.dump(c, f)
        # revoked
        self.broker.admin("synctool", "revoke", "--tenant", "acme", "--name", "ACME-SYNC")
        rc, out = self.doctor()
        self.assertEqual(rc, 1)
        self.assertTrue(self.line(out, "[FAIL] broker credential"), out)
        self.assertIn("was revoked", out)
        self.assertIn("enrollment code", out)
        # the broker is down
        self.broker.stop()
        rc, out = self.doctor()
        self.assertEqual(rc, 1)
        self.assertTrue(self.line(out, "[FAIL] broker route"), out)
        self.assertIn("Connection refused", out)
        self.assertIn("firewall", out)

    def test_without_enrollment(self):
        p = subprocess.run([AGENT, "doctor", "--state", os.path.join(self.tmp, "nothing")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("[FAIL] state directory", p.stdout)
        self.assertIn("apsync-agent enroll", p.stdout)
        self.assertIn("no ERP is configured", p.stdout)
