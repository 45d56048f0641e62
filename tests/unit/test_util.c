/* Small parsers and encoders that guard input: time, numbers, enrollment
 * codes, credentials, broker URLs, certificate pins. */
#include <ctype.h>
#include <stdlib.h>

#include "agent_internal.h"
#include "broker_internal.h"
#include "decimal.h"
#include "err.h"
#include "tap.h"
#include "util.h"

TEST(time_format_and_parse)
{
	char iso[APS_TIME_LEN];
	int64_t ms;

	CHECK_EQ_STR(aps_time_iso(0, iso), "1970-01-01T00:00:00.000Z");
	CHECK_EQ_STR(aps_time_iso(1732260000123, iso), "2024-11-22T07:20:00.123Z");
	CHECK_EQ_INT(aps_time_parse("2024-11-22T07:20:00.123Z", &ms), APS_OK);
	CHECK_EQ_INT(ms, 1732260000123);
	CHECK_EQ_INT(aps_time_parse("2024-11-22T02:20:00.123-05:00", &ms), APS_OK);
	CHECK_EQ_INT(ms, 1732260000123); /* same instant, ERP local time with its offset */
	CHECK_EQ_INT(aps_time_parse("2024-11-22", &ms), APS_OK);
	CHECK_EQ_INT(ms, 1732233600000);
	CHECK_EQ_INT(aps_time_parse("2024-11-22 07:20", &ms), APS_OK);
	CHECK_EQ_INT(aps_time_parse("2024-13-01", &ms), APS_ERR_INVAL);
	CHECK_EQ_INT(aps_time_parse("2024-11-22T07:20:00Zjunk", &ms), APS_ERR_INVAL);
	CHECK_EQ_INT(aps_time_parse("yesterday", &ms), APS_ERR_INVAL);
}

TEST(erp_local_times_keep_their_offset)
{
	char out[APS_TIME_LEN];
	int64_t ms;
	int off;

	CHECK_EQ_INT(aps_time_parse_offset("2024-05-01T10:22:33.120-05:00", &ms, &off), APS_OK);
	CHECK_EQ_INT(off, -300);
	CHECK_EQ_STR(aps_time_format_offset(ms, off, out), "2024-05-01T10:22:33.120-05:00");
	/* minus a lag across midnight, still in ERP local time */
	CHECK_EQ_INT(aps_time_parse_offset("2024-05-01T00:00:02.000+05:30", &ms, &off), APS_OK);
	CHECK_EQ_STR(aps_time_format_offset(ms - 5000, off, out), "2024-04-30T23:59:57.000+05:30");
	CHECK_EQ_INT(aps_time_parse_offset("2024-05-01T10:00:00Z", &ms, &off), APS_OK);
	CHECK_EQ_STR(aps_time_format_offset(ms, off, out), "2024-05-01T10:00:00.000+00:00");
}

TEST(numbers_are_bounded)
{
	int64_t v;

	CHECK_EQ_INT(aps_parse_i64("42", 0, 100, &v), APS_OK);
	CHECK_EQ_INT(v, 42);
	CHECK_EQ_INT(aps_parse_i64("101", 0, 100, &v), APS_ERR_RANGE);
	CHECK_EQ_INT(aps_parse_i64("99999999999999999999", 0, INT64_MAX, &v), APS_ERR_RANGE);
	CHECK_EQ_INT(aps_parse_i64(" 4", 0, 100, &v), APS_ERR_INVAL);
	CHECK_EQ_INT(aps_parse_i64("4 ", 0, 100, &v), APS_ERR_INVAL);
	CHECK_EQ_INT(aps_parse_i64("", 0, 100, &v), APS_ERR_INVAL);
	CHECK_EQ_INT(aps_parse_i64("0x10", 0, 100, &v), APS_ERR_INVAL);
}

TEST(enrollment_codes)
{
	char code[20];
	uint8_t h1[32], h2[32], h3[32];
	char lower[20];
	int i;

	CHECK_EQ_INT(auth__code_new(code, h1), APS_OK);
	CHECK_EQ_INT(strlen(code), 19);
	CHECK(code[4] == '-' && code[9] == '-' && code[14] == '-');
	for (i = 0; code[i]; i++)
		lower[i] = (char)tolower((unsigned char)code[i]);
	lower[i] = '\0';
	CHECK_EQ_INT(auth__code_hash(lower, h2), APS_OK);
	CHECK(!memcmp(h1, h2, 32)); /* case and dashes do not matter */
	CHECK_EQ_INT(auth__code_hash("0000-1111-2222-3333", h2), APS_OK);
	CHECK_EQ_INT(auth__code_hash("OOOO-IIII-2222-3333", h3), APS_OK);
	CHECK(!memcmp(h2, h3, 32)); /* O reads as 0, I as 1 */
	CHECK_EQ_INT(auth__code_hash("ABCD-EFGH-JKMN-PQR", h2), APS_ERR_INVAL);
	CHECK_EQ_INT(auth__code_hash("ABCD-EFGH-JKMN-PQRSX", h2), APS_ERR_INVAL);
	CHECK_EQ_INT(auth__code_hash("ABCD-EFGH-JKMN-PQR!", h2), APS_ERR_INVAL);
}

TEST(credentials)
{
	char secret[AUTH_SECRET_LEN], cred[120];
	uint8_t h1[32], h2[32];
	int64_t id;

	CHECK_EQ_INT(auth__secret_new(secret, h1), APS_OK);
	CHECK_EQ_INT(strlen(secret), 43);
	snprintf(cred, sizeof(cred), "apsa_17_%s", secret);
	CHECK_EQ_INT(auth__agent_credential(cred, &id, h2), APS_OK);
	CHECK_EQ_INT(id, 17);
	CHECK(!memcmp(h1, h2, 32));
	CHECK_EQ_INT(auth__agent_credential("apsa_x_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &id,
					    h2),
		     APS_ERR_AUTH);
	CHECK_EQ_INT(auth__agent_credential("apsa_17_short", &id, h2), APS_ERR_AUTH);
	CHECK_EQ_INT(auth__agent_credential("apt_17_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &id, h2),
		     APS_ERR_AUTH);
	snprintf(cred, sizeof(cred), "apt_%s", secret);
	CHECK_EQ_INT(auth__api_token(cred, h2), APS_OK);
	CHECK(!memcmp(h1, h2, 32));
	CHECK_EQ_INT(auth__api_token("Bearer x", h2), APS_ERR_AUTH);
	CHECK(auth__role_may_sync("invoice_exporter"));
	CHECK(auth__role_may_sync("system_administrator"));
	CHECK(!auth__role_may_sync("viewer"));
	CHECK(auth__role_valid("approver"));
	CHECK(!auth__role_valid("root"));
}

TEST(broker_urls)
{
	char host[64], err[200];
	int port;

	CHECK_EQ_INT(agent__parse_url("wss://broker.example.com", host, sizeof(host), &port, err,
				      sizeof(err)),
		     APS_OK);
	CHECK_EQ_STR(host, "broker.example.com");
	CHECK_EQ_INT(port, 443);
	CHECK_EQ_INT(agent__parse_url("wss://127.0.0.1:8443/", host, sizeof(host), &port, err,
				      sizeof(err)),
		     APS_OK);
	CHECK_EQ_STR(host, "127.0.0.1");
	CHECK_EQ_INT(port, 8443);
	CHECK_EQ_INT(agent__parse_url("wss://[::1]:9000", host, sizeof(host), &port, err,
				      sizeof(err)),
		     APS_OK);
	CHECK_EQ_STR(host, "::1");
	CHECK_EQ_INT(port, 9000);
	CHECK_EQ_INT(agent__parse_url("ws://broker:80", host, sizeof(host), &port, err, sizeof(err)),
		     APS_ERR_INVAL);
	CHECK(strstr(err, "TLS") != NULL);
	CHECK_EQ_INT(agent__parse_url("wss://broker:99999", host, sizeof(host), &port, err,
				      sizeof(err)),
		     APS_ERR_INVAL);
	CHECK_EQ_INT(agent__parse_url("broker:443", host, sizeof(host), &port, err, sizeof(err)),
		     APS_ERR_INVAL);
	CHECK(aps_host_is_loopback("127.0.0.1") && aps_host_is_loopback("::1") &&
	      aps_host_is_loopback("localhost"));
	CHECK(!aps_host_is_loopback("10.0.0.1") && !aps_host_is_loopback("broker.example.com"));
}

TEST(certificate_pins)
{
	char pin[65];
	const char *fp = "0C:39:1B:76:74:2F:BA:E2:D5:DB:66:73:9C:CA:9D:C2:76:30:46:99:2C:56:D1:AD:DB:"
			 "0D:44:14:B0:8A:92:CA";

	CHECK_EQ_INT(agent_tls__parse_pin(fp, pin), APS_OK);
	CHECK_EQ_STR(pin, "0c391b76742fbae2d5db66739cca9dc2763046992c56d1addb0d4414b08a92ca");
	CHECK_EQ_INT(agent_tls__parse_pin("sha256:0c391b76742fbae2d5db66739cca9dc2763046992c56d1addb"
					  "0d4414b08a92ca",
					  pin),
		     APS_OK);
	CHECK_EQ_INT(agent_tls__parse_pin("0C:39", pin), APS_ERR_INVAL);
	CHECK_EQ_INT(agent_tls__parse_pin("zz391b76742fbae2d5db66739cca9dc2763046992c56d1addb0d4414b0"
					  "8a92ca",
					  pin),
		     APS_ERR_INVAL);
}

TEST(decimals_without_floats)
{
	char out[32];
	int64_t v;

	CHECK_EQ_INT(aps_dec_parse("1234.5", &v), APS_OK);
	CHECK_EQ_INT(v, 12345000);
	CHECK_EQ_INT(aps_dec_parse("-0.0825", &v), APS_OK);
	CHECK_EQ_INT(v, -825);
	CHECK_EQ_INT(aps_dec_parse("7", &v), APS_OK);
	CHECK_EQ_STR(aps_dec_format(v, 2, out), "7.00");
	CHECK_EQ_INT(aps_dec_parse("0.00001", &v), APS_ERR_RANGE); /* more than 4 decimals */
	CHECK_EQ_INT(aps_dec_parse("99999999999999999999", &v), APS_ERR_RANGE);
	CHECK_EQ_INT(aps_dec_parse("1.", &v), APS_ERR_INVAL);
	CHECK_EQ_INT(aps_dec_parse("1e3", &v), APS_ERR_INVAL);
	CHECK_EQ_INT(aps_dec_parse("", &v), APS_ERR_INVAL);
	CHECK_EQ_INT(aps_dec_parse(" 1", &v), APS_ERR_INVAL);
	/* 0.45 × 100 at 8.25 %: the tax rounds half away from zero */
	aps_dec_parse("3.7125", &v);
	CHECK_EQ_STR(aps_dec_format(v, 2, out), "3.71");
	aps_dec_parse("0.005", &v);
	CHECK_EQ_STR(aps_dec_format(v, 2, out), "0.01");
	aps_dec_parse("-0.005", &v);
	CHECK_EQ_STR(aps_dec_format(v, 2, out), "-0.01");
	CHECK_EQ_INT(aps_dec_mul(4500, 825), 371); /* 0.45 × 0.0825 = 0.0371 (0.037125) */
	CHECK_EQ_INT(aps_dec_mul(1000000, 450), 45000); /* 100 × 0.045 */
	CHECK_EQ_STR(aps_dec_format(-12345678, 4, out), "-1234.5678");
	CHECK_EQ_STR(aps_dec_format(12345678, 0, out), "1235");
}

TEST(proxies)
{
	char addr[128], err[200];
	unsigned port = 0;

	CHECK_EQ_INT(agent__parse_proxy("proxy.corp:3128", addr, sizeof(addr), &port, err,
					sizeof(err)),
		     APS_OK);
	CHECK_EQ_STR(addr, "proxy.corp");
	CHECK_EQ_INT(port, 3128);
	CHECK_EQ_INT(agent__parse_proxy("http://ap:s3cret@10.0.0.5:8080/", addr, sizeof(addr), &port,
					err, sizeof(err)),
		     APS_OK);
	CHECK_EQ_STR(addr, "ap:s3cret@10.0.0.5");
	CHECK_EQ_INT(port, 8080);
	CHECK_EQ_INT(agent__parse_proxy("socks5://h:1080", addr, sizeof(addr), &port, err,
					sizeof(err)),
		     APS_ERR_INVAL);
	CHECK(strstr(err, "only http://") != NULL);
	CHECK_EQ_INT(agent__parse_proxy("proxy.corp", addr, sizeof(addr), &port, err, sizeof(err)),
		     APS_ERR_INVAL);
	CHECK_EQ_INT(agent__parse_proxy("proxy.corp:99999", addr, sizeof(addr), &port, err,
					sizeof(err)),
		     APS_ERR_INVAL);
	CHECK_EQ_INT(agent__parse_proxy("evil host\r\n:80", addr, sizeof(addr), &port, err,
					sizeof(err)),
		     APS_ERR_INVAL);
	CHECK(agent__no_proxy("localhost,.corp.example", "broker.corp.example"));
	CHECK(agent__no_proxy("localhost, corp.example", "corp.example"));
	CHECK(!agent__no_proxy("corp.example", "evilcorp.example"));
	CHECK(agent__no_proxy("*", "anything"));
	CHECK(!agent__no_proxy("", "broker.example"));
}

int main(void)
{
	RUN(time_format_and_parse);
	RUN(erp_local_times_keep_their_offset);
	RUN(numbers_are_bounded);
	RUN(enrollment_codes);
	RUN(credentials);
	RUN(broker_urls);
	RUN(certificate_pins);
	RUN(decimals_without_floats);
	RUN(proxies);
	return tap_done();
}

