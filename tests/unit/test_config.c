/* Table-driven configuration: defaults, files, command line, bounds. */
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "plat.h"
#include "tap.h"
#include "util.h"

struct opts {
	char *name;
	int64_t count;
	int flag;
};

static const struct aps_cfg_entry table[] = {
	{"name", APS_CFG_STR, offsetof(struct opts, name), 0, 8, "dflt", 0, "a name"},
	{"count", APS_CFG_INT, offsetof(struct opts, count), 1, 100, "10", 0, "a count"},
	{"flag", APS_CFG_BOOL, offsetof(struct opts, flag), 0, 0, "false", 0, "a flag"},
	APS_CFG_END,
};

static char tmpdir[600];

static const char *write_tmp(const char *name, const char *text)
{
	static char path[700];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	aps_write_file(path, text, strlen(text), 0600);
	return path;
}

TEST(defaults)
{
	struct opts o = {0};

	CHECK_EQ_INT(aps_cfg_defaults(table, &o), APS_OK);
	CHECK_EQ_STR(o.name, "dflt");
	CHECK_EQ_INT(o.count, 10);
	CHECK_EQ_INT(o.flag, 0);
	aps_cfg_free(table, &o);
	CHECK(o.name == NULL);
}

TEST(command_line)
{
	struct opts o = {0};
	char *argv[] = {"--name", "abc", "--count=42", "--flag", "rest", NULL};
	char err[200];
	int argi = 0;

	aps_cfg_defaults(table, &o);
	CHECK_EQ_INT(aps_cfg_parse_args(table, &o, 5, argv, &argi, err, sizeof(err)), APS_OK);
	CHECK_EQ_STR(o.name, "abc");
	CHECK_EQ_INT(o.count, 42);
	CHECK_EQ_INT(o.flag, 1);
	CHECK_EQ_INT(argi, 4); /* stopped at the first non-option */
	aps_cfg_free(table, &o);
}

TEST(bounds_and_errors)
{
	struct opts o = {0};
	char *over[] = {"--count", "101"}, *word[] = {"--count", "12abc"}, *unknown[] = {"--nope"};
	char *longname[] = {"--name", "123456789"}, *noval[] = {"--count"};
	char *badbool[] = {"--flag=maybe"};
	char err[200];
	int argi;

	aps_cfg_defaults(table, &o);
	argi = 0;
	CHECK_EQ_INT(aps_cfg_parse_args(table, &o, 2, over, &argi, err, sizeof(err)), APS_ERR_RANGE);
	CHECK(strstr(err, "count") && strstr(err, "100"));
	argi = 0;
	CHECK_EQ_INT(aps_cfg_parse_args(table, &o, 2, word, &argi, err, sizeof(err)), APS_ERR_INVAL);
	argi = 0;
	CHECK_EQ_INT(aps_cfg_parse_args(table, &o, 1, unknown, &argi, err, sizeof(err)),
		     APS_ERR_INVAL);
	CHECK(strstr(err, "--nope") != NULL);
	argi = 0;
	CHECK_EQ_INT(aps_cfg_parse_args(table, &o, 2, longname, &argi, err, sizeof(err)),
		     APS_ERR_RANGE);
	argi = 0;
	CHECK_EQ_INT(aps_cfg_parse_args(table, &o, 1, noval, &argi, err, sizeof(err)),
		     APS_ERR_INVAL);
	argi = 0;
	CHECK_EQ_INT(aps_cfg_parse_args(table, &o, 1, badbool, &argi, err, sizeof(err)),
		     APS_ERR_INVAL);
	CHECK_EQ_INT(o.count, 10); /* nothing applied from the failures */
	aps_cfg_free(table, &o);
}

TEST(file_then_command_line)
{
	struct opts o = {0};
	const char *path = write_tmp("a.conf", "# comment\n\n  name = fromfile \ncount=7\nflag = yes\n");
	char *argv[] = {"--count", "8", "--config", (char *)path};
	char err[200];
	int argi = 0;

	aps_cfg_defaults(table, &o);
	/* --config comes last but is applied first: the command line wins */
	CHECK_EQ_INT(aps_cfg_parse_args(table, &o, 4, argv, &argi, err, sizeof(err)), APS_OK);
	CHECK_EQ_STR(o.name, "fromfile");
	CHECK_EQ_INT(o.count, 8);
	CHECK_EQ_INT(o.flag, 1);
	aps_cfg_free(table, &o);
}

/* As Windows' Notepad saves it: a byte order mark and CR LF line ends. */
TEST(notepad_files)
{
	struct opts o = {0};
	char err[200];

	aps_cfg_defaults(table, &o);
	CHECK_EQ_INT(aps_cfg_load_file(table, &o,
				       write_tmp("n.conf", "\xEF\xBB\xBFname = win\r\ncount = 3\r\n"),
				       err, sizeof(err)),
		     APS_OK);
	CHECK_EQ_STR(o.name, "win");
	CHECK_EQ_INT(o.count, 3);
	aps_cfg_free(table, &o);
}

TEST(file_errors_name_the_line)
{
	struct opts o = {0};
	char err[300];

	aps_cfg_defaults(table, &o);
	CHECK_EQ_INT(aps_cfg_load_file(table, &o, write_tmp("b.conf", "count = 5\nbogus line\n"),
				       err, sizeof(err)),
		     APS_ERR_INVAL);
	CHECK(strstr(err, ":2:") != NULL);
	CHECK(aps_cfg_load_file(table, &o, write_tmp("c.conf", "colour = red\n"), err,
				sizeof(err)) != APS_OK);
	CHECK(strstr(err, "colour") != NULL);
	CHECK_EQ_INT(aps_cfg_load_file(table, &o, "/nonexistent/x.conf", err, sizeof(err)),
		     APS_ERR_NOTFOUND);
	CHECK(strstr(err, "/nonexistent/x.conf") != NULL);
	aps_cfg_free(table, &o);
}

int main(void)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : getenv("TEMP");

	aps_plat_init();
	snprintf(tmpdir, sizeof(tmpdir), "%s/apsync-cfg-XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(tmpdir))
		return 1;
	RUN(defaults);
	RUN(command_line);
	RUN(bounds_and_errors);
	RUN(file_then_command_line);
	RUN(notepad_files);
	RUN(file_errors_name_the_line);
	unlink(write_tmp("a.conf", ""));
	unlink(write_tmp("b.conf", ""));
	unlink(write_tmp("c.conf", ""));
	unlink(write_tmp("n.conf", ""));
	rmdir(tmpdir);
	return tap_done();
}
