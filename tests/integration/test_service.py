"""Running as a service: SIGHUP reads the log level again from the config
file (a bad value keeps the old one, the command line wins), reopens the
agent's log file (logrotate) and names the changes that need a restart; under
journald (JOURNAL_STREAM naming stderr) each line carries its syslog priority
instead of a time stamp."""
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
        wait_for(lambda: "the command line sets log-level" in broker.proc.text(), 10,
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

    def test_agent_log_file_reopens_on_sighup(self):
        self.world(start_agent=False)
        log = os.path.join(self.tmp, "logs", "agent.log")
        os.makedirs(os.path.dirname(log))
        conf = os.path.join(self.tmp, "agent.conf")
        with open(conf, "w") as f:
            f.write("log-file = %s\nlog-max-mb = 1\n" % log)
        self.agent.start(self.erp, ["--config", conf])
        self.wait_online()

        def logged(text, path=log):
            with open(path) as f:
                return text in f.read()
        wait_for(lambda: logged('SyncTool "ACME-SYNC" of tenant acme'), 10,
                 what="the first lines in the log file")
        # logrotate moves the file away, then signals
        os.rename(log, log + ".1")
        with open(conf, "a") as f:
            f.write("batch-rows = 100\n")
        self.agent.proc.signal(signal.SIGHUP)
        wait_for(lambda: os.path.exists(log) and
                 logged("changes batch-rows; restart the agent to use it"), 10,
                 what="a new log file with the reload's lines")
        # the job's lines go to the new file, none to the moved one
        size = os.path.getsize(log + ".1")
        job = self.sync(self.entity("BLUE")["id"])
        self.assertEqual(self.wait_job(job["id"])["status"], "success")
        wait_for(lambda: logged("job %d" % job["id"]), 10, what="the job in the new log file")
        self.assertEqual(os.path.getsize(log + ".1"), size)
        self.assertTrue(self.agent.proc.alive())

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
