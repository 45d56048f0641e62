"""Integration test harness: runs the real apsync-broker and apsync-agent on
free loopback ports with their own data directories, talks to them as users
and agents would, and always stops them.

Processes are started with a log file each; a test's tearDown stops them and
fails the test if a sanitizer (make asan) reported anything.
"""
import atexit
import http.client
import json
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("APSYNC_BUILD", "build"))
AGENT = os.path.join(BUILD, "bin", "apsync-agent")
BROKER = os.path.join(BUILD, "bin", "apsync-broker")
WSPROBE = os.path.join(BUILD, "tests", "wsprobe")
VECTORS = os.path.join(ROOT, "proto", "vectors", "frames.json")
ASAN = os.environ.get("APSYNC_ASAN") == "1"
# Sanitized programs are slower; deadlines stretch with them.
SLOW = 4.0 if ASAN else 1.0

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

_live = []


def _kill_all():
    for p in list(_live):
        try:
            p.kill()
        except OSError:
            pass


atexit.register(_kill_all)


def env():
    e = dict(os.environ)
    if ASAN:
        e["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:halt_on_error=1"
        e["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return e


def wait_for(fn, timeout=10.0, interval=0.05, what="condition"):
    """Polls fn until it returns a true value; returns it, or fails."""
    deadline = time.time() + timeout * SLOW
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, http.client.HTTPException, ValueError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class Proc:
    """A program of ours running with its output in a log file."""

    def __init__(self, args, log_path, cwd=None):
        self.args = args
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd,
                                  env=env())
        _live.append(self.p)

    def alive(self):
        return self.p.poll() is None

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def wait(self, timeout=10.0):
        try:
            return self.p.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL if it does not end; returns the exit code."""
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.p.kill()
                self.p.wait()
        return self.finish()

    def kill9(self):
        if self.alive():
            self.p.kill()
        self.p.wait()
        return self.finish()

    def finish(self):
        if self.p in _live:
            _live.remove(self.p)
        self.log.close()
        return self.p.returncode

    def sanitizer_report(self):
        t = self.text()
        for mark in SANITIZER_MARKS:
            i = t.find(mark)
            if i >= 0:
                return t[max(0, i - 200):i + 3000]
        return None


def run(args, check=True, timeout=60, cwd=None):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout * SLOW, cwd=cwd,
                       env=env())
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(args), p.returncode, p.stdout,
                                                        p.stderr))
    return p


class Broker:
    def __init__(self, case, name="broker", extra=()):
        self.case = case
        self.data = os.path.join(case.tmp, name)
        self.name = name
        self.extra = list(extra)
        self.port = 0
        self.proc = None

    @property
    def cert(self):
        return os.path.join(self.data, "tls", "cert.pem")

    @property
    def url(self):
        return "wss://127.0.0.1:%d" % self.port

    def start(self, extra=()):
        portfile = os.path.join(self.data, "broker.port")
        if os.path.exists(portfile):
            os.unlink(portfile)
        args = [BROKER, "serve", "--listen", "127.0.0.1:%d" % self.port, "--data", self.data,
                "--log-level", "info"] + self.extra + list(extra)
        self.proc = self.case.spawn(args, self.name)
        wait_for(lambda: os.path.exists(portfile) or not self.proc.alive(), 10,
                 what="broker port file")
        if not self.proc.alive():
            raise AssertionError("broker did not start:\n" + self.proc.text())
        with open(portfile) as f:
            self.port = int(f.read())
        wait_for(lambda: self.api("GET", "/api/v1/health")[0] == 200, 10, what="broker health")
        return self

    def stop(self):
        return self.proc.stop() if self.proc else None

    def kill9(self):
        return self.proc.kill9()

    def admin(self, *args, check=True):
        return run([BROKER, "admin", "--data", self.data] + list(args), check=check)

    def tenant(self, name):
        self.admin("tenant", "create", name)

    def user(self, tenant, email, role="invoice_exporter"):
        return self.admin("user", "create", "--tenant", tenant, "--email", email, "--role",
                          role).stdout.strip()

    def code(self, tenant, synctool):
        return self.admin("synctool", "code", "--tenant", tenant, "--name",
                          synctool).stdout.strip()

    def api(self, method, path, token=None, body=None, headers=None, raw=None):
        ctx = ssl.create_default_context(cafile=self.cert)
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=10 * SLOW)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read().decode()
            try:
                return r.status, json.loads(text) if text else None
            except ValueError:
                return r.status, text
        finally:
            c.close()

    def db(self):
        """The store, read-only, to check what was stored."""
        return sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "broker.db"),
                               uri=True, timeout=10)


class Agent:
    def __init__(self, case, broker, name="agent"):
        self.case = case
        self.broker = broker
        self.state = os.path.join(case.tmp, name)
        self.name = name
        self.proc = None

    def enroll(self, code, trust="ca", check=True, url=None):
        args = [AGENT, "enroll", "--broker", url or self.broker.url, "--code", code,
                "--state", self.state]
        if trust == "ca":
            args += ["--ca", self.broker.cert]
        elif trust == "insecure":
            args += ["--insecure"]
        elif trust and trust.startswith("pin:"):
            args += ["--pin", trust[4:]]
        return run(args, check=check)

    def start(self, erp, extra=()):
        spec = erp if ":" in erp else self.case.erp_spec(erp)
        args = [AGENT, "run", "--state", self.state, "--erp", spec, "--log-level",
                "info", "--reconnect-min", "100", "--reconnect-max", "1000"] + list(extra)
        self.proc = self.case.spawn(args, self.name)
        return self

    def stop(self):
        return self.proc.stop() if self.proc else None

    def kill9(self):
        return self.proc.kill9()

    def credential(self):
        with open(os.path.join(self.state, "credential.json")) as f:
            return json.load(f)


_erp_cache = {}


def demo_erp(case, rows=2000, seed=1):
    """A demo ERP file for the test: generated once per (rows, seed) per run, copied."""
    key = (rows, seed)
    if key not in _erp_cache:
        d = tempfile.mkdtemp(prefix="apsync-erp-")
        atexit.register(shutil.rmtree, d, True)
        path = os.path.join(d, "erp-%d-%d.db" % key)
        run([AGENT, "demo-erp", "--out", path, "--rows", str(rows), "--seed", str(seed)],
            timeout=600)
        _erp_cache[key] = path
    dst = os.path.join(case.tmp, "erp-%d-%d.db" % key)
    if not os.path.exists(dst):
        shutil.copyfile(_erp_cache[key], dst)
    return dst


def erp_counts(path, company):
    """Rows per canonical list in a demo ERP, counted straight from its tables
    (the import profile takes purchase orders of types S and D only)."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    q = {
        "vendors": "SELECT count(*) FROM vendors WHERE company_code=?",
        "separate_checks": "SELECT count(*) FROM vendors WHERE company_code=? AND "
                           "separate_check=1",
        "gl_accounts": "SELECT count(*) FROM gl_accounts WHERE company_code=?",
        "items": "SELECT count(*) FROM items WHERE company_code=?",
        "tax_codes": "SELECT count(*) FROM tax_codes WHERE company_code=?",
        "units": "SELECT count(*) FROM units WHERE company_code=?",
        "warehouses": "SELECT count(*) FROM warehouses WHERE company_code=?",
        "divisions": "SELECT count(*) FROM divisions WHERE company_code=?",
        "bank_accounts": "SELECT count(*) FROM bank_accounts WHERE company_code=?",
        "purchase_orders": "SELECT count(*) FROM po_headers WHERE company_code=? AND "
                           "po_type IN ('S','D')",
        "receivings": "SELECT count(*) FROM receipts r JOIN po_headers p ON "
                      "p.company_code=r.company_code AND p.po_no=r.po_no WHERE "
                      "r.company_code=? AND p.po_type IN ('S','D')",
        "payments": "SELECT count(*) FROM ap_payments WHERE company_code=?",
    }
    out = {k: db.execute(v, (company,)).fetchone()[0] for k, v in q.items()}
    db.close()
    return out


class Case(unittest.TestCase):
    """A test with its own temporary directory and processes."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="apsync-test-")
        self.procs = []

    def erp_spec(self, path):
        """How the agent is told to read a demo ERP file; subclasses read it
        through other connectors (a SQL profile, ODBC)."""
        return "demo:" + path

    def spawn(self, args, name):
        p = Proc(args, os.path.join(self.tmp, name + ".log"))
        self.procs.append(p)
        return p

    def tearDown(self):
        reports = []
        for p in self.procs:
            if p.alive():
                p.stop()
            elif not p.log.closed:
                p.finish()
            r = p.sanitizer_report()
            if r:
                reports.append("%s:\n%s" % (os.path.basename(p.log_path), r))
        failed = hasattr(self, "_outcome") and any(
            e[1] is not None for e in getattr(self._outcome, "errors", []))
        if os.environ.get("APSYNC_KEEP") or (failed and os.environ.get("APSYNC_KEEP_FAILED")):
            print("# kept " + self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if reports:
            self.fail("sanitizer report:\n" + "\n".join(reports))

    # ---- a ready world: broker, tenant, user, enrolled and running agent ----

    def world(self, rows=2000, broker_extra=(), agent_extra=(), start_agent=True):
        self.broker = Broker(self, extra=broker_extra).start()
        self.broker.tenant("acme")
        self.token = self.broker.user("acme", "ap@acme.test", "invoice_exporter")
        self.erp = demo_erp(self, rows)
        self.agent = Agent(self, self.broker)
        self.agent.enroll(self.broker.code("acme", "ACME-SYNC"))
        if start_agent:
            self.agent.start(self.erp, agent_extra)
            self.wait_online()
        return self

    def wait_online(self, name="ACME-SYNC", token=None):
        def online():
            s, j = self.broker.api("GET", "/api/v1/synctools", token or self.token)
            return s == 200 and [t for t in j["synctools"]
                                 if t["name"] == name and t["status"] == "online"]
        return wait_for(online, 15, what="SyncTool %s online" % name)[0]

    def entity(self, code="BLUE", token=None):
        def find():
            s, j = self.broker.api("GET", "/api/v1/entities", token or self.token)
            return [e for e in j["entities"] if e["code"] == code]
        return wait_for(find, 10, what="entity " + code)[0]

    def sync(self, entity_id, token=None, **kw):
        body = {"entity": entity_id, "mode": "full"}
        body.update(kw)
        s, j = self.broker.api("POST", "/api/v1/syncs", token or self.token, body)
        self.assertEqual(s, 202, j)
        return j

    def stored_counts(self, entity_id, token=None):
        """Items held per list (not deleted), as the API reports them."""
        s, j = self.broker.api("GET", "/api/v1/entities/%d/lists" % entity_id,
                               token or self.token)
        assert s == 200, j
        return {l["list"]: l["items"] for l in j["lists"] if l["items"]}

    def items(self, entity_id, list_name, token=None, **query):
        """Every item of a list through the paged API: {key: item}."""
        out, cursor = {}, None
        while True:
            q = dict(query, limit=1000)
            if cursor:
                q["cursor"] = cursor
            qs = "&".join("%s=%s" % kv for kv in q.items())
            s, page = self.broker.api("GET", "/api/v1/entities/%d/lists/%s?%s" % (
                entity_id, list_name, qs), token or self.token)
            assert s == 200, page
            out.update((i["key"], i) for i in page["items"])
            cursor = page["next"]
            if not cursor:
                return out

    def wait_job(self, job_id, timeout=60, token=None,
                 done=("success", "partial", "failed", "cancelled", "timed_out")):
        def finished():
            s, j = self.broker.api("GET", "/api/v1/syncs/%d" % job_id, token or self.token)
            return j if s == 200 and j["status"] in done else None
        return wait_for(finished, timeout, interval=0.1, what="sync %d to finish" % job_id)
