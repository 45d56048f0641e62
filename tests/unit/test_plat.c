/* The platform layer (common/plat.h) and the size-capped log file: built and
 * run on Linux by `make check`, and as a Windows program under wine by
 * `make windows-check`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "plat.h"
#include "tap.h"
#include "util.h"

static char dir[1024];

static void put(const char *name, const char *text)
{
	char path[1200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* The file's text, or "" when there is none; static storage. */
static const char *get(const char *name)
{
	static char text[8192];
	char path[1200];
	FILE *f;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	text[0] = '\0';
	f = fopen(path, "rb");
	if (f) {
		n = fread(text, 1, sizeof(text) - 1, f);
		fclose(f);
	}
	text[n] = '\0';
	return text;
}

static const char *at(const char *name)
{
	static char path[1200];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

TEST(publish_never_replaces)
{
	char tmp[1200], path[1200];

	snprintf(tmp, sizeof(tmp), "%s", at("doc.part"));
	snprintf(path, sizeof(path), "%s", at("doc.xml"));
	put("doc.part", "first");
	CHECK_EQ_INT(aps_file_publish(tmp, path), APS_OK);
	CHECK_EQ_STR(get("doc.xml"), "first");
	CHECK_EQ_STR(get("doc.part"), ""); /* moved, not copied */
	put("doc.part", "second");
	CHECK_EQ_INT(aps_file_publish(tmp, path), APS_ERR_EXISTS);
	CHECK_EQ_STR(get("doc.xml"), "first");
	CHECK_EQ_STR(get("doc.part"), "second"); /* left for the caller */
	/* replace does replace, in one step */
	CHECK_EQ_INT(aps_file_replace(tmp, path), APS_OK);
	CHECK_EQ_STR(get("doc.xml"), "second");
	CHECK_EQ_INT(aps_file_replace(at("none"), path), APS_ERR_IO);
	CHECK_EQ_STR(get("doc.xml"), "second");
}

TEST(write_file_is_whole_and_durable)
{
	int64_t size = 0, mtime = 0;

	CHECK_EQ_INT(aps_write_file(at("cred.json"), "{\"a\": 1}", 8, 0600), APS_OK);
	CHECK_EQ_STR(get("cred.json"), "{\"a\": 1}");
	CHECK_EQ_INT(aps_write_file(at("cred.json"), "{}", 2, 0600), APS_OK);
	CHECK_EQ_STR(get("cred.json"), "{}");
	CHECK_EQ_STR(get("cred.json.tmp"), "");
	CHECK_EQ_INT(aps_file_stamp(at("cred.json"), &size, &mtime), APS_OK);
	CHECK_EQ_INT(size, 2);
	/* within a day of now: the clock and the file system agree */
	CHECK(mtime / 1000000 > aps_now_ms() - 86400000 && mtime / 1000000 < aps_now_ms() + 86400000);
	CHECK_EQ_INT(aps_file_stamp(at("none"), &size, &mtime), APS_ERR_NOTFOUND);
}

TEST(private_directories)
{
	char sub[1200], why[700], err[400];

	snprintf(sub, sizeof(sub), "%s/state/agent", dir);
	CHECK_EQ_INT(aps_dir_private(sub, err, sizeof(err)), APS_OK);
#ifdef _WIN32
	if (GetProcAddress(GetModuleHandleA("ntdll.dll"), "wine_get_version")) {
		/* wine shows every file readable by Everyone, whatever was set:
		 * the check cannot tell, and says why */
		CHECK_EQ_INT(aps_path_open_to_others(sub, why, sizeof(why)), -1);
		CHECK(strstr(why, "wine keeps no access lists") != NULL);
	} else {
		CHECK_EQ_INT(aps_path_open_to_others(sub, why, sizeof(why)), 0);
	}
#else
	CHECK_EQ_INT(aps_path_open_to_others(sub, why, sizeof(why)), 0);
#endif
	/* a file made inside is the owner's too */
	CHECK_EQ_INT(aps_mkdir_p(sub, 0700), APS_OK); /* exists: fine */
	CHECK_EQ_INT(aps_path_open_to_others(at("none"), why, sizeof(why)), -1);
#ifndef _WIN32
	CHECK_EQ_INT(aps_mkdir_p(at("open"), 0755), APS_OK);
	CHECK_EQ_INT(aps_path_open_to_others(at("open"), why, sizeof(why)), 1);
	CHECK(strstr(why, "chmod 700") != NULL);
#endif
}

TEST(the_machine)
{
	char os[200] = "", host[256] = "";

	aps_plat_os(os, sizeof(os));
	aps_plat_hostname(host, sizeof(host));
#ifdef _WIN32
	CHECK(!strncmp(os, "Windows ", 8));
#else
	CHECK(!strncmp(os, "Linux ", 6));
#endif
	CHECK(host[0] != '\0' && strcmp(host, "unknown"));
	CHECK(aps_path_sep('/'));
	CHECK(!aps_path_sep('a'));
}

TEST(local_time_offsets)
{
	/* 2024-01-15 and 2024-07-15, noon UTC */
	putenv("TZ=IST-05:30");
	tzset();
	CHECK_EQ_INT(aps_plat_utc_offset((time_t)1705320000), 330);
	CHECK_EQ_INT(aps_plat_utc_offset((time_t)1721044800), 330);
#ifndef _WIN32
	/* US Eastern with its summer time (wine's C runtime applies none from
	 * TZ; Windows takes it from the system's zone) */
	putenv("TZ=EST5EDT");
	tzset();
	CHECK_EQ_INT(aps_plat_utc_offset((time_t)1705320000), -300);
	CHECK_EQ_INT(aps_plat_utc_offset((time_t)1721044800), -240);
#endif
	putenv("TZ=UTC0");
	tzset();
	CHECK_EQ_INT(aps_plat_utc_offset((time_t)1721044800), 0);
}

/* The log file: renamed to .1 (.1 to .2 …) before it would pass its size;
 * three old files kept; no line lost or split in between. */
TEST(log_files_are_capped)
{
	char err[300], name[32], *p;
	const char *text;
	int i, last = -1, first, n, files = 0, in_order = 1;

	aps_log_init("test", APS_LOG_INFO);
	CHECK_EQ_INT(aps_log_file(at("agent.log"), 400, err, sizeof(err)), APS_OK);
	for (i = 0; i < 60; i++)
		log_info("line %03d of the capped log", i);
	CHECK_EQ_INT(aps_log_file(at("other.log"), 400, err, sizeof(err)), APS_OK);
	/* oldest kept to newest: agent.log.3, .2, .1, agent.log */
	for (i = 3; i >= 0; i--) {
		snprintf(name, sizeof(name), i ? "agent.log.%d" : "agent.log", i);
		text = get(name);
		if (!*text)
			continue;
		files++;
		CHECK(strlen(text) <= 400);
		first = -1;
		for (p = strstr(text, "line "); p; p = strstr(p + 1, "line ")) {
			n = atoi(p + 5);
			if (first < 0)
				first = n;
			if (last >= 0 && n != last + 1)
				in_order = 0;
			last = n;
		}
		CHECK(first >= 0);
	}
	CHECK_EQ_INT(files, 4);
	CHECK(in_order);
	CHECK_EQ_INT(last, 59);
	CHECK_EQ_STR(get("agent.log.4"), "");
	CHECK_EQ_INT(aps_log_file(at("no/such/dir/x.log"), 400, err, sizeof(err)), APS_ERR_IO);
	CHECK(strstr(err, "x.log") != NULL);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	char cmd[2600];

	aps_plat_init();
#ifdef _WIN32
	if (!base)
		base = getenv("TEMP");
#endif
	snprintf(dir, sizeof(dir), "%s/apsync-plat-%ld-%ld", base ? base : "/tmp", (long)getpid(),
		 (long)time(NULL));
	if (aps_mkdir_p(dir, 0700)) {
		printf("Bail out! cannot create %s\n", dir);
		return 1;
	}
	RUN(publish_never_replaces);
	RUN(write_file_is_whole_and_durable);
	RUN(private_directories);
	RUN(the_machine);
	RUN(local_time_offsets);
	RUN(log_files_are_capped);
	aps_log_file(NULL, 0, cmd, sizeof(cmd)); /* lets go of the directory */
#ifdef _WIN32
	snprintf(cmd, sizeof(cmd), "rmdir /s /q \"%s\"", dir);
#else
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
#endif
	if (system(cmd))
		printf("# could not remove %s\n", dir);
	return tap_done();
}
