/*
 * Minimal TAP for unit tests: each TEST() is one test case; the runner
 * (tests/run.py) counts "ok" and "not ok" lines.
 *
 *   TEST(codec_roundtrip) { CHECK(x == 1); CHECK_EQ_INT(a, b); }
 *   int main(void) { RUN(codec_roundtrip); return tap_done(); }
 */
#ifndef APS_TAP_H
#define APS_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed, tap_case_failed;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                              \
	do {                                                                   \
		tap_case_failed = 0;                                           \
		test_##name();                                                 \
		tap_n++;                                                       \
		if (tap_case_failed)                                           \
			tap_failed++;                                          \
		printf("%sok %d - %s\n", tap_case_failed ? "not " : "", tap_n,  \
		       #name);                                                 \
		fflush(stdout);                                                \
	} while (0)

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("#   %s:%d: CHECK(%s) failed\n", __FILE__,        \
			       __LINE__, #cond);                               \
			tap_case_failed = 1;                                   \
		}                                                              \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                     \
	do {                                                                   \
		long long tap_a = (long long)(a), tap_b = (long long)(b);      \
		if (tap_a != tap_b) {                                          \
			printf("#   %s:%d: %s == %lld, expected %s == %lld\n",    \
			       __FILE__, __LINE__, #a, tap_a, #b, tap_b);      \
			tap_case_failed = 1;                                   \
		}                                                              \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                     \
	do {                                                                   \
		const char *tap_a = (a), *tap_b = (b);                         \
		if (!tap_a || !tap_b || strcmp(tap_a, tap_b)) {                \
			printf("#   %s:%d: %s == \"%s\", expected \"%s\"\n",      \
			       __FILE__, __LINE__, #a, tap_a ? tap_a : "(null)", \
			       tap_b ? tap_b : "(null)");                      \
			tap_case_failed = 1;                                   \
		}                                                              \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
