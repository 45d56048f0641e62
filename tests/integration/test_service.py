"""Running as a service: SIGHUP reads the log level again from the config
file (a bad value keeps the old one, the command line wins), and under
journald (JOURNAL_STREAM naming stderr) each line carries its syslog
priority instead of a time stamp."""
import os
import signal

from harness import Broker, Case, wait_for


class Service(Case):
    def config(self, level):
        path = os.path.join(self.tmp, "broker.conf")
        with open(path, "w") as f:
            f.write("# the broker's options\nlog-level = %s\nheartbeat = 15\n" % level)
        return path

    def test_sighup_reloads_the_log_level(self):
        conf = self.config("notice")
        broker = Broker(self)
        broker.start(["--config", conf])
        # the harness passes --log-level info: the command line wins, SIGHUP says so
        broker.proc.signal(signal.SIGHUP)
        wait_for(lambda: "the command line sets the log level" in broker.proc.text(), 10,
                 what="SIGHUP refused while the command line sets the level")
        broker.stop()
        # with the level from the file only
        args = [a for a in broker.proc.args]
        i = args.index("--log-level")
        del args[i:i + 2]
        os.unlink(os.path.join(broker.data, "broker.port"))
        proc = self.spawn(args + ["--config", conf], "broker2")
        wait_for(lambda: "listening" in proc.text(), 10, what="broker listening")
        with open(conf, "w") as f:
            f.write("log-level = debug\n")
        proc.signal(signal.SIGHUP)
        wait_for(lambda: "read again: log level debug" in proc.text(), 10, what="reload")
        with open(conf, "w") as f:
            f.write("log-level = loud\n")
        proc.signal(signal.SIGHUP)
        wait_for(lambda: "log-level \"loud\" is not error, warn" in proc.text(), 10,
                 what="a bad level refused")
        self.assertTrue(proc.alive())

    def test_journald_lines_carry_their_priority(self):
        broker = Broker(self)
        log = os.path.join(self.tmp, broker.name + ".log")
        open(log, "w").close()
        st = os.stat(log)
        os.environ["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        try:
            broker.start()
        finally:
            del os.environ["JOURNAL_STREAM"]
        text = broker.proc.text()
        self.assertIn("<5>broker: ", text)
        self.assertNotRegex(text.splitlines()[0], r"^\d{4}-\d\d-\d\dT")
