/*
 * fuzz_draft.c — libFuzzer target for the draft parser and validator
 * (engine/draft.h, SPEC §3).  Built and run by `make fuzz` / `make fuzz-smoke`.
 *
 * Besides what ASan and UBSan catch, it checks the promises draft.h makes
 * and traps when one is broken, so libFuzzer saves the input:
 *   FA_OK       -> no problems, 1..100 items (none for a whole red reversal,
 *                  whose lines red_resolve() fills in later), total == total_amount +
 *                  total_tax, a drawer, a type of 026 or 028 and well-formed warnings;
 *   FA_REJECTED -> at least one problem, and every line of the text is
 *                  non-empty and names a field ("path: message");
 *   otherwise   -> the problems are left empty.
 * json_numbers_as_strings() is fuzzed on the same bytes: its output is
 * NUL-terminated and at most 3 times as long as its input.
 *
 * The first byte picks the defaults (drawer "张三" or none); the whole input
 * is still the draft, so seeds are plain draft files.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine/draft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void broken_at(const char *what, const struct problems *p, const char *line, size_t len)
{
    fprintf(stderr, "fuzz_draft: invariant broken: %s\n", what);
    if (line)
        fprintf(stderr, "fuzz_draft: the line: \"%.*s\"\n", (int)len, line);
    if (p && p->text)
        fprintf(stderr, "fuzz_draft: problems (%d):\n%s\n", p->count, p->text);
    __builtin_trap();
}

static void broken(const char *what, const struct problems *p)
{
    broken_at(what, p, NULL, 0);
}

/* Every line non-empty and "path: message"; the text ends with a newline. */
static void check_lines(const struct problems *p)
{
    const char *line, *nl;

    if (p->text && strlen(p->text) != p->len)
        broken("problems.len differs from strlen(problems.text)", p);
    for (line = p->text; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl)
            broken("problems.text does not end with a newline", p);
        if (nl == line)
            broken_at("problems.text has an empty line", p, line, 0);
        if (!memmem(line, (size_t)(nl - line), ": ", 2))
            broken_at("a line of problems.text has no \": \" (no field path)", p, line,
                      (size_t)(nl - line));
    }
}

static void check_rejected(const struct problems *p)
{
    if (p->count < 1)
        broken("FA_REJECTED with problems.count == 0", p);
    if (!p->text || !p->text[0])
        broken("FA_REJECTED with empty problems.text", p);
    check_lines(p);
}

static void check_ok(const struct draft *d, const struct problems *p)
{
    int64_t sum;

    if (p->count != 0 || (p->text && p->text[0]))
        broken("FA_OK with problems", p);
    if (d->red.full) {
        /* a whole reversal: the lines come from the blue invoice later (red_resolve) */
        if (!d->red.present || d->nitems != 0)
            broken("FA_OK with red.full but red absent or lines given", p);
    } else if (d->nitems < 1 || d->nitems > DRAFT_MAX_ITEMS) {
        broken("FA_OK with nitems outside 1..100", p);
    }
    if (__builtin_add_overflow(d->total_amount.v, d->total_tax.v, &sum))
        broken("FA_OK with total_amount + total_tax out of range", p);
    if (d->total.v != sum)
        broken("FA_OK with total != total_amount + total_tax", p);
    if (!d->drawer || !d->drawer[0])
        broken("FA_OK without a drawer", p);
    if (!d->type || (strcmp(d->type, "026") && strcmp(d->type, "028")))
        broken("FA_OK with a type other than 026 or 028", p);
    check_lines(&d->warnings);
}

static void fuzz_numbers_as_strings(const uint8_t *data, size_t size)
{
    size_t out_len = (size_t)-1;
    char *out = json_numbers_as_strings((const char *)data, size, &out_len);

    if (!out)
        return;   /* out of memory */
    if (out_len > 3 * size)
        broken("json_numbers_as_strings: output longer than 3 x input", NULL);
    if (out[out_len] != 0)
        broken("json_numbers_as_strings: output not NUL-terminated", NULL);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct draft d;   /* 100 items: keep it off the stack */
    struct problems p = { 0 };
    struct draft_defaults with_drawer = { .drawer = "张三" }, none = { .drawer = NULL };
    const struct draft_defaults *defs = size > 0 && (data[0] & 1) ? &with_drawer : &none;
    enum fa_err rc;

    rc = draft_parse(data, size, defs, &d, &p);
    if (rc == FA_OK)
        check_ok(&d, &p);
    else if (rc == FA_REJECTED)
        check_rejected(&p);
    else if (p.count != 0 || (p.text && p.text[0]))
        broken("an error other than FA_REJECTED left problems", &p);
    draft_free(&d);
    problems_free(&p);

    fuzz_numbers_as_strings(data, size);
    return 0;
}
