/* Scaled-integer decimals: see decimal.h. */
#include <stdio.h>

#include "decimal.h"
#include "err.h"

int aps_dec_parse(const char *s, int64_t *out)
{
	int64_t v = 0;
	int neg = 0, frac = -1, digits = 0;

	if (!s)
		return APS_ERR_INVAL;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	for (; *s; s++) {
		if (*s == '.' && frac < 0) {
			frac = 0;
			continue;
		}
		if (*s < '0' || *s > '9')
			return APS_ERR_INVAL;
		if (frac >= 0 && ++frac > APS_DEC_DIGITS)
			return APS_ERR_RANGE;
		if (v > APS_DEC_MAX / 10)
			return APS_ERR_RANGE;
		v = v * 10 + (*s - '0');
		digits++;
	}
	if (!digits || frac == 0)
		return APS_ERR_INVAL; /* "", "-", "1." */
	for (frac = frac < 0 ? 0 : frac; frac < APS_DEC_DIGITS; frac++) {
		if (v > APS_DEC_MAX / 10)
			return APS_ERR_RANGE;
		v *= 10;
	}
	*out = neg ? -v : v;
	return APS_OK;
}

int64_t aps_dec_round(int64_t v, int digits)
{
	int64_t unit = 1, half, r;
	int i;

	for (i = digits; i < APS_DEC_DIGITS; i++)
		unit *= 10;
	half = unit / 2;
	r = v < 0 ? -v : v;
	r = (r + (unit > 1 ? half : 0)) / unit * unit;
	return v < 0 ? -r : r;
}

int64_t aps_dec_mul(int64_t a, int64_t b)
{
	__int128 p = (__int128)a * b;
	int neg = p < 0;

	if (neg)
		p = -p;
	p = (p + APS_DEC_SCALE / 2) / APS_DEC_SCALE;
	return (int64_t)(neg ? -p : p);
}

char *aps_dec_format(int64_t v, int digits, char out[32])
{
	int64_t r = aps_dec_round(v, digits), a = r < 0 ? -r : r, unit = 1;
	int i;

	for (i = digits; i < APS_DEC_DIGITS; i++)
		unit *= 10;
	if (digits > 0)
		snprintf(out, 32, "%s%lld.%0*lld", r < 0 ? "-" : "", (long long)(a / APS_DEC_SCALE),
			 digits, (long long)(a % APS_DEC_SCALE / unit));
	else
		snprintf(out, 32, "%s%lld", r < 0 ? "-" : "", (long long)(a / APS_DEC_SCALE));
	return out;
}
