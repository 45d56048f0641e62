"""Tenants, roles and sign-in. Every route of the API, read from broker/http.c's
route table (so a new route is covered the day it is added), is called by
another tenant's System Administrator (by API token and by session cookie)
with ids and names of the first tenant's entities, SyncTools, syncs, logs,
lists, documents, rules and users: none answers with the first tenant's
data, none changes it. Without a credential every protected route says 401;
roles without sync rights get 403 on every sync and export route, and only
System Administrators manage users, SyncTools and rules. Passwords are
hashed with scrypt, sessions ride an HttpOnly Secure SameSite cookie, and
state changes made by cookie need the session's CSRF token."""
import http.client
import json
import os
import re
import ssl

import test_engine
from harness import ROOT, Agent, Case, demo_erp, wait_for

ROUTE_RE = re.compile(r'\{WSI_TOKEN_(GET|POST|PUT|PATCH|DELETE)_URI, "([^"]+)", (\w+), ([01])\}')
PASSWORD = "correct horse battery staple"


def routes():
    """(method, pattern, needs auth) for each route of broker/http.c."""
    with open(os.path.join(ROOT, "broker", "http.c")) as f:
        text = f.read()
    table = text[text.index("static const struct route routes[]"):]
    table = table[:table.index("};")]
    out = [(m, p, a == "1") for m, p, _, a in ROUTE_RE.findall(table)]
    assert len(out) > 20, "the route table was not read"
    return out


# POST routes that need sync rights, and those only System Administrators use;
# every other POST route is in one of these or is sign-in itself.
SYNC_ROUTES = {"/api/v1/syncs", "/api/v1/syncs/all", "/api/v1/syncs/#/cancel",
               "/api/v1/entities/#/exports", "/api/v1/documents/#/retry",
               "/api/v1/documents/#/mark-exported"}
ADMIN_ROUTES = {"/api/v1/users", "/api/v1/users/#/role", "/api/v1/users/#/password",
                "/api/v1/synctools/codes", "/api/v1/synctools/*/revoke", "/api/v1/rules",
                "/api/v1/rules/#/delete"}
SESSION_ROUTES = {"/api/v1/session", "/api/v1/session/end", "/api/v1/enroll",
                  "/api/v1/agent/check"}
ADMIN_GETS = {"/api/v1/users"}


def request(broker, method, path, body=None, headers=None):
    """(status, JSON or text, headers) of one HTTPS request."""
    ctx = ssl.create_default_context(cafile=broker.cert)
    c = http.client.HTTPSConnection("127.0.0.1", broker.port, context=ctx, timeout=20)
    h = dict(headers or {})
    data = json.dumps(body) if body is not None else None
    if data is not None:
        h["Content-Type"] = "application/json"
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode()
        try:
            j = json.loads(text) if text else None
        except ValueError:
            j = text
        return r.status, j, r.getheaders()
    finally:
        c.close()


def sign_in(broker, email, tenant, password=PASSWORD):
    """Signs in; returns the headers later requests send (cookie, CSRF token)."""
    s, j, hdrs = request(broker, "POST", "/api/v1/session",
                         {"email": email, "password": password, "tenant": tenant})
    assert s == 201, (s, j)
    cookie = [v for k, v in hdrs if k.lower() == "set-cookie"][0]
    return {"Cookie": cookie.split(";")[0], "X-CSRF-Token": j["csrf_token"]}, cookie, j


def make_user(broker, tenant, email, role, password=PASSWORD):
    """An API token for a new user who can also sign in with the password."""
    pw = os.path.join(broker.case.tmp, "pw-" + email)
    with open(pw, "w") as f:
        f.write(password + "\n")
    os.chmod(pw, 0o600)
    return broker.admin("user", "create", "--tenant", tenant, "--email", email, "--role", role,
                        "--password-file", pw).stdout.strip()


class Tenancy(Case):
    def setUp(self):
        super().setUp()
        self.world(rows=300, agent_extra=test_engine.FAST)
        b = self.broker
        self.admin_a = make_user(b, "acme", "root@acme.test", "system_administrator")
        self.viewer_a = make_user(b, "acme", "look@acme.test", "viewer")
        self.approver_a = make_user(b, "acme", "ok@acme.test", "approver")
        b.tenant("beta")
        self.admin_b = make_user(b, "beta", "root@beta.test", "system_administrator")
        self.blue = self.entity("BLUE")
        job = self.sync(self.blue["id"])
        self.assertEqual(self.wait_job(job["id"], 60)["status"], "success")
        self.job = job["id"]
        inv = {"type": "invoice", "vendor": "V0000002", "number": "INV-ACME-1",
               "date": "2024-05-01", "total": "21.90",
               "lines": [{"gl_account": "1010-00", "description": "Paper", "quantity": "2",
                          "unit_price": "10.00", "tax_code": "CA-LA", "division": "00"}]}
        s, j = b.api("POST", "/api/v1/entities/%d/exports" % self.blue["id"], self.token,
                     {"documents": [inv]}, headers={"Idempotency-Key": "acme-1"})
        self.assertEqual(s, 201, j)
        self.doc = j["documents"][0]["id"]
        self.run = j["run"]
        wait_for(lambda: b.api("GET", "/api/v1/documents/%d" % self.doc, self.token)[1][
            "status"] == "success", 30, what="the document exported")
        s, j = b.api("POST", "/api/v1/rules", self.admin_a,
                     {"kind": "block_vendor", "value": "VACMEONLY"})
        self.assertEqual(s, 201, j)
        self.rule = j["id"]
        s, j = b.api("GET", "/api/v1/users", self.admin_a)
        self.user_a = [u for u in j["users"] if u["email"] == "look@acme.test"][0]["id"]
        # what only tenant acme has: a leak of any of it shows in a response
        self.markers = ["ACME-SYNC", "ap@acme.test", "root@acme.test", "look@acme.test",
                        "INV-ACME-1", "VACMEONLY", self.blue["name"]]

    def path_for(self, pattern, tenant_a=True):
        """The route's path with the ids and names of tenant acme's things."""
        ids = {"entities": self.blue["id"], "syncs": self.job, "documents": self.doc,
               "rules": self.rule, "users": self.user_a, "exports": self.run}
        parts = pattern.split("/")
        for i, p in enumerate(parts):
            if p == "#":
                parts[i] = str(ids[parts[i - 1]])
            elif p == "*":
                parts[i] = {"lists": "vendors", "synctools": "ACME-SYNC"}[parts[i - 1]]
        return "/".join(parts)

    def body(self):
        return {"entity": self.blue["id"], "entities": [self.blue["id"]], "mode": "partial",
                "documents": [{"type": "invoice", "vendor": "V0000002", "number": "INV-B-1",
                               "date": "2024-05-01", "total": "1.00",
                               "lines": [{"gl_account": "1010-00", "quantity": "1",
                                          "unit_price": "1.00"}]}],
                "email": "new@beta.test", "role": "viewer", "password": "another password 1",
                "tenant": "beta", "name": "BETA-NEW", "kind": "block_vendor",
                "value": "VBETA", "code": "ABCD-EFGH-JKMN-PQRS", "erp_id": "X-1"}

    def acme_state(self):
        db = self.broker.db()
        try:
            tid = db.execute("SELECT id FROM tenants WHERE name='acme'").fetchone()[0]
            q = lambda sql: db.execute(sql, (tid,)).fetchall()  # noqa: E731
            return {
                "jobs": q("SELECT id, status FROM jobs WHERE tenant_id=? ORDER BY id"),
                "docs": q("SELECT id, status, erp_id FROM documents WHERE tenant_id=? "
                          "ORDER BY id"),
                "rules": q("SELECT id, kind, value FROM rules WHERE tenant_id=? ORDER BY id"),
                "users": q("SELECT id, email, role FROM users WHERE tenant_id=? ORDER BY id"),
                "passwords": q("SELECT p.user_id, p.hash FROM passwords p JOIN users u ON "
                               "u.id=p.user_id WHERE u.tenant_id=? ORDER BY 1"),
                "agents": q("SELECT id, name, revoked_at FROM agents WHERE tenant_id=? "
                            "ORDER BY id"),
                "codes": q("SELECT count(*) FROM enroll_codes WHERE tenant_id=?"),
            }
        finally:
            db.close()

    def sweep(self, headers):
        """Every route, as tenant beta, aimed at tenant acme's things."""
        before = self.acme_state()
        seen = []
        # signing out last: it ends the session the sweep uses
        for method, pattern, _ in sorted(routes(), key=lambda r: r[1] == "/api/v1/session/end"):
            path = self.path_for(pattern)
            h = dict(headers, **{"Idempotency-Key": "beta-" + pattern})
            s, j, _ = request(self.broker, method, path,
                              self.body() if method == "POST" else None, h)
            seen.append(pattern)
            self.assertLess(s, 500, "%s %s: %s %s" % (method, path, s, j))
            if "#" in pattern or "*" in pattern:
                self.assertIn(s, (403, 404), "%s %s reached tenant acme: %s %s" % (
                    method, path, s, j))
            if 200 <= s < 300:
                text = json.dumps(j)
                for m in self.markers:
                    self.assertNotIn(m, text, "%s %s shows acme's %s" % (method, path, m))
        self.assertEqual(self.acme_state(), before, "tenant beta changed tenant acme's data")
        # the SyncTool still works for acme
        self.wait_online()
        return seen

    def test_another_tenant_sees_and_touches_nothing_by_token(self):
        seen = self.sweep({"Authorization": "Bearer " + self.admin_b})
        self.assertEqual(len(seen), len(routes()))

    def test_another_tenant_sees_and_touches_nothing_by_session(self):
        headers, _, _ = sign_in(self.broker, "root@beta.test", "beta")
        self.sweep(headers)

    def test_acme_itself_sees_its_own(self):
        # the sweep's paths are right: acme's administrator reaches each thing
        for pattern in ("/api/v1/entities/#", "/api/v1/syncs/#/log", "/api/v1/documents/#",
                        "/api/v1/entities/#/lists/*"):
            s, j = self.broker.api("GET", self.path_for(pattern), self.admin_a)
            self.assertEqual(s, 200, (pattern, j))

    def test_every_protected_route_needs_a_credential(self):
        for method, pattern, auth in routes():
            s, j, _ = request(self.broker, method, self.path_for(pattern),
                              {} if method == "POST" else None)
            if auth:
                self.assertEqual(s, 401, "%s %s: %s" % (method, pattern, j))
        for bad in ({"Authorization": "Bearer apt_" + "A" * 43},
                    {"Cookie": "apsync_session=" + "A" * 43}):
            s, _, _ = request(self.broker, "GET", "/api/v1/entities", None, bad)
            self.assertEqual(s, 401)

    def test_roles(self):
        posts = {p for m, p, a in routes() if m == "POST" and a}
        self.assertEqual(posts - SYNC_ROUTES - ADMIN_ROUTES - SESSION_ROUTES, set(),
                         "a new POST route: add it to SYNC_ROUTES or ADMIN_ROUTES")
        before = self.acme_state()
        for token, who in ((self.viewer_a, "viewer"), (self.approver_a, "approver")):
            for method, pattern, auth in routes():
                if not auth or pattern in SESSION_ROUTES:
                    continue
                s, j = self.broker.api(method, self.path_for(pattern), token,
                                       self.body() if method == "POST" else None,
                                       headers={"Idempotency-Key": "v-" + pattern})
                if method == "POST" or pattern in ADMIN_GETS:
                    self.assertEqual(s, 403, "%s %s %s: %s" % (who, method, pattern, j))
                else:
                    self.assertEqual(s, 200, "%s %s %s: %s" % (who, method, pattern, j))
        # an Invoice Exporter syncs and exports but does not manage
        for pattern in ADMIN_ROUTES:
            s, j = self.broker.api("POST", self.path_for(pattern), self.token, self.body())
            self.assertEqual(s, 403, (pattern, j))
        s, _ = self.broker.api("GET", "/api/v1/users", self.token)
        self.assertEqual(s, 403)
        self.assertEqual(self.acme_state(), before)
        s, j = self.broker.api("POST", "/api/v1/syncs/all", self.token,
                               {"entities": [self.blue["id"]], "mode": "partial"})
        self.assertEqual((s, len(j["syncs"])), (202, 1), j)

    def test_administrator_manages_users_and_synctools(self):
        b, a = self.broker, self.admin_a
        s, u = b.api("POST", "/api/v1/users", a,
                     {"email": "new@acme.test", "role": "invoice_administrator",
                      "password": "short"})
        self.assertEqual((s, u["error"]["code"]), (400, "weak_password"))
        s, u = b.api("POST", "/api/v1/users", a,
                     {"email": "new@acme.test", "role": "invoice_administrator",
                      "password": "a long enough one"})
        self.assertEqual((s, u["role"], u["password"]), (201, "invoice_administrator", True))
        s, _ = b.api("POST", "/api/v1/users", a, {"email": "new@acme.test", "role": "viewer"})
        self.assertEqual(s, 409)
        h, _, me = sign_in(b, "new@acme.test", "acme", "a long enough one")
        self.assertTrue(me["may_sync"])
        s, u = b.api("POST", "/api/v1/users/%d/role" % u["id"], a, {"role": "viewer"})
        self.assertEqual((s, u["role"]), (200, "viewer"))
        s, j, _ = request(b, "GET", "/api/v1/me", None, h)  # the role counts at once
        self.assertEqual((j["role"], j["may_sync"]), ("viewer", False))
        s, j, _ = request(b, "POST", "/api/v1/syncs", {"entity": self.blue["id"],
                                                       "mode": "partial"}, h)
        self.assertEqual(s, 403)
        # the last System Administrator stays one
        s, j = b.api("GET", "/api/v1/me", a)
        s, j = b.api("POST", "/api/v1/users/%d/role" % j["id"], a, {"role": "viewer"})
        self.assertEqual((s, j["error"]["code"]), (409, "last_administrator"))
        # an enrollment code from the API enrolls a SyncTool; revoking drops it
        s, c = b.api("POST", "/api/v1/synctools/codes", a, {"name": "ACME 2"})
        self.assertEqual(s, 201, c)
        second = Agent(self, b, "agent2")
        second.enroll(c["code"])
        second.start(demo_erp(self, 300, seed=2), test_engine.FAST)
        self.wait_online("ACME 2")
        s, j = b.api("POST", "/api/v1/synctools/ACME%202/revoke", a)
        self.assertEqual(s, 200, j)
        self.assertEqual(second.proc.wait(20), 77)  # refused: enroll again
        s, j = b.api("GET", "/api/v1/synctools", a)
        self.assertEqual([t["name"] for t in j["synctools"]], ["ACME-SYNC"])

    def test_password_sign_in_session_and_csrf(self):
        b = self.broker
        pw = os.path.join(self.tmp, "pw")
        with open(pw, "w") as f:
            f.write("too short\n")
        p = b.admin("user", "password", "--tenant", "acme", "--email", "ap@acme.test",
                    "--password-file", pw, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("at least 10 characters", p.stderr)
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        b.admin("user", "password", "--tenant", "acme", "--email", "ap@acme.test",
                "--password-file", pw)
        headers, cookie, me = sign_in(b, "ap@acme.test", "acme")
        attrs = [x.strip().lower() for x in cookie.split(";")]
        for a in ("httponly", "secure", "samesite=strict", "path=/"):
            self.assertIn(a, attrs)
        self.assertGreaterEqual(len(headers["Cookie"].split("=", 1)[1]), 43)
        self.assertEqual((me["email"], me["tenant"], me["may_sync"]),
                         ("ap@acme.test", "acme", True))
        s, j, _ = request(b, "GET", "/api/v1/me", None, {"Cookie": headers["Cookie"]})
        self.assertEqual((s, j["csrf_token"]), (200, headers["X-CSRF-Token"]))
        body = {"entity": self.blue["id"], "mode": "partial"}
        s, j, _ = request(b, "POST", "/api/v1/syncs", body, {"Cookie": headers["Cookie"]})
        self.assertEqual((s, j["error"]["code"]), (403, "csrf"))
        s, j, _ = request(b, "POST", "/api/v1/syncs", body,
                          {"Cookie": headers["Cookie"], "X-CSRF-Token": "x" * 43})
        self.assertEqual(s, 403)
        s, j, _ = request(b, "POST", "/api/v1/syncs", body, headers)
        self.assertEqual(s, 202, j)
        s, _ = b.api("POST", "/api/v1/syncs", self.token, body)  # machines: no CSRF
        self.assertEqual(s, 202)
        # wrong passwords: 401, then the account is throttled (even the right one waits)
        for _ in range(5):
            s, j, _ = request(b, "POST", "/api/v1/session",
                              {"email": "look@acme.test", "tenant": "acme", "password": "nope"})
            self.assertEqual(s, 401)
        s, j, _ = request(b, "POST", "/api/v1/session",
                          {"email": "look@acme.test", "tenant": "acme", "password": PASSWORD})
        self.assertEqual((s, j["error"]["code"]), (429, "too_many_attempts"))
        s, _, _ = request(b, "POST", "/api/v1/session",
                          {"email": "ap@acme.test", "tenant": "beta", "password": PASSWORD})
        self.assertEqual(s, 401)  # a user signs in to their own tenant only
        # signing out ends the session
        s, _, h = request(b, "POST", "/api/v1/session/end", None, headers)
        self.assertEqual(s, 200)
        self.assertIn("Max-Age=0", dict((k.lower(), v) for k, v in h)["set-cookie"])
        s, _, _ = request(b, "GET", "/api/v1/me", None, headers)
        self.assertEqual(s, 401)
        # stored: a scrypt hash and hashed session ids; logged: no secret
        db = b.db()
        hashes = [r[0] for r in db.execute("SELECT hash FROM passwords")]
        sids = [bytes(r[0]) for r in db.execute("SELECT id_hash FROM sessions")]
        db.close()
        self.assertTrue(all(h.startswith("scrypt$15$8$1$") for h in hashes), hashes)
        self.assertNotIn(headers["Cookie"].split("=", 1)[1].encode(), b"".join(sids))
        log = b.proc.text()
        for secret in (PASSWORD, headers["Cookie"].split("=", 1)[1], headers["X-CSRF-Token"]):
            self.assertNotIn(secret, log)
        self.assertIn("failed sign-in", log)
