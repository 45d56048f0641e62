#!/usr/bin/env python3
"""`make demo`: a broker with its SQLite store, an agent enrolled against the
bundled demo ERP, a real full sync of both companies, a summary, and the two
programs kept running until Ctrl-C.

Everything lives in ./demo-data (APSYNC_DEMO_DIR); a second run reuses it:
the same ERP file, store, API token and enrolled agent. The broker listens on
127.0.0.1:8443 (APSYNC_DEMO_PORT).
"""
import http.client
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, os.environ.get("APSYNC_BUILD", "build"), "bin")
AGENT, BROKER = os.path.join(BIN, "apsync-agent"), os.path.join(BIN, "apsync-broker")
DIR = os.path.abspath(os.environ.get("APSYNC_DEMO_DIR", os.path.join(ROOT, "demo-data")))
PORT = int(os.environ.get("APSYNC_DEMO_PORT", "8443"))
ROWS = os.environ.get("APSYNC_DEMO_ROWS", "5000")
BROKER_DATA = os.path.join(DIR, "broker")
CERT = os.path.join(BROKER_DATA, "tls", "cert.pem")
STATE = os.path.join(DIR, "agent")
ERP = os.path.join(DIR, "erp.db")
TOKEN_FILE = os.path.join(DIR, "api-token")
PASSWORD_FILE = os.path.join(DIR, "password")

procs = []


def say(msg):
    print("==> " + msg, flush=True)


def die(msg):
    print("demo: " + msg, file=sys.stderr, flush=True)
    stop()
    sys.exit(1)


def stop(*_):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def admin(*args, check=True):
    p = subprocess.run([BROKER, "admin", "--data", BROKER_DATA] + list(args),
                       capture_output=True, text=True)
    if check and p.returncode:
        die("apsync-broker admin %s failed: %s" % (" ".join(args), p.stderr.strip()))
    return p


def api(method, path, body=None, token=None, headers=None):
    ctx = ssl.create_default_context(cafile=CERT)
    c = http.client.HTTPSConnection("127.0.0.1", PORT, context=ctx, timeout=10)
    h = {"Authorization": "Bearer " + token} if token else {}
    h.update(headers or {})
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = json.loads(r.read() or b"null")
    c.close()
    return r.status, data


def wait(what, fn, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except (OSError, ValueError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    die("timed out waiting for " + what)


def start(args, log):
    p = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def first_active(entity, list_name, token):
    s, page = api("GET", "/api/v1/entities/%d/lists/%s?status=active&limit=1" % (
        entity["id"], list_name), token=token)
    return page["items"][0]["key"] if s == 200 and page["items"] else None


def export_invoice(entity, token):
    """One vendor invoice into the demo ERP, exactly once: a second run of the
    demo replays the same request (same Idempotency-Key) and nothing is
    written twice."""
    vendor = first_active(entity, "vendors", token)
    account = first_active(entity, "gl_accounts", token)
    if not vendor or not account:
        return
    doc = {"type": "invoice", "vendor": vendor, "number": "DEMO-0001", "date": "2024-05-01",
           "lines": [{"gl_account": account, "description": "Office supplies",
                      "quantity": "3", "unit_price": "12.50"}]}
    s, res = api("POST", "/api/v1/entities/%d/exports" % entity["id"], {"documents": [doc]},
                 token, {"Idempotency-Key": "demo-invoice-0001"})
    if s not in (200, 201):
        say("export of invoice DEMO-0001 refused: %s" % res)
        return
    doc_id = res["documents"][0]["id"]
    d = wait("invoice DEMO-0001", lambda: (lambda d: d if d["status"] not in (
        "queued", "in_progress") else None)(
        api("GET", "/api/v1/documents/%d" % doc_id, token=token)[1]), 60)
    erp = d.get("erp") or {}
    print("\n  invoice DEMO-0001 of vendor %s exported to %s: %s%s" % (
        vendor, entity["code"], d["status"].upper(),
        " as %s (%s)" % (erp.get("number"), erp.get("state")) if erp else
        " - " + (d.get("reason") or "")))


def main():
    for exe in (AGENT, BROKER):
        if not os.access(exe, os.X_OK):
            die("%s is not built; run `make` first" % exe)
    os.makedirs(DIR, exist_ok=True)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    if os.path.exists(ERP):
        say("demo ERP: reusing %s" % ERP)
    else:
        say("demo ERP: generating %s (%s vendors)" % (ERP, ROWS))
        subprocess.run([AGENT, "demo-erp", "--out", ERP, "--rows", ROWS], check=True)

    s = socket.socket()
    try:
        s.bind(("127.0.0.1", PORT))
    except OSError:
        die("port %d on 127.0.0.1 is in use (another demo running?); stop it or set "
            "APSYNC_DEMO_PORT" % PORT)
    finally:
        s.close()

    say("broker: starting on https://127.0.0.1:%d, store in %s" % (PORT, BROKER_DATA))
    broker = start([BROKER, "serve", "--listen", "127.0.0.1:%d" % PORT, "--data", BROKER_DATA],
                   os.path.join(DIR, "broker.log"))
    wait("the broker", lambda: broker.poll() is None and os.path.exists(CERT) and
         api("GET", "/api/v1/health")[0] == 200)

    if admin("tenant", "create", "demo", check=False).returncode == 0:
        say("tenant \"demo\" created")
    if not os.path.exists(TOKEN_FILE):
        token = admin("user", "create", "--tenant", "demo", "--email", "ap@demo.test", "--role",
                      "system_administrator").stdout.strip()
        fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, (token + "\n").encode())
        os.close(fd)
        say("user ap@demo.test (System Administrator) created; API token in %s" % TOKEN_FILE)
    with open(TOKEN_FILE) as f:
        token = f.read().strip()
    if not os.path.exists(PASSWORD_FILE):
        # the web page signs in with a password: a random one, kept for the user
        fd = os.open(PASSWORD_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, (secrets.token_urlsafe(12) + "\n").encode())
        os.close(fd)
        admin("user", "password", "--tenant", "demo", "--email", "ap@demo.test",
              "--password-file", PASSWORD_FILE)
        say("password of ap@demo.test for the web page in %s" % PASSWORD_FILE)

    if os.path.exists(os.path.join(STATE, "credential.json")):
        say("SyncTool: reusing the enrolled agent in %s" % STATE)
    else:
        code = admin("synctool", "code", "--tenant", "demo", "--name",
                     "DEMO-SYNCTOOL").stdout.strip()
        say("SyncTool: one-time enrollment code %s" % code)
        subprocess.run([AGENT, "enroll", "--broker", "wss://127.0.0.1:%d" % PORT, "--code", code,
                        "--state", STATE, "--ca", CERT], check=True)
    agent = start([AGENT, "run", "--state", STATE, "--erp", "demo:" + ERP],
                  os.path.join(DIR, "agent.log"))

    def online():
        tools = api("GET", "/api/v1/synctools", token=token)[1]["synctools"]
        return [t for t in tools if t["status"] == "online"]
    tool = wait("the SyncTool to come online", online)[0]
    say("SyncTool \"%s\" online: agent %s, ERP %s %s" % (tool["name"], tool["version"],
                                                        tool["erp"]["product"],
                                                        tool["erp"]["version"]))
    entities = wait("entities", lambda: api("GET", "/api/v1/entities",
                                             token=token)[1]["entities"])
    jobs = []
    for e in entities:
        s, j = api("POST", "/api/v1/syncs", {"entity": e["id"], "mode": "full"}, token)
        if s != 202:
            die("could not start a sync of %s: %s" % (e["name"], j))
        jobs.append((e, j["id"]))
        say("full sync of %s (%s) requested: sync %d" % (e["name"], e["code"], j["id"]))

    for e, jid in jobs:
        job = wait("sync %d" % jid, lambda: (lambda j: j if j["status"] in (
            "success", "partial", "failed", "cancelled") else None)(
            api("GET", "/api/v1/syncs/%d" % jid, token=token)[1]), 300)
        print("\n  %s (%s): %s in %.2f s" % (e["name"], e["code"], job["status"].upper(),
                                             (job["duration_ms"] or 0) / 1000))
        print("  %-18s %8s %9s %8s %10s  %s" % ("list", "read", "inserted", "updated",
                                                "unchanged", "checksum"))
        for l in job["lists"]:
            c = l["counts"]
            ok = "ok" if l["checksum"] == l["checksum_agent"] else "MISMATCH"
            print("  %-18s %8d %9d %8d %10d  %s%s" % (
                l["list"], c["read"], c["inserted"], c["updated"], c["unchanged"], ok,
                "  " + l["error"]["message"] if l["error"] else ""))
        print("  totals: %s" % json.dumps(job["totals"]))

    export_invoice(entities[0], token)

    print()
    say("web page:   https://127.0.0.1:%d/  (self-signed certificate: %s)" % (PORT, CERT))
    say("sign in:    company demo, ap@demo.test, the password in %s" % PASSWORD_FILE)
    say("API token:  %s" % TOKEN_FILE)
    say("try:        curl --cacert %s -H \"Authorization: Bearer $(cat %s)\" "
        "https://127.0.0.1:%d/api/v1/syncs/%d" % (CERT, TOKEN_FILE, PORT, jobs[0][1]))
    say("logs:       %s/broker.log and %s/agent.log" % (DIR, DIR))
    say("serving until Ctrl-C")
    while all(p.poll() is None for p in procs):
        time.sleep(0.5)
    if any(p.poll() not in (None, 0) for p in procs):
        die("a program stopped; see the logs in " + DIR)


if __name__ == "__main__":
    try:
        main()
    finally:
        stop()
