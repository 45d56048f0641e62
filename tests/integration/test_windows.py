"""The Windows agent (make windows: build-win/bin/apsync-agent.exe, cross-built
with mingw-w64) under wine, against a real Linux broker over TLS: its unit
tests pass; it makes a demo ERP and enrolls; `service install` registers it
with the Service Control Manager, `service start` runs it as a service that
connects, syncs and logs to %ProgramData%\\apsync\\logs; `service stop`
stops it cleanly; after a reboot it runs again by itself; `service uninstall`
removes it.

Part of `make check`; `make windows-check` runs only these. wine is Debian's
wine64 (/usr/lib/wine/wine64), installed by packaging/windows/deps.sh.
"""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import ROOT, Broker, Case, erp_counts, wait_for

WIN_BUILD = os.path.join(ROOT, os.environ.get("APSYNC_WIN_BUILD", "build-win"))
WIN_AGENT = os.path.join(WIN_BUILD, "bin", "apsync-agent.exe")
WIN_TESTS = [os.path.join(WIN_BUILD, "tests", n + ".exe")
             for n in ("test_plat", "test_codec", "test_config")]


def wine_program():
    for name in ("wine64", "wine"):
        path = shutil.which(name) or (os.path.exists("/usr/lib/wine/" + name) and
                                      "/usr/lib/wine/" + name)
        if path:
            return path
    return None


def winpath(path):
    """A Linux path as wine's programs see it (drive Z: is /)."""
    return "Z:" + path.replace("/", "\\")


class Windows(Case):
    @classmethod
    def setUpClass(cls):
        cls.wine = wine_program()
        if not cls.wine or not os.path.exists(WIN_AGENT):
            raise AssertionError("needs wine64 and %s: run `make windows-check`" % WIN_AGENT)
        cls.prefix = tempfile.mkdtemp(prefix="apsync-wine-")
        cls.wenv = dict(os.environ, WINEPREFIX=cls.prefix, WINEDEBUG="-all",
                        WINEDLLOVERRIDES="mscoree,mshtml=", WINEARCH="win64")
        cls.wenv.pop("DISPLAY", None)
        cls.server = os.path.join(os.path.dirname(cls.wine), "wineserver")
        if not os.path.exists(cls.server):
            cls.server = "wineserver"
        rc, out = cls.run_wine(["wineboot", "--init"], 300)
        cls.shutdown()
        if rc:
            raise AssertionError("wineboot failed:\n" + out)
        cls.boot()
        cls.data = os.path.join(cls.prefix, "drive_c", "ProgramData", "apsync")
        os.makedirs(cls.data, exist_ok=True)

    @classmethod
    def run_wine(cls, args, timeout):
        """Runs a program under wine; its exit code and output. The output goes
        through a file: processes wine starts on the way (services, drivers)
        outlive the command and would hold a pipe open."""
        with tempfile.TemporaryFile() as out:
            p = subprocess.run([cls.wine] + args, env=cls.wenv, stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
            out.seek(0)
            return p.returncode, out.read().decode(errors="replace")

    @classmethod
    def boot(cls):
        """A wine server that stays up between commands: otherwise each
        command would boot "Windows" again (and start its services)."""
        # it outlives the command: it must not hold the test's output open
        subprocess.run([cls.server, "-p"], env=cls.wenv, timeout=60, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @classmethod
    def shutdown(cls):
        subprocess.run([cls.server, "-k"], env=cls.wenv, timeout=60)
        subprocess.run([cls.server, "-w"], env=cls.wenv, timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.shutdown()
        if os.environ.get("APSYNC_KEEP"):
            print("# kept " + cls.prefix)
        else:
            shutil.rmtree(cls.prefix, ignore_errors=True)

    def agent(self, *args, timeout=120):
        return self.run_wine([WIN_AGENT] + list(args), timeout)

    def step(self, rc_wanted, text_wanted, *args):
        """Runs the Windows program; checks its exit code and what it says."""
        rc, out = self.agent(*args)
        log = os.path.join(self.data, "logs", "agent.log")
        if rc != rc_wanted and os.path.exists(log):
            with open(log, encoding="utf-8", errors="replace") as f:
                out += "\nthe service's log:\n" + f.read()[-3000:]
        self.assertEqual(rc, rc_wanted, out)
        self.assertIn(text_wanted, out)
        return out

    def test_unit_tests_pass_on_windows(self):
        for exe in WIN_TESTS:
            rc, out = self.run_wine([exe], 300)
            oks = [l for l in out.splitlines() if l.startswith("ok ")]
            bad = [l for l in out.splitlines() if l.startswith("not ok")]
            self.assertEqual((rc, bad), (0, []), "%s:\n%s" % (exe, out[-5000:]))
            self.assertGreater(len(oks), 2, out)

    def test_service_install_run_stop_uninstall(self):
        broker = Broker(self).start()
        broker.tenant("acme")
        token = broker.user("acme", "ap@acme.test", "invoice_exporter")
        self.broker, self.token = broker, token

        # the Windows program makes its ERP and enrolls, as an administrator would
        rc, out = self.agent("demo-erp", "--out", "C:\\ProgramData\\apsync\\erp.db", "--rows",
                             "300", timeout=300)
        self.assertEqual(rc, 0, out)
        rc, out = self.agent("enroll", "--broker", broker.url, "--code",
                             broker.code("acme", "WIN-SYNC"), "--state",
                             "C:\\ProgramData\\apsync\\agent", "--ca", winpath(broker.cert))
        self.assertEqual(rc, 0, out)
        self.assertTrue(os.path.exists(os.path.join(self.data, "agent", "credential.json")))
        with open(os.path.join(self.data, "agent.conf"), "w") as f:
            f.write("# the service's configuration, as in packaging/apsync-agent.conf\n"
                    "state = C:\\ProgramData\\apsync\\agent\n"
                    "erp = demo:C:\\ProgramData\\apsync\\erp.db\n"
                    "log-level = info\n"
                    "reconnect-min = 200\n")

        # doctor, on Windows too: the route, TLS, the credential, the ERP
        out = self.step(0, "0 problems", "doctor", "--config",
                        "C:\\ProgramData\\apsync\\agent.conf")
        for what in ("broker route", "broker TLS", "broker credential", "ERP company"):
            self.assertTrue([l for l in out.splitlines() if what in l and
                             l.startswith("[ ok ]")], "%s\n%s" % (what, out))

        self.step(1, "not installed", "service", "status")
        # only the SCM starts `service run`
        self.step(2, "only the Service Control Manager", "service", "run", "--config",
                  "C:\\ProgramData\\apsync\\agent.conf")

        out = self.step(0, "installed the service apsync-agent", "service", "install")
        self.assertIn("service run --config", out)
        self.step(1, "installed already", "service", "install")

        self.step(0, "apsync-agent is running", "service", "start")
        self.step(0, "apsync-agent is running", "service", "status")
        tool = self.wait_online("WIN-SYNC")
        self.assertTrue(tool.get("os", "").startswith("Windows "), tool)

        # a real sync through the service
        ent = self.entity("BLUE")
        job = self.sync(ent["id"])
        done = self.wait_job(job["id"], timeout=120)
        self.assertEqual(done["status"], "success", done)
        want = erp_counts(os.path.join(self.data, "erp.db"), "BLUE")
        got = self.stored_counts(ent["id"])
        self.assertEqual(got["vendors"], want["vendors"])
        self.assertEqual(got["purchase_orders"], want["purchase_orders"])

        log = os.path.join(self.data, "logs", "agent.log")
        wait_for(lambda: os.path.exists(log), 10, what="the service's log file")
        with open(log, encoding="utf-8", errors="replace") as f:
            text = f.read()
        self.assertIn('SyncTool "WIN-SYNC" of tenant acme', text)
        self.assertIn("job %d" % job["id"], text)

        self.step(0, "apsync-agent stopped", "service", "stop")
        self.step(3, "apsync-agent is stopped", "service", "status")

        def offline():
            s, j = broker.api("GET", "/api/v1/synctools", token)
            return [t for t in j["synctools"] if t["name"] == "WIN-SYNC" and
                    t["status"] != "online"]
        wait_for(offline, 15, what="the SyncTool offline after the service stopped")
        with open(log, encoding="utf-8", errors="replace") as f:
            self.assertIn("stopped", f.read().splitlines()[-1])

        # "Windows" shuts down and boots again: the service starts by itself
        self.shutdown()
        self.boot()
        wait_for(lambda: self.agent("service", "status")[0] == 0, 60,
                 what="the service running after a reboot")
        self.wait_online("WIN-SYNC")

        self.step(0, "removed the service apsync-agent", "service", "uninstall")
        self.step(1, "not installed", "service", "status")
        # state, configuration and logs are kept
        self.assertTrue(os.path.exists(os.path.join(self.data, "agent", "state.db")))


if __name__ == "__main__":
    unittest.main()
