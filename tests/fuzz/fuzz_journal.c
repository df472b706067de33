/*
 * fuzz_journal.c — libFuzzer target for a line of the simulated device's
 * journal: sim_parse_journal_line() (device/sim.h), which every mount runs
 * over the journal entries its index does not cover.  The journal is a
 * file on disk, so what a power cut, a full disk or a hand edit leaves in
 * it reaches this parser.  Built and run by `make fuzz` / `make fuzz-smoke`;
 * seeds in tests/fuzz/corpus/journal (make_seeds.c).
 *
 * The input is the line, up to its first NUL, without its newline (as the
 * replay hands it over), in a buffer of exactly its size so that ASan sees
 * a read past it.
 *
 * Besides what ASan and UBSan catch, it traps (so libFuzzer saves the input)
 * when a promise of sim.h is broken:
 *   0  -> every text field is NUL-terminated within its size, seq >= 1,
 *         code, number and type of 12, 8 and 3 characters, a time >= 0,
 *         0..DEVICE_MAX_RATES rates, and sim_format_journal_line() of what
 *         was parsed, within the device's SIM_JOURNAL_LINE_MAX, gives back
 *         the input, byte for byte, and its newline: the parser accepts
 *         exactly what the device's formatter writes;
 *   -1 -> nothing more to check (the replay skips the line).
 */
#include <stdlib.h>
#include "device/sim.h"

#define FUZZ_NAME "fuzz_journal"
#include "tests/fuzz/fuzz.h"

#define JOURNAL_LINE_FUZZ_MAX 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct device_journal_entry e;
    struct device_rate_sum rates[DEVICE_MAX_RATES];
    char *line, again[SIM_JOURNAL_LINE_MAX];
    size_t len;
    int nrates = -1, n;

    if (size > JOURNAL_LINE_FUZZ_MAX)
        return 0;
    line = fz_cstring(data, size);
    if (!line)
        return 0;
    len = strlen(line);
    if (sim_parse_journal_line(line, &e, rates, &nrates) == 0) {
        FUZZ_CHECK(FUZZ_STR_OK(e.code) && FUZZ_STR_OK(e.number) && FUZZ_STR_OK(e.type) &&
                       FUZZ_STR_OK(e.sm3_hex) && FUZZ_STR_OK(e.signature),
                   "\"%s\": a field without its NUL", line);
        FUZZ_CHECK(e.seq >= 1, "\"%s\": seq %llu", line, (unsigned long long)e.seq);
        FUZZ_CHECK(strlen(e.code) == 12 && strlen(e.number) == 8 && strlen(e.type) == 3 &&
                       e.issued_at >= 0,
                   "\"%s\": code, number, type or time not as a device signs them", line);
        FUZZ_CHECK(nrates >= 0 && nrates <= DEVICE_MAX_RATES, "\"%s\": %d rates", line, nrates);
        n = sim_format_journal_line(&e, rates, nrates, again, sizeof again);
        FUZZ_CHECK(n >= 1 && (size_t)n == len + 1 && !memcmp(again, line, len) && again[len] == '\n',
                   "\"%s\": written again as \"%.*s\"", line, n > 0 ? n : 0, again);
    }
    free(line);
    return 0;
}
