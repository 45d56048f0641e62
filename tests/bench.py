#!/usr/bin/env python3
"""`make bench`: the sync pipeline's speed and memory, measured against a
baseline run on the same machine in the same run.

1. baseline: a raw SQLite copy of the demo ERP's vendor rows into a table
   with a primary key, in one transaction, WAL, synchronous=FULL (what any
   store of these rows costs at least);
2. a full sync of the same rows end to end: agent reads the ERP, batches,
   compresses, TLS WebSocket, broker inflates, parses and stores;
3. a partial sync after 1,000 of those rows changed.

Prints rows/s, the ratio to the baseline, bytes per row on the wire (the TCP
socket's own byte count, TLS and WebSocket framing included), each process's
peak memory, and the partial sync's time and rows read; then checks them
against the targets. APSYNC_BENCH_ROWS (default 1,000,000) sets the size;
APSYNC_BENCH_AGENT adds agent options (e.g. "--batch-rows 2000");
APSYNC_BENCH_ERP=FILE keeps the generated demo ERP in FILE and reuses it on the
next run of the same size (each run works on a copy, so the partial sync's
changes never accumulate): repeated A/B runs skip the generation.
APSYNC_BENCH_PERF=FILE records the full sync of both processes with
`perf record -g` into FILE (the figures of such a run are not comparable).
"""
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
from harness import AGENT, Agent, Broker, Case, run, wait_for  # noqa: E402

ROWS = int(os.environ.get("APSYNC_BENCH_ROWS", "1000000"))
TARGET_RATIO, TARGET_BYTES, TARGET_AGENT_MB = 0.40, 50, 64


def peak_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024


def thread_cpu(pid):
    """CPU seconds per thread of a process, keyed by thread id."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out[tid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def run_wait(pid):
    """Seconds the process's threads waited for a CPU while runnable."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def machine_busy():
    """CPU seconds the whole machine spent busy (every process), /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def cpu_delta(before, after):
    return sorted((after[t] - before.get(t, 0) for t in after), reverse=True)


def bytes_sent(pid):
    """Bytes the process's TCP sockets sent (ss: bytes_sent), summed."""
    out = subprocess.run(["ss", "-tinpH"], capture_output=True, text=True).stdout
    total, lines = 0, out.splitlines()
    for i, line in enumerate(lines):
        if "pid=%d," % pid in line and i + 1 < len(lines):
            m = re.search(r"bytes_sent:(\d+)", lines[i + 1])
            total += int(m.group(1)) if m else 0
    return total


class Bench(Case):
    def runTest(self):
        pass


def baseline(erp, tmp):
    dst = os.path.join(tmp, "copy.db")
    db = sqlite3.connect(dst, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("ATTACH ? AS erp", ("file:%s?mode=ro" % erp,))
    cols = [r[1] for r in db.execute("PRAGMA erp.table_info(vendors)")]
    db.execute("CREATE TABLE vendors(%s, PRIMARY KEY(company_code, vendor_no))" % ", ".join(cols))
    t0 = time.time()
    db.execute("BEGIN")
    n = db.execute("INSERT INTO main.vendors SELECT * FROM erp.vendors WHERE "
                   "company_code='BLUE'").rowcount
    db.execute("COMMIT")
    dt = time.time() - t0
    db.close()
    return n, dt


def main():
    case = Bench()
    case.setUp()
    tmp = case.tmp
    try:
        print("apsync benchmark: %d vendor rows (machine: %d cores)" % (ROWS, os.cpu_count()))
        t0 = time.time()
        erp = os.path.join(tmp, "erp.db")
        keep = os.environ.get("APSYNC_BENCH_ERP")
        kept = keep and os.path.exists(keep) and os.path.exists(keep + ".rows") and \
            open(keep + ".rows").read().strip() == str(ROWS)
        if kept:
            shutil.copyfile(keep, erp)
            print("  demo ERP reused from %s (%.0f MB)" % (keep, os.path.getsize(erp) / 1e6))
        else:
            run([AGENT, "demo-erp", "--out", erp, "--rows", str(ROWS)], timeout=1200)
            print("  demo ERP generated in %.1f s (%.0f MB)" % (time.time() - t0,
                                                                os.path.getsize(erp) / 1e6))
            if keep:
                shutil.copyfile(erp, keep)
                with open(keep + ".rows", "w") as f:
                    f.write(str(ROWS))

        n, dt = baseline(erp, tmp)
        base = n / dt
        print("  baseline, raw SQLite copy:   %9.0f rows/s  (%d rows in %.2f s)" % (base, n, dt))

        broker = Broker(case).start(["--log-level", "notice"])
        broker.tenant("bench")
        token = broker.user("bench", "b@bench.test")
        agent = Agent(case, broker)
        agent.enroll(broker.code("bench", "BENCH"))
        extra = os.environ.get("APSYNC_BENCH_AGENT", "").split()
        agent.start(erp, ["--log-level", "notice", "--cursor-lag", "200"] + extra)
        case.broker, case.token = broker, token
        case.wait_online("BENCH")
        blue = case.entity("BLUE")
        sent0 = bytes_sent(agent.proc.p.pid)
        acpu0, bcpu0 = thread_cpu(agent.proc.p.pid), thread_cpu(broker.proc.p.pid)
        wait0 = run_wait(agent.proc.p.pid) + run_wait(broker.proc.p.pid)
        busy0 = machine_busy()
        perf = None
        if os.environ.get("APSYNC_BENCH_PERF"):
            perf = subprocess.Popen(["perf", "record", "-g", "-q", "-o",
                                     os.environ["APSYNC_BENCH_PERF"], "-p", "%d,%d" % (
                                         agent.proc.p.pid, broker.proc.p.pid)])
            time.sleep(1)
        t0 = time.time()
        job = case.sync(blue["id"], lists=["vendors"])
        job = case.wait_job(job["id"], 1800)
        wall = time.time() - t0
        busy = machine_busy() - busy0
        wait = run_wait(agent.proc.p.pid) + run_wait(broker.proc.p.pid) - wait0
        if perf:
            perf.send_signal(2)
            perf.wait(60)
        sent = bytes_sent(agent.proc.p.pid) - sent0
        acpu = cpu_delta(acpu0, thread_cpu(agent.proc.p.pid))
        bcpu = cpu_delta(bcpu0, thread_cpu(broker.proc.p.pid))
        v = job["lists"][0]
        assert job["status"] == "success" and v["counts"]["read"] == n, job
        rate = n / wall
        print("  full sync, end to end:       %9.0f rows/s  (%d rows in %.2f s; ratio %.2f)"
              % (rate, n, wall, rate / base))
        print("  bytes on the wire:           %9.1f per row (%.1f MB, TLS and framing included)"
              % (sent / n, sent / 1e6))
        print("  CPU per row:                 agent %s, broker %s (microseconds, by thread)"
              % ("+".join("%.1f" % (c * 1e6 / n) for c in acpu if c),
                 "+".join("%.1f" % (c * 1e6 / n) for c in bcpu if c)))
        # The machine may be shared: what others took shows in these two.
        print("  CPU meanwhile:               ours %.1f s, other processes %.1f s; ours "
              "waited %.1f s for a CPU" % (sum(acpu) + sum(bcpu),
                                           max(0.0, busy - sum(acpu) - sum(bcpu)), wait))
        amb, bmb = peak_mb(agent.proc.p.pid), peak_mb(broker.proc.p.pid)
        print("  peak memory:                 agent %.1f MB, broker %.1f MB" % (amb, bmb))

        # 1,000 rows change; a partial sync reads those, not the table
        db = sqlite3.connect(erp, timeout=30)
        keys = [r[0] for r in db.execute("SELECT vendor_no FROM vendors WHERE "
                                         "company_code='BLUE'")]
        random.seed(7)
        changed = random.sample(keys, 1000)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S.000", time.gmtime(time.time() - 5 * 3600))
        db.executemany("UPDATE vendors SET name=name||' *', modified_at=? WHERE "
                       "company_code='BLUE' AND vendor_no=?", [(stamp, k) for k in changed])
        db.commit()
        db.close()
        time.sleep(0.5)
        t0 = time.time()
        part = case.wait_job(case.sync(blue["id"], mode="partial", lists=["vendors"])["id"], 600)
        pwall = time.time() - t0
        pv = part["lists"][0]["counts"]
        print("  partial sync of 1,000 changed rows: %.2f s, %d rows read, %d updated"
              % (pwall, pv["read"], pv["updated"]))

        ok = True
        for what, good in (("end to end >= %.2f x the raw copy" % TARGET_RATIO,
                            rate / base >= TARGET_RATIO),
                           ("<= %d bytes per row on the wire" % TARGET_BYTES,
                            sent / n <= TARGET_BYTES),
                           ("agent memory <= %d MB" % TARGET_AGENT_MB, amb <= TARGET_AGENT_MB),
                           ("partial sync reads the changed rows only",
                            pv["read"] == 1000 and pv["updated"] == 1000)):
            print("  [%s] %s" % ("ok" if good else "MISSED", what))
            ok &= good
        return 0 if ok else 1
    finally:
        case.tearDown()


if __name__ == "__main__":
    sys.exit(main())
