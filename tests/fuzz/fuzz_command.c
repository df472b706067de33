/*
 * fuzz_command.c — libFuzzer target for the command line of the control file
 * device/clear: clear_parse_command() (engine/clearing.h).  Built and run by
 * `make fuzz` / `make fuzz-smoke`; seeds in tests/fuzz/corpus/command.
 *
 * The input is the line (up to its first NUL, as control.c hands it over).
 * It is parsed twice: with the buffers engine_clear() gives (PIN 64 bytes,
 * shown 48) and with small ones chosen from the input's length, each
 * allocated to exactly its size so that ASan sees a write past it.
 *
 * Besides what ASan and UBSan catch, it traps (so libFuzzer saves the input)
 * when the result differs from an independent reading of the grammar:
 *   accepted only "clear" or "clear pin=DIGITS" (spaces or tabs between),
 *   with optional spaces, tabs or CRs around; DIGITS 1 to cap-1 of them;
 *   0 -> pin is exactly those digits ("" for plain clear), shown is "clear"
 *        or "clear pin=********" (cut to its buffer) and holds no digit,
 *        so never the PIN;
 *  -1 -> pin is "".
 */
#include <stdlib.h>
#include "engine/clearing.h"

#define FUZZ_NAME "fuzz_command"
#include "tests/fuzz/fuzz.h"

#define LINE_MAX_FUZZ 4096

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* The grammar, written again from clearing.h: 0 with the PIN, or -1. */
static int reference(const char *line, size_t cap, char *pin, size_t pin_size)
{
    const char *p = line, *end = line + strlen(line), *q, *d;

    pin[0] = 0;
    while (p < end && blank(*p))
        p++;
    while (end > p && blank(end[-1]))
        end--;
    if (end - p == 5 && !memcmp(p, "clear", 5))
        return 0;
    if (end - p < 5 || memcmp(p, "clear", 5))
        return -1;
    q = p + 5;
    if (q == end || (*q != ' ' && *q != '\t'))
        return -1;
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    if (end - q < 4 || memcmp(q, "pin=", 4))
        return -1;
    q += 4;
    if (q == end || (size_t)(end - q) >= cap || (size_t)(end - q) >= pin_size)
        return -1;
    for (d = q; d < end; d++)
        if (*d < '0' || *d > '9')
            return -1;
    memcpy(pin, q, (size_t)(end - q));
    pin[end - q] = 0;
    return 0;
}

static void parse(const char *line, size_t cap, size_t shown_len)
{
    static char want_pin[LINE_MAX_FUZZ + 1];
    char *pin = malloc(cap), *shown = malloc(shown_len);
    const char *expect;
    int rc, want;
    size_t i;

    if (!pin || !shown)
        goto out;
    memset(pin, 'X', cap);
    memset(shown, 'X', shown_len);
    rc = clear_parse_command(line, pin, cap, shown, shown_len);
    want = reference(line, cap, want_pin, sizeof want_pin);
    FUZZ_CHECK(rc == want, "\"%s\" (PIN cap %zu): parsed %d, the grammar says %d", line, cap, rc, want);
    FUZZ_CHECK(strnlen(pin, cap) < cap, "\"%s\": PIN not NUL-terminated in %zu bytes", line, cap);
    if (rc != 0) {
        FUZZ_CHECK(pin[0] == 0, "\"%s\": refused, yet PIN \"%s\" left", line, pin);
        goto out;
    }
    FUZZ_CHECK(!strcmp(pin, want_pin), "\"%s\": PIN \"%s\", want \"%s\"", line, pin, want_pin);
    FUZZ_CHECK(strnlen(shown, shown_len) < shown_len, "\"%s\": shown not NUL-terminated", line);
    expect = pin[0] ? "clear pin=********" : "clear";
    FUZZ_CHECK(!strncmp(shown, expect, shown_len - 1) && strlen(shown) == strnlen(expect, shown_len - 1),
               "\"%s\": shown \"%s\", want \"%s\" cut to %zu", line, shown, expect, shown_len - 1);
    for (i = 0; shown[i]; i++)
        FUZZ_CHECK(shown[i] < '0' || shown[i] > '9', "\"%s\": shown \"%s\" holds a digit", line, shown);
out:
    free(pin);
    free(shown);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line;

    if (size > LINE_MAX_FUZZ)
        return 0;
    line = fz_cstring(data, size);
    if (!line)
        return 0;
    parse(line, 64, sizeof ((struct clear_result *)0)->command);
    parse(line, 1 + size % 13, 1 + size % 23);
    free(line);
    return 0;
}
