/*
 * Decimal amounts without binary floats: "1234.5678" as an integer scaled by
 * 10^4 (APS_DEC_SCALE). Quantities, prices, rates and money on the wire are
 * decimal strings (proto/LISTS.md, EXPORTS.md); writers compute with these.
 */
#ifndef APS_DECIMAL_H
#define APS_DECIMAL_H

#include <stdint.h>

#define APS_DEC_SCALE  10000
#define APS_DEC_DIGITS 4
#define APS_DEC_MAX    INT64_C(900000000000000000) /* |value| below 9e13 units */

/* Parses [-]digits[.digits] (at most 4 decimals, no exponent, no spaces). */
int aps_dec_parse(const char *s, int64_t *out);
/* v rounded half away from zero to `digits` decimals (0..4). */
int64_t aps_dec_round(int64_t v, int digits);
/* a × b, both scaled, rounded half away from zero to the scale. */
int64_t aps_dec_mul(int64_t a, int64_t b);
/* Writes v with exactly `digits` decimals (rounded); out holds 32 bytes. */
char *aps_dec_format(int64_t v, int digits, char out[32]);

#endif
