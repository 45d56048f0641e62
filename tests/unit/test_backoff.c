/* The agent's reconnect policy: capped doubling with jitter, through the
 * libwebsockets retry table it drives. */
#include <libwebsockets.h>

#include "agent_internal.h"
#include "tap.h"

TEST(table_doubles_and_caps)
{
	uint32_t t[AGENT_BACKOFF_STEPS];
	uint16_t n;

	agent__backoff_table(t, &n, 1000, 60000);
	CHECK_EQ_INT(n, 7);
	CHECK_EQ_INT(t[0], 1000);
	CHECK_EQ_INT(t[1], 2000);
	CHECK_EQ_INT(t[5], 32000);
	CHECK_EQ_INT(t[6], 60000);
	agent__backoff_table(t, &n, 500, 500);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(t[0], 500);
	agent__backoff_table(t, &n, 1, 3600000); /* never more steps than the table holds */
	CHECK_EQ_INT(n, AGENT_BACKOFF_STEPS);
	CHECK_EQ_INT(t[AGENT_BACKOFF_STEPS - 1], 32768);
}

TEST(delays_are_jittered_and_capped)
{
	struct lws_context_creation_info info;
	struct lws_context *ctx;
	uint32_t t[AGENT_BACKOFF_STEPS];
	lws_retry_bo_t retry = {0};
	uint16_t n, ctry = 0;
	unsigned int d, base, distinct = 0, last = 0;
	char conceal;
	int i;

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	lws_set_log_level(0, NULL);
	ctx = lws_create_context(&info);
	CHECK(ctx != NULL);
	agent__backoff_table(t, &n, 1000, 60000);
	retry.retry_ms_table = t;
	retry.retry_ms_table_count = n;
	retry.conceal_count = LWS_RETRY_CONCEAL_ALWAYS;
	retry.jitter_percent = 30;
	for (i = 0; i < 40; i++) {
		base = t[i < n ? i : n - 1];
		d = lws_retry_get_delay_ms(ctx, &retry, &ctry, &conceal);
		CHECK(d >= base && d <= base + base * 30 / 100);
		CHECK(conceal); /* the agent never gives up */
		if (d != last)
			distinct++;
		last = d;
	}
	CHECK(distinct > 20); /* jitter: agents do not reconnect in lockstep */
	lws_context_destroy(ctx);
}

int main(void)
{
	RUN(table_doubles_and_caps);
	RUN(delays_are_jittered_and_capped);
	return tap_done();
}
