"""Packaging: the example configs list every option; the programs speak
systemd's notify protocol (READY, WATCHDOG, STATUS, STOPPING); `make deb`
builds reproducible packages with the right Depends, which install on this
machine with dpkg, pass `systemd-analyze verify`, run as their units would
(dedicated user, no privileges, NOTIFY_SOCKET), upgrade keeping conffiles and
state, and purge leaving no user, config or state behind.

The install part needs root and dpkg (CI runs as root) and always purges what
it installed, failed or not."""
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import http.client
import subprocess
import tempfile
import time
import unittest

from harness import AGENT, BROKER, ROOT, Agent, Broker, Case, demo_erp, env, wait_for

PACKAGES = ("apsync-agent", "apsync-broker")
CONF = {"apsync-agent": "/etc/apsync/apsync-agent.conf",
        "apsync-broker": "/etc/apsync/apsync-broker.conf"}
STATE = {"apsync-agent": "/var/lib/apsync", "apsync-broker": "/var/lib/apsync-broker"}
UNIT = {p: "/lib/systemd/system/%s.service" % p for p in PACKAGES}
HELP = {"apsync-agent": [AGENT, "run", "--help"], "apsync-broker": [BROKER, "serve", "--help"]}
HELP_LINE = re.compile(r"^  --([a-z0-9][a-z0-9-]*)(?: (?:N|VALUE))?\s+(.*)$")


def sh(args, timeout=120, check=True, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(args), p.returncode,
                                                        p.stdout[-3000:], p.stderr[-3000:]))
    return p


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Notify:
    """The service manager's end of NOTIFY_SOCKET: a datagram socket that
    collects what the program says."""

    def __init__(self, directory, name="notify"):
        self.path = os.path.join(directory, name + ".sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)  # the service's user writes to it
        self.messages = []

    def read(self, seconds):
        deadline = time.time() + seconds
        while True:
            left = deadline - time.time()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                return

    def wait(self, line, timeout=10.0):
        """Waits for a message holding `line` (e.g. READY=1); returns it."""
        deadline = time.time() + timeout
        while True:
            for m in self.messages:
                if line in m.split("\n"):
                    return m
            if time.time() > deadline:
                raise AssertionError("no %s on NOTIFY_SOCKET within %.0f s; got %r" %
                                     (line, timeout, self.messages))
            self.read(0.1)

    def count(self, line):
        return sum(line in m.split("\n") for m in self.messages)

    def status(self):
        s = [l[7:] for m in self.messages for l in m.split("\n") if l.startswith("STATUS=")]
        return s[-1] if s else None

    def close(self):
        self.sock.close()


def help_options(program):
    """--help → {name: default or None}."""
    out = {}
    for line in sh(HELP[program]).stdout.splitlines():
        m = HELP_LINE.match(line)
        if m:
            d = re.search(r" \(default: (.*?)\)( \(SIGHUP reloads\))?$", m.group(2))
            out[m.group(1)] = d.group(1) if d else None
    return out


class ExampleConfigs(unittest.TestCase):
    def test_every_option_is_in_the_example_config_with_its_default(self):
        for program in PACKAGES:
            with open(os.path.join(ROOT, "packaging", program + ".conf")) as f:
                text = f.read()
            listed = set(re.findall(r"^#?([a-z0-9-]+) =", text, re.M))
            opts = help_options(program)
            self.assertTrue(opts, "no options parsed from " + " ".join(HELP[program]))
            missing = sorted(set(opts) - listed)
            self.assertEqual(missing, [], "packaging/%s.conf lacks options of --help; run "
                             "`make conf`" % program)
            self.assertEqual(sorted(listed - set(opts)), [],
                             "packaging/%s.conf has options --help no longer lists" % program)
            for name, default in opts.items():
                # paths into the source tree differ from the packaged build's
                if default is None or default.startswith(ROOT):
                    continue
                block = text[text.index("\n# %s: " % name):]
                block = block[:block.index("%s =" % name)]
                self.assertIn("Default: %s." % default, block, "option %s of %s" %
                              (name, program))

    def test_the_example_configs_load(self):
        """Each example, as shipped, is a config the program accepts."""
        p = sh(HELP["apsync-broker"][:2] + [
            "--config", os.path.join(ROOT, "packaging", "apsync-broker.conf"),
            "--listen", "not-an-address"], check=False)
        self.assertIn("is not HOST:PORT", p.stderr)  # read the file, then failed later
        p = sh([AGENT, "run", "--config", os.path.join(ROOT, "packaging", "apsync-agent.conf")],
               check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("needs --state DIR and --erp", p.stderr)


class ServiceNotify(Case):
    """The programs as systemd's Type=notify services see them (dev build)."""

    def spawn_env(self, args, name, extra_env):
        log = open(os.path.join(self.tmp, name + ".log"), "ab")
        e = env()
        e.update(extra_env)
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=e)
        log.close()
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        return p

    def test_broker_ready_watchdog_stopping(self):
        n = Notify(self.tmp)
        self.addCleanup(n.close)
        data = os.path.join(self.tmp, "broker")
        p = self.spawn_env([BROKER, "serve", "--listen", "127.0.0.1:0", "--data", data],
                           "broker", {"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": "200000"})
        ready = n.wait("READY=1")
        with open(os.path.join(data, "broker.port")) as f:
            port = int(f.read())
        self.assertIn("STATUS=listening on https://127.0.0.1:%d" % port, ready)
        n.read(1.0)
        # every 100 ms (half of WATCHDOG_USEC) from the event loop
        self.assertGreaterEqual(n.count("WATCHDOG=1"), 5, n.messages)
        p.send_signal(signal.SIGTERM)
        n.wait("STOPPING=1")
        self.assertEqual(p.wait(10), 0)

    def test_no_notify_socket_no_pings(self):
        """Without NOTIFY_SOCKET nothing is sent, even with WATCHDOG_USEC."""
        n = Notify(self.tmp)
        self.addCleanup(n.close)
        e = {"WATCHDOG_USEC": "100000"}
        data = os.path.join(self.tmp, "broker")
        p = self.spawn_env([BROKER, "serve", "--listen", "127.0.0.1:0", "--data", data],
                           "broker", e)
        wait_for(lambda: os.path.exists(os.path.join(data, "broker.port")), 10,
                 what="broker port file")
        n.read(0.5)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(10), 0)
        n.read(0.2)
        self.assertEqual(n.messages, [])

    def test_agent_ready_status_stopping(self):
        broker = Broker(self).start()
        broker.tenant("acme")
        agent = Agent(self, broker)
        agent.enroll(broker.code("acme", "ACME-SYNC"))
        erp = demo_erp(self, 200)
        n = Notify(self.tmp)
        self.addCleanup(n.close)
        p = self.spawn_env([AGENT, "run", "--state", agent.state, "--erp", "demo:" + erp],
                           "agent", {"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": "400000"})
        self.assertIn("STATUS=running; broker " + broker.url, n.wait("READY=1"))
        wait_for(lambda: n.read(0.1) or (n.status() or "").startswith("connected to"), 10,
                 what="STATUS=connected")
        self.assertEqual(n.status(), 'connected to %s as SyncTool "ACME-SYNC"' % broker.url)
        self.assertGreaterEqual(n.count("WATCHDOG=1"), 1)
        p.send_signal(signal.SIGTERM)
        n.wait("STOPPING=1")
        self.assertEqual(p.wait(10), 0)


def parse_unit(path):
    """A unit file → {section: {key: [values]}} (keys may repeat)."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = out.setdefault(line.strip("[]"), {})
                continue
            k, _, v = line.partition("=")
            section.setdefault(k.strip(), []).append(v.strip())
    return out


def seconds(value):
    m = re.fullmatch(r"(\d+)\s*(s|min|ms)?", value)
    n = int(m.group(1))
    return {"s": n, None: n, "min": n * 60, "ms": n / 1000}[m.group(2)]


def dpkg_status(pkg):
    p = sh(["dpkg-query", "-W", "-f", "${Status} ${Version}", pkg], check=False)
    return p.stdout.strip() if p.returncode == 0 else ""


def https_get(port, path, cafile, token=None):
    ctx = ssl.create_default_context(cafile=cafile)
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        c.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
        r = c.getresponse()
        return r.status, json.loads(r.read().decode() or "null")
    finally:
        c.close()


class Packages(unittest.TestCase):
    """make deb, then dpkg -i, run as the units would, upgrade, remove, purge."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("installs .debs with dpkg: needs root (CI runs as root)")
        for tool in ("dpkg", "dpkg-deb", "setpriv", "runuser"):
            if not shutil.which(tool):
                self.skipTest("%s is not installed" % tool)
        for pkg in PACKAGES:
            if dpkg_status(pkg) and "not-installed" not in dpkg_status(pkg):
                self.skipTest("%s is already installed here (%s) and the test would purge it; "
                              "`dpkg --purge apsync-agent apsync-broker` first" %
                              (pkg, dpkg_status(pkg)))
        self.tmp = tempfile.mkdtemp(prefix="apsync-pkg-")
        os.chmod(self.tmp, 0o755)  # the services' users reach the notify sockets and the ERP
        self.procs = []
        self.logs = {}
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.addCleanup(self.purge_everything)
        self.addCleanup(self.stop_all)
        if os.path.isdir("/run/systemd/system"):
            self.hold_services()
        with open(os.path.join(ROOT, "VERSION")) as f:
            self.v1 = f.read().strip()
        self.v2 = self.v1 + "+pkgtest1"

    # ---- helpers ----

    def hold_services(self):
        """Under a running systemd the maintainer scripts would start the
        services themselves; the test starts them its own way, so it forbids
        that for its duration through policy-rc.d, as chroots do."""
        path = "/usr/sbin/policy-rc.d"
        if os.path.exists(path):
            return  # the machine already has a policy
        with open(path, "w") as f:
            f.write("#!/bin/sh\n# apsync test_packaging: no service starts during the test\n"
                    "exit 101\n")
        os.chmod(path, 0o755)
        self.addCleanup(os.unlink, path)

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def purge_everything(self):
        p = sh(["dpkg", "--purge"] + list(PACKAGES), check=False, timeout=120)
        if p.returncode != 0:  # a half-installed package: force it out
            sh(["dpkg", "--purge", "--force-remove-reinstreq", "--force-depends"] +
               list(PACKAGES), check=False, timeout=120)

    def make_deb(self, version, out):
        e = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS",
                                                               "MAKELEVEL")}
        sh(["make", "-C", ROOT, "--no-print-directory", "-j%d" % (os.cpu_count() or 2), "deb",
            "VERSION=" + version, "DEB_OUT=" + out], env=e, timeout=600)
        arch = sh(["dpkg", "--print-architecture"]).stdout.strip()
        debs = {p: os.path.join(out, "%s_%s_%s.deb" % (p, version, arch)) for p in PACKAGES}
        for d in debs.values():
            self.assertTrue(os.path.isfile(d), d)
        return debs

    def dpkg(self, *args):
        return sh(["dpkg", "--force-confold"] + list(args), stdin=subprocess.DEVNULL,
                  timeout=180)

    def set_conf(self, pkg, name, value):
        """Sets an option in the installed config, as an administrator would."""
        path = CONF[pkg]
        with open(path) as f:
            text = f.read()
        text, n = re.subn(r"^#?%s =.*$" % re.escape(name), "%s = %s" % (name, value), text,
                          count=1, flags=re.M)
        self.assertEqual(n, 1, "no line for %s in %s" % (name, path))
        with open(path, "w") as f:
            f.write(text)

    def start_as_unit(self, pkg, notify):
        """Runs the unit's ExecStart as systemd would: its User/Group with
        their groups, no new privileges, an empty capability bounding set,
        its UMask and WorkingDirectory, NOTIFY_SOCKET and WATCHDOG_USEC."""
        svc = parse_unit(UNIT[pkg])["Service"]
        user, group = svc["User"][-1], svc["Group"][-1]
        env_ = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG": "C.UTF-8", "USER": user, "LOGNAME": user, "HOME": STATE[pkg],
                "SHELL": "/usr/sbin/nologin", "NOTIFY_SOCKET": notify.path,
                "STATE_DIRECTORY": "/var/lib/" + svc["StateDirectory"][-1],
                "WATCHDOG_USEC": str(int(seconds(svc["WatchdogSec"][-1]) * 1000000))}
        cmd = ["setpriv", "--reuid", user, "--regid", group, "--init-groups", "--no-new-privs",
               "--bounding-set", "-all", "--inh-caps", "-all", "--"]
        cmd += shlex.split(svc["ExecStart"][-1])
        log_path = os.path.join(self.tmp, "%s-%d.log" % (pkg, len(self.procs)))
        with open(log_path, "wb") as log:
            p = subprocess.Popen(cmd, cwd=svc["WorkingDirectory"][-1], env=env_,
                                 umask=int(svc["UMask"][-1], 8), stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        self.logs[p.pid] = log_path
        return p

    def log_of(self, p):
        with open(self.logs[p.pid], errors="replace") as f:
            return f.read()

    def as_user(self, user, *args):
        return sh(["runuser", "-u", user, "--"] + list(args), cwd="/")

    def stop_unit(self, p, notify):
        p.send_signal(signal.SIGTERM)
        notify.wait("STOPPING=1")
        self.assertEqual(p.wait(30), 0, self.log_of(p))

    def run_both(self, version, token=None, first=False):
        """Starts the broker, then the agent, as their units would; checks
        READY, health, the agent online; stops both. Returns the token."""
        nb = Notify(self.tmp, "broker-%s" % version)
        na = Notify(self.tmp, "agent-%s" % version)
        try:
            broker = self.start_as_unit("apsync-broker", nb)
            ready = nb.wait("READY=1", 20)
            self.assertIsNone(broker.poll(), self.log_of(broker))
            with open(os.path.join(STATE["apsync-broker"], "broker.port")) as f:
                port = int(f.read())
            self.assertIn("STATUS=listening on https://127.0.0.1:%d" % port, ready)
            # the unit's first watchdog ping comes at once
            nb.wait("WATCHDOG=1")
            cert = os.path.join(self.tmp, "broker-ca.pem")
            shutil.copyfile(os.path.join(STATE["apsync-broker"], "tls", "cert.pem"), cert)
            os.chmod(cert, 0o644)
            s, j = https_get(port, "/api/v1/health", cert)
            self.assertEqual((s, j["status"], j["version"]), (200, "ok", version))

            data = STATE["apsync-broker"]
            if first:
                self.as_user("apsync-broker", "apsync-broker", "admin", "--data", data, "tenant",
                             "create", "acme")
                token = self.as_user("apsync-broker", "apsync-broker", "admin", "--data", data,
                                     "user", "create", "--tenant", "acme", "--email",
                                     "ap@acme.test", "--role", "viewer").stdout.strip()
                code = self.as_user("apsync-broker", "apsync-broker", "admin", "--data", data,
                                    "synctool", "code", "--tenant", "acme", "--name",
                                    "PKG-SYNC").stdout.strip()
                # the agent's side: an ERP it may read (and write beside, for
                # SQLite), enrollment as its user, the ERP in its config
                erp_dir = os.path.join(self.tmp, "erp")
                os.mkdir(erp_dir)
                shutil.chown(erp_dir, "apsync-agent", "apsync-agent")
                erp = os.path.join(erp_dir, "erp.db")
                self.as_user("apsync-agent", "apsync-agent", "demo-erp", "--out", erp, "--rows",
                             "200", "--seed", "3")
                self.as_user("apsync-agent", "apsync-agent", "enroll", "--broker",
                             "wss://127.0.0.1:%d" % port, "--code", code, "--state",
                             STATE["apsync-agent"], "--ca", cert)
                self.set_conf("apsync-agent", "erp", "demo:" + erp)
            # state from before an upgrade: the user's token still works
            s, j = https_get(port, "/api/v1/me", cert, token)
            self.assertEqual(s, 200, j)

            agent = self.start_as_unit("apsync-agent", na)
            self.assertIn("STATUS=running; broker wss://127.0.0.1:%d" % port,
                          na.wait("READY=1", 20))

            def online():
                s, j = https_get(port, "/api/v1/synctools", cert, token)
                return s == 200 and [t for t in j["synctools"] if t["name"] == "PKG-SYNC" and
                                     t["status"] == "online" and t["version"] == version]
            wait_for(online, 20, what="the packaged SyncTool %s online" % version)
            na.wait("WATCHDOG=1")
            self.stop_unit(agent, na)
            self.stop_unit(broker, nb)
            return token
        finally:
            nb.close()
            na.close()

    # ---- the test ----

    def test_deb_build_install_run_upgrade_remove_purge(self):
        t0 = time.time()
        v1 = self.make_deb(self.v1, os.path.join(self.tmp, "v1"))
        v2 = self.make_deb(self.v2, os.path.join(self.tmp, "v2"))
        self.assertEqual(sh(["dpkg", "--compare-versions", self.v2, "gt", self.v1],
                            check=False).returncode, 0)
        t_build = time.time() - t0

        # reproducible: packing the same staged tree again gives the same bytes
        again = os.path.join(self.tmp, "again")
        sh([os.path.join(ROOT, "packaging", "mkdeb.sh"),
            os.path.join(ROOT, "build", "pkg", "stage-" + self.v1), self.v1, again])
        for pkg, deb in v1.items():
            self.assertEqual(sha256(deb), sha256(os.path.join(again, os.path.basename(deb))),
                             pkg + " .deb is not reproducible")

        # Depends names the package of every library the program loads
        for pkg, deb in v1.items():
            fields = {k: sh(["dpkg-deb", "-f", deb, k]).stdout.strip()
                      for k in ("Package", "Version", "Architecture", "Depends")}
            self.assertEqual(fields["Package"], pkg)
            self.assertEqual(fields["Version"], self.v1)
            depends = {d.split()[0] for d in fields["Depends"].split(", ")}
            self.assertIn("adduser", depends)
            binary = os.path.join(ROOT, "build", "pkg", "stage-" + self.v1, "usr", "bin", pkg)
            needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]",
                                sh(["readelf", "-d", binary]).stdout)
            self.assertIn("libsystemd.so.0", needed)
            for line in sh(["ldd", binary]).stdout.splitlines():
                m = re.match(r"\s*(\S+) => (/\S+)", line)
                if not m or m.group(1) not in needed:
                    continue  # loaded by another library, whose package depends on it
                owner = sh(["dpkg", "-S", os.path.realpath(m.group(2))], check=False)
                if owner.returncode:
                    owner = sh(["dpkg", "-S", m.group(2)])
                owner = owner.stdout.split(":")[0]
                self.assertIn(owner, depends, "%s loads %s of %s" % (pkg, m.group(1), owner))
            self.assertEqual(sh(["dpkg-deb", "--info", deb, "conffiles"]).stdout.split(),
                             [CONF[pkg]])

        # ---- install ----
        t1 = time.time()
        self.dpkg("-i", v1["apsync-broker"], v1["apsync-agent"])
        for pkg in PACKAGES:
            self.assertTrue(dpkg_status(pkg).startswith("install ok installed " + self.v1))
            self.assertTrue(os.access("/usr/bin/" + pkg, os.X_OK))
            self.assertIn(CONF[pkg], sh(["dpkg-query", "-W", "-f", "${Conffiles}", pkg]).stdout)
            pw = sh(["getent", "passwd", pkg]).stdout.strip().split(":")
            self.assertLess(int(pw[2]), 1000, "a system user")
            self.assertEqual((pw[5], pw[6]), (STATE[pkg], "/usr/sbin/nologin"))
            sh(["getent", "group", pkg])
            st = os.stat(STATE[pkg])
            self.assertEqual((st.st_uid, st.st_mode & 0o777), (int(pw[2]), 0o700))
            st = os.stat(CONF[pkg])
            self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777),
                             (0, int(pw[3]), 0o640))
            with open(CONF[pkg]) as f, open(os.path.join(ROOT, "packaging",
                                                         pkg + ".conf")) as g:
                self.assertEqual(f.read(), g.read())
            self.assertTrue(os.path.islink(
                "/etc/systemd/system/multi-user.target.wants/%s.service" % pkg), "enabled")
        self.assertTrue(os.path.isfile("/usr/share/apsync/web/index.html"))
        self.assertTrue(os.path.isfile("/usr/share/apsync/profiles/demo.json"))
        self.assertIn("/usr/share/apsync/web", sh(["apsync-broker", "serve", "--help"]).stdout)

        # ---- the units ----
        for pkg in PACKAGES:
            svc = parse_unit(UNIT[pkg])["Service"]
            want = {"Type": "notify", "Restart": "on-failure", "User": pkg, "Group": pkg,
                    "ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                    "ProtectHome": "yes", "CapabilityBoundingSet": "",
                    "StateDirectory": os.path.basename(STATE[pkg]),
                    "ExecStart": "/usr/bin/%s %s --config %s" % (
                        pkg, "run" if pkg == "apsync-agent" else "serve", CONF[pkg])}
            for k, v in want.items():
                self.assertEqual(svc.get(k, [None])[-1], v, "%s: %s=" % (pkg, k))
            self.assertIn("@system-service", svc["SystemCallFilter"])
            self.assertEqual(svc["RestrictAddressFamilies"], ["AF_UNIX AF_INET AF_INET6"])
            self.assertIn("WatchdogSec", svc)
        with self.subTest("systemd-analyze verify"):
            if not shutil.which("systemd-analyze"):
                self.skipTest("systemd-analyze is not installed: units not verified")
            p = sh(["systemd-analyze", "verify"] + list(UNIT.values()), check=False)
            self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))
            p = sh(["systemd-analyze", "security", "--offline=yes"] + list(UNIT.values()),
                   check=False)
            levels = re.findall(r"Overall exposure level for (\S+): ([\d.]+)", p.stdout)
            self.assertEqual(len(levels), 2, p.stdout + p.stderr)
            for unit, level in levels:
                self.assertLessEqual(float(level), 2.0, "%s exposure %s" % (unit, level))

        # ---- run as the units would ----
        # a fixed free port: the agent's credential names it, and must work after the upgrade
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.set_conf("apsync-broker", "listen", "127.0.0.1:%d" % port)
        token = self.run_both(self.v1, first=True)
        for pkg in PACKAGES:  # what the services wrote is theirs, for them only
            for dirpath, dirs, files in os.walk(STATE[pkg]):
                for name in dirs + files:
                    path = os.path.join(dirpath, name)
                    self.assertEqual(os.stat(path).st_uid, os.stat(STATE[pkg]).st_uid, path)
        self.assertEqual(os.stat(os.path.join(STATE["apsync-broker"], "tls",
                                              "key.pem")).st_mode & 0o077, 0)
        kept = {p: open(CONF[p]).read() for p in PACKAGES}
        cert = sha256(os.path.join(STATE["apsync-broker"], "tls", "cert.pem"))
        cred = sha256(os.path.join(STATE["apsync-agent"], "credential.json"))
        uids = {p: sh(["id", "-u", p]).stdout for p in PACKAGES}

        # ---- upgrade: conffiles as the administrator left them, state kept ----
        self.dpkg("-i", v2["apsync-broker"], v2["apsync-agent"])
        for pkg in PACKAGES:
            self.assertTrue(dpkg_status(pkg).startswith("install ok installed " + self.v2))
            self.assertIn(self.v2, sh(["/usr/bin/" + pkg, "--version"]).stdout)
            self.assertEqual(open(CONF[pkg]).read(), kept[pkg], "conffile kept")
            self.assertEqual(sh(["id", "-u", pkg]).stdout, uids[pkg])
            for suffix in (".dpkg-dist", ".dpkg-new", ".dpkg-old"):
                self.assertFalse(os.path.exists(CONF[pkg] + suffix))
        self.assertEqual(sha256(os.path.join(STATE["apsync-broker"], "tls", "cert.pem")), cert)
        self.assertEqual(sha256(os.path.join(STATE["apsync-agent"], "credential.json")), cred)
        self.run_both(self.v2, token=token)

        # ---- remove: the programs go, config, state and users stay ----
        self.dpkg("--remove", "apsync-agent", "apsync-broker")
        for pkg in PACKAGES:
            self.assertTrue(dpkg_status(pkg).startswith("deinstall ok config-files"))
            self.assertFalse(os.path.exists("/usr/bin/" + pkg))
            self.assertFalse(os.path.exists(UNIT[pkg]))
            self.assertEqual(open(CONF[pkg]).read(), kept[pkg])
            self.assertTrue(os.path.isdir(STATE[pkg]))
            sh(["getent", "passwd", pkg])

        # ---- purge: nothing left ----
        self.dpkg("--purge", "apsync-agent", "apsync-broker")
        for pkg in PACKAGES:
            self.assertEqual(dpkg_status(pkg), "")
            self.assertNotEqual(sh(["getent", "passwd", pkg], check=False).returncode, 0,
                                "user %s left" % pkg)
            self.assertNotEqual(sh(["getent", "group", pkg], check=False).returncode, 0,
                                "group %s left" % pkg)
            self.assertFalse(os.path.exists(CONF[pkg]))
            self.assertFalse(os.path.exists(STATE[pkg]))
            self.assertFalse(os.path.lexists(
                "/etc/systemd/system/multi-user.target.wants/%s.service" % pkg))
        self.assertFalse(os.path.exists("/etc/apsync"))
        self.assertFalse(os.path.exists("/usr/share/apsync"))
        print("# packaging: build %.1f s, install → run → upgrade → run → purge %.1f s" %
              (t_build, time.time() - t1), flush=True)
