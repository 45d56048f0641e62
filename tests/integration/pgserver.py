"""A throwaway PostgreSQL server for one test (standard library only).

    from pgserver import PgServer
    with PgServer() as pg:                 # initdb + start on a free 127.0.0.1 port
        pg.createdb("gp")
        print(pg.psql("SELECT 1", "gp"))   # -> "1"
        print(pg.dsn("gp"))                # libpq/psqlODBC connection facts
    # stopped and its directory removed here (and at interpreter exit, whatever happens)

The cluster lives in a fresh temporary directory: data in DIR/data, the Unix
socket in DIR itself, the server log in DIR/server.log. Authentication is
`trust` for everyone on 127.0.0.1 and on the socket, the superuser is called
"postgres" and has no password. Durability is switched off (fsync,
synchronous_commit, full_page_writes): nothing here must survive a crash.

initdb refuses to run as root. When this process is root, initdb and pg_ctl
run as the `postgres` OS user (created by Debian's postgresql-common package)
and the temporary directory is handed over to it; otherwise they run as the
current user. Clients (psql, the ODBC drivers) connect over TCP, so they work
as any user.

Start-up is timed: `timings` holds the seconds spent in initdb and in pg_ctl
start (about 1 s together on the 2-core CI machine).

The PostgreSQL binaries are looked up in /usr/lib/postgresql/<major>/bin
(Debian's layout, 15 preferred, else the newest), then on PATH. Before that,
`packaging/deps.sh postgres` runs once per process (idempotent: a quick dpkg
check when postgresql, postgresql-client and libpq-dev are there, else it
installs them, with sudo when not root), so a fresh machine gets them.
"""
import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPS = os.path.join(ROOT, "packaging", "deps.sh")
PREFERRED_MAJOR = "15"
SUPERUSER = "postgres"

# Servers still running in this process; atexit stops them if a test forgot.
_live = []


def _stop_all():
    for server in list(_live):
        try:
            server.stop()
        except Exception:  # best effort at exit: never mask the real error
            pass


atexit.register(_stop_all)


_ensured = set()


def ensure_packages(*groups):
    """Installs the Debian package groups of packaging/deps.sh (odbc, postgres,
    ...) when some are missing: a quick dpkg check (~0.4 s) when all are there,
    done once per group and process."""
    todo = [g for g in groups if g not in _ensured]
    if todo:
        subprocess.run(["sh", DEPS] + todo, check=True, stdout=subprocess.DEVNULL)
        _ensured.update(todo)


def _bindir():
    """The directory holding initdb/pg_ctl/postgres, or None."""
    def rank(d):
        major = os.path.basename(os.path.dirname(d))
        num = int(major) if major.isdigit() else 0
        return (major != PREFERRED_MAJOR, -num)

    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=rank)
    for d in dirs:
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def find_bindir():
    """The PostgreSQL server binaries' directory, installing them if needed."""
    ensure_packages("postgres")
    d = _bindir()
    if d is None:
        raise RuntimeError("PostgreSQL server binaries not found even after deps.sh postgres")
    return d


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One PostgreSQL cluster in a temporary directory (see the module doc)."""

    def __init__(self, start=True):
        self.bindir = find_bindir()
        self.major = os.path.basename(os.path.dirname(self.bindir))
        self.host = "127.0.0.1"
        self.port = None
        self.user = SUPERUSER
        self.base = None          # the temporary directory (socket dir too)
        self.datadir = None
        self.logfile = None
        self.timings = {}
        self._os_user = None      # run server programs as this OS user (root case)
        self._running = False
        if start:
            self.start()

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def _run_as(self):
        """subprocess keyword arguments that drop root to the postgres user."""
        if self._os_user is None:
            return {}
        pw = self._os_user
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
                "env": dict(os.environ, HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)}

    def _server_cmd(self, args, timeout):
        kw = self._run_as()
        return subprocess.run(args, cwd=self.base, capture_output=True, text=True,
                              timeout=timeout, **kw)

    def start(self):
        if self._running:
            return self
        self.base = tempfile.mkdtemp(prefix="apsync-pg-")
        self.datadir = os.path.join(self.base, "data")
        self.logfile = os.path.join(self.base, "server.log")
        _live.append(self)
        try:
            if os.geteuid() == 0:
                # initdb refuses root: hand the directory to the postgres user.
                self._os_user = pwd.getpwnam("postgres")
                os.chown(self.base, self._os_user.pw_uid, self._os_user.pw_gid)
            t0 = time.monotonic()
            p = self._server_cmd([os.path.join(self.bindir, "initdb"), "-D", self.datadir,
                                  "-A", "trust", "-U", SUPERUSER, "-E", "UTF8",
                                  "--locale=C", "--no-sync"], timeout=120)
            if p.returncode != 0:
                raise RuntimeError("initdb failed:\n" + p.stdout + p.stderr)
            self.timings["initdb"] = time.monotonic() - t0
            # The port is chosen free but could be taken before the server binds
            # it: try a few times.
            for attempt in range(5):
                self.port = free_port()
                t0 = time.monotonic()
                opts = ("-p %d -k %s -c listen_addresses=%s -c fsync=off "
                        "-c synchronous_commit=off -c full_page_writes=off "
                        "-c max_connections=40" % (self.port, self.base, self.host))
                p = self._server_cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir,
                                      "-l", self.logfile, "-o", opts, "-w", "-t", "60",
                                      "start"], timeout=90)
                if p.returncode == 0:
                    self.timings["start"] = time.monotonic() - t0
                    self._running = True
                    return self
                if "already in use" not in self._log_tail():
                    break
            raise RuntimeError("pg_ctl start failed:\n%s%s\n--- server.log ---\n%s"
                               % (p.stdout, p.stderr, self._log_tail()))
        except BaseException:
            self.stop()
            raise

    def _log_tail(self, n=4000):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def _postmaster_pid(self):
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError, TypeError):
            return None

    def stop(self):
        """Stops the server (immediate shutdown: the data is thrown away) and
        removes the directory. Safe to call twice."""
        if self.base is None:
            return
        try:
            if self.datadir and os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
                try:
                    self._server_cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir,
                                      "-m", "immediate", "-w", "-t", "30", "stop"], timeout=60)
                except subprocess.TimeoutExpired:
                    pass
                pid = self._postmaster_pid()
                if pid:  # pg_ctl failed or timed out: end this server by its own pid
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        finally:
            self._running = False
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
            if self in _live:
                _live.remove(self)

    # -- clients -------------------------------------------------------------

    def _psql_bin(self):
        p = os.path.join(self.bindir, "psql")
        return p if os.access(p, os.X_OK) else (shutil.which("psql") or "psql")

    def psql(self, sql, db="postgres", check=True, sep="|"):
        """Runs SQL (one or many statements) with the psql client and returns
        its unaligned, tuples-only output: one line per row, columns separated
        by SEP. Stops at the first error (ON_ERROR_STOP) and raises when check."""
        if not self._running:
            raise RuntimeError("PgServer is not running")
        args = [self._psql_bin(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-F", sep, "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", db,
                "-f", "-"]
        env = dict(os.environ, PGCONNECT_TIMEOUT="10")
        env.pop("PGPASSWORD", None)
        p = subprocess.run(args, input=sql, capture_output=True, text=True, env=env, timeout=600)
        if check and p.returncode != 0:
            raise RuntimeError("psql failed (%d): %s\nSQL: %s" % (p.returncode, p.stderr.strip(),
                                                                 sql[:2000]))
        return p.stdout.rstrip("\n")

    def createdb(self, name, drop=True):
        """Creates database NAME (dropping an existing one first when drop)."""
        q = '"%s"' % name.replace('"', '""')
        if drop:
            self.psql("DROP DATABASE IF EXISTS %s;" % q)
        self.psql("CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8';" % q)
        return name

    def dsn(self, db="postgres"):
        """Connection facts for DB: host, port, dbname, user, plus `libpq`, a
        libpq keyword/value string for PQconnectdb."""
        d = {"host": self.host, "port": self.port, "dbname": db, "user": self.user}
        d["libpq"] = "host=%s port=%d dbname=%s user=%s" % (self.host, self.port, db, self.user)
        return d


if __name__ == "__main__":
    # Smoke test and timing: python3 tests/integration/pgserver.py
    t0 = time.monotonic()
    with PgServer() as pg:
        pg.createdb("smoke")
        out = pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (41); SELECT x + 1 FROM t;",
                      "smoke")
        print("PostgreSQL %s on %s:%d -> %s" % (pg.major, pg.host, pg.port, out))
        print("initdb %.2fs, start %.2fs" % (pg.timings["initdb"], pg.timings["start"]))
    print("total with stop and cleanup %.2fs" % (time.monotonic() - t0))
