#!/usr/bin/env python3
"""Runs every test: the C unit tests (build/tests/test_*, TAP output) and the
integration tests (tests/integration/test_*.py, which start the real programs).
Prints one line per test case and ends with "N passed, N failed".

    python3 tests/run.py            everything
    python3 tests/run.py spine      only tests whose file or name contains "spine"

Environment: APSYNC_BUILD (default build) names the build directory;
APSYNC_ASAN=1 makes the integration tests fail on sanitizer reports.
"""
import os
import re
import subprocess
import sys
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, os.environ.get("APSYNC_BUILD", "build"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

passed = failed = 0
failures = []


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok %d - %s" % (passed + failed, name), flush=True)
    else:
        failed += 1
        failures.append(name)
        print("not ok %d - %s" % (passed + failed, name), flush=True)
        for line in detail.rstrip().splitlines():
            print("#   " + line)


def selected(name, filters):
    return not filters or any(f in name for f in filters)


def run_unit(filters):
    tdir = os.path.join(BUILD, "tests")
    if not os.path.isdir(tdir):
        report(False, "unit tests", "no %s: build with `make tests` first" % tdir)
        return
    for exe in sorted(os.listdir(tdir)):
        if not exe.startswith("test_") or not selected(exe, filters):
            continue
        t0 = time.time()
        try:
            p = subprocess.run([os.path.join(tdir, exe)], cwd=ROOT, capture_output=True,
                               text=True, timeout=300)
            out, code = p.stdout + p.stderr, p.returncode
        except subprocess.TimeoutExpired as e:
            out, code = (e.stdout or b"").decode(errors="replace"), -1
        seen, bad, notes = 0, 0, []
        for line in out.splitlines():
            m = re.match(r"(not )?ok \d+ - (.*)", line)
            if m:
                seen += 1
                bad += m.group(1) is not None
                report(m.group(1) is None, "%s: %s" % (exe, m.group(2)), "\n".join(notes))
                notes = []
            elif line.startswith("#") or "Sanitizer" in line or "runtime error" in line:
                notes.append(line)
        if not seen:
            report(False, exe, "no test output\n" + out[-3000:])
        elif code != 0 and not bad:
            # every case passed but the program failed: a crash or a sanitizer report
            report(False, "%s exited %d" % (exe, code), out[-3000:])
        print("# %s: %.1f s" % (exe, time.time() - t0), flush=True)


class TapResult(unittest.TestResult):
    def addSuccess(self, test):
        report(True, test.id())

    def addFailure(self, test, err):
        report(False, test.id(), self._exc_info_to_string(err, test))

    def addError(self, test, err):
        report(False, test.id(), self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        # A skipped test is not a pass: it is reported as a failure with its reason.
        report(False, test.id(), "skipped: " + reason)


def run_integration(filters):
    idir = os.path.join(ROOT, "tests", "integration")
    loader = unittest.TestLoader()
    for f in sorted(os.listdir(idir)):
        if not (f.startswith("test_") and f.endswith(".py")):
            continue
        mod = f[:-3]
        suite = loader.loadTestsFromName(mod)
        tests = []

        def flatten(s):
            for t in s:
                if isinstance(t, unittest.TestSuite):
                    flatten(t)
                else:
                    tests.append(t)
        flatten(suite)
        tests = [t for t in tests if selected(t.id(), filters)]
        if not tests:
            continue
        t0 = time.time()
        unittest.TestSuite(tests).run(TapResult())
        print("# %s: %.1f s" % (mod, time.time() - t0), flush=True)


def main():
    filters = sys.argv[1:]
    t0 = time.time()
    run_unit(filters)
    run_integration(filters)
    print("# total %.1f s" % (time.time() - t0))
    if failures:
        print("# failed: " + ", ".join(failures))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
