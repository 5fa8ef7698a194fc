#include "timeid.h"

#include <string.h>

static long long days_from_civil(long long y, unsigned m, unsigned d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *d) {
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long long)yoe + era * 400 + (*m <= 2);
}

static int num(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int parse_canonical_ms(const char *s, size_t n, long long *ms) {
    if (n != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        s[19] != '.' || s[23] != 'Z')
        return -1;
    int y, mo, d, h, mi, se, f;
    if (num(s, 4, &y) || num(s + 5, 2, &mo) || num(s + 8, 2, &d) || num(s + 11, 2, &h) ||
        num(s + 14, 2, &mi) || num(s + 17, 2, &se) || num(s + 20, 3, &f))
        return -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) return -1;
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > dim[mo - 1] + (mo == 2 && leap)) return -1;
    long long days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *ms = ((days * 24 + h) * 60 + mi) * 60000LL + se * 1000LL + f;
    return 0;
}

static void digits(char *out, long long v, int n) {
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void format_ms(long long ms, char out[24]) {
    long long days = ms / 86400000LL;
    long long rest = ms % 86400000LL;
    long long y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    digits(out, y, 4);
    out[4] = '-';
    digits(out + 5, m, 2);
    out[7] = '-';
    digits(out + 8, d, 2);
    out[10] = 'T';
    digits(out + 11, rest / 3600000, 2);
    out[13] = ':';
    digits(out + 14, rest / 60000 % 60, 2);
    out[16] = ':';
    digits(out + 17, rest / 1000 % 60, 2);
    out[19] = '.';
    digits(out + 20, rest % 1000, 3);
    out[23] = 'Z';
}

void uuid_text(const uint8_t raw[16], char text[36]) {
    static const char hex[] = "0123456789abcdef";
    int t = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) text[t++] = '-';
        text[t++] = hex[raw[i] >> 4];
        text[t++] = hex[raw[i] & 0x0F];
    }
}

void event_id(const blake2b_state *prefix, long long time_ms, long long offset, uint32_t index,
              uint8_t raw[16], char text[36]) {
    blake2b_state s = *prefix;
    uint8_t coords[12];
    uint64_t o = (uint64_t)offset;
    for (int i = 0; i < 8; i++) coords[i] = (uint8_t)(o >> (56 - 8 * i));
    for (int i = 0; i < 4; i++) coords[8 + i] = (uint8_t)(index >> (24 - 8 * i));
    blake2b_update(&s, coords, sizeof coords);
    uint8_t d[10];
    blake2b_final(&s, d);
    long long ts = time_ms < 0 ? 0 : time_ms;
    if (ts > 0xFFFFFFFFFFFFLL) ts = 0xFFFFFFFFFFFFLL;
    for (int i = 0; i < 6; i++) raw[i] = (uint8_t)((uint64_t)ts >> (40 - 8 * i));
    /* version 7 in the high nibble of byte 6; variant 0b10 in the top bits of byte 8 */
    raw[6] = (uint8_t)(0x70 | (d[0] & 0x0F));
    raw[7] = d[1];
    raw[8] = (uint8_t)((d[2] & 0x3F) | 0x80);
    memcpy(raw + 9, d + 3, 7);
    uuid_text(raw, text);
}
