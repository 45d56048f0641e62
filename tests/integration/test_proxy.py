"""Corporate networks: the agent reaches the broker through a real HTTP proxy
(tinyproxy on loopback) with CONNECT, set by --proxy or by HTTPS_PROXY, goes
direct when NO_PROXY covers the broker, and says so when the proxy is down,
then connects once it is back."""
import os
import socket
import subprocess
import time

from harness import ROOT, Case, run, wait_for

FAST = ["--reconnect-min", "100", "--reconnect-max", "500"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proxy:
    def __init__(self, case, allow_port):
        self.case = case
        self.port = free_port()
        self.log = os.path.join(case.tmp, "tinyproxy.log")
        self.conf = os.path.join(case.tmp, "tinyproxy.conf")
        with open(self.conf, "w") as f:
            f.write("Port %d\nListen 127.0.0.1\nTimeout 60\nLogFile \"%s\"\nLogLevel Info\n"
                    "MaxClients 20\nAllow 127.0.0.1\nConnectPort %d\n"
                    % (self.port, self.log, allow_port))
        self.proc = None

    def start(self):
        self.proc = self.case.spawn(["tinyproxy", "-d", "-c", self.conf], "tinyproxy")
        wait_for(lambda: self._listening(), 10, what="tinyproxy listening")
        return self

    def _listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def connects(self, port):
        if not os.path.exists(self.log):
            return 0
        with open(self.log, errors="replace") as f:
            return f.read().count("CONNECT 127.0.0.1:%d" % port)


class ThroughAProxy(Case):
    @classmethod
    def setUpClass(cls):
        run(["sh", os.path.join(ROOT, "packaging", "deps.sh"), "proxy"], timeout=600)

    def setUp(self):
        super().setUp()
        self.world(start_agent=False)
        self.proxy = Proxy(self, self.broker.port)

    def synced(self):
        self.wait_online()
        blue = self.entity("BLUE")
        job = self.wait_job(self.sync(blue["id"])["id"], 60)
        self.assertEqual(job["status"], "success")

    def test_proxy_option_tunnels_the_websocket(self):
        self.proxy.start()
        self.agent.start(self.erp, FAST + ["--proxy", "http://127.0.0.1:%d" % self.proxy.port])
        self.synced()
        self.assertGreaterEqual(self.proxy.connects(self.broker.port), 1)
        self.assertIn("through the HTTP proxy 127.0.0.1:%d" % self.proxy.port,
                      self.agent.proc.text())

    def test_https_proxy_from_the_environment_and_no_proxy(self):
        self.proxy.start()
        os.environ["HTTPS_PROXY"] = "127.0.0.1:%d" % self.proxy.port
        try:
            self.agent.start(self.erp, FAST)
        finally:
            del os.environ["HTTPS_PROXY"]
        self.synced()
        seen = self.proxy.connects(self.broker.port)
        self.assertGreaterEqual(seen, 1)
        self.agent.stop()
        os.environ["HTTPS_PROXY"] = "127.0.0.1:%d" % self.proxy.port
        os.environ["NO_PROXY"] = "localhost,127.0.0.1"
        try:
            self.agent.start(self.erp, FAST)
        finally:
            del os.environ["HTTPS_PROXY"], os.environ["NO_PROXY"]
        self.synced()
        self.assertEqual(self.proxy.connects(self.broker.port), seen)  # went direct
        self.assertIn("NO_PROXY covers 127.0.0.1", self.agent.proc.text())

    def test_a_proxy_that_is_down_is_retried_until_it_is_back(self):
        self.agent.start(self.erp, FAST + ["--proxy", "127.0.0.1:%d" % self.proxy.port])
        time.sleep(1.5)
        s, tools = self.broker.api("GET", "/api/v1/synctools", self.token)
        self.assertEqual(tools["synctools"][0]["status"], "offline")
        self.assertIn("cannot connect to %s through the HTTP proxy 127.0.0.1:%d"
                      % (self.broker.url, self.proxy.port), self.agent.proc.text())
        self.proxy.start()
        self.synced()

    def test_a_bad_proxy_setting_is_refused_at_start(self):
        p = subprocess.run([os.path.join(ROOT, "build", "bin", "apsync-agent"), "run", "--state",
                            self.agent.state, "--erp", "demo:" + self.erp, "--proxy",
                            "socks5://127.0.0.1:1080"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("only http:// proxies", p.stderr)

    def test_doctor_checks_the_route_through_the_proxy(self):
        args = [os.path.join(ROOT, "build", "bin", "apsync-agent"), "doctor", "--state",
                self.agent.state, "--erp", "demo:" + self.erp, "--proxy",
                "127.0.0.1:%d" % self.proxy.port]
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("[FAIL] proxy", p.stdout)
        self.assertIn("cannot connect to the proxy 127.0.0.1:%d" % self.proxy.port, p.stdout)
        self.proxy.start()
        os.chmod(self.agent.state, 0o700)
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("[ ok ] proxy              127.0.0.1:%d tunnels to 127.0.0.1:%d"
                      % (self.proxy.port, self.broker.port), p.stdout)
        self.assertIn("[ ok ] broker credential", p.stdout)
        self.assertGreaterEqual(self.proxy.connects(self.broker.port), 1)
