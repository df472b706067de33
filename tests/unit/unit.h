/*
 * unit.h — a tiny harness for the unit tests in tests/unit/.
 *
 * Each test is one program whose main() makes checks and returns
 * unit_done().  Every check prints exactly one line, TAP-like, so a runner
 * can count lines starting with "ok " and "not ok ":
 *
 *     ok - parse "1.50"
 *     not ok - parse "1.50" (test_decimal.c:42: got 149, want 150)
 *
 * unit_done() prints a "# N checks, M failed" summary and returns the exit
 * status: 0 when all passed, 1 otherwise.
 *
 *     CHECK(cond, fmt, ...)        description printf-formatted
 *     CHECK_STR(got, want)         string equality (NULL allowed)
 *     CHECK_INT(got, want)         integer equality, as long long
 *     unit_store_path(dir, path, n) a new directory (dir: a mkdtemp template)
 *                                  and DIR/fapiaofs.db in path
 *     unit_remove_tree(dir)        a test's directory and everything in it
 *
 * Header-only with static state: include it from exactly one file.
 */
#ifndef FAPIAO_UNIT_H
#define FAPIAO_UNIT_H

#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int unit_checks;
static int unit_failed;

/* Descriptions must stay on one line for the runner: newlines become spaces. */
static inline void unit_print_line(const char *s)
{
    for (; *s; s++)
        putchar(*s == '\n' || *s == '\r' ? ' ' : *s);
}

__attribute__((format(printf, 5, 6)))
static inline bool unit_report(bool pass, const char *file, int line,
                               const char *detail, const char *fmt, ...)
{
    char desc[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);

    unit_checks++;
    if (!pass)
        unit_failed++;
    fputs(pass ? "ok - " : "not ok - ", stdout);
    unit_print_line(desc);
    if (!pass) {
        printf(" (%s:%d", file, line);
        if (detail && *detail) {
            fputs(": ", stdout);
            unit_print_line(detail);
        }
        putchar(')');
    }
    putchar('\n');
    fflush(stdout);
    return pass;
}

/* CHECK(cond, "desc %d", x): cond is evaluated once. */
#define CHECK(cond, ...) \
    unit_report((cond) ? true : false, __FILE__, __LINE__, "", __VA_ARGS__)

static inline bool unit_check_str(const char *got, const char *want,
                                  const char *expr, const char *file, int line)
{
    bool pass = (got == NULL && want == NULL) ||
                (got != NULL && want != NULL && strcmp(got, want) == 0);
    char detail[1024];
    snprintf(detail, sizeof detail, "got %s%s%s, want %s%s%s",
             got ? "\"" : "", got ? got : "NULL", got ? "\"" : "",
             want ? "\"" : "", want ? want : "NULL", want ? "\"" : "");
    return unit_report(pass, file, line, detail, "%s is %s%s%s", expr,
                       want ? "\"" : "", want ? want : "NULL",
                       want ? "\"" : "");
}

#define CHECK_STR(got, want) \
    unit_check_str((got), (want), #got, __FILE__, __LINE__)

static inline bool unit_check_int(long long got, long long want,
                                  const char *expr, const char *file, int line)
{
    char detail[128];
    snprintf(detail, sizeof detail, "got %lld, want %lld", got, want);
    return unit_report(got == want, file, line, detail, "%s is %lld", expr,
                       want);
}

#define CHECK_INT(got, want) \
    unit_check_int((long long)(got), (long long)(want), #got, __FILE__, __LINE__)

/* A store file for a test, in a directory of its own under /tmp. */
static inline bool unit_store_path(char *dir, char *path, size_t len)
{
    if (!mkdtemp(dir))
        return false;
    snprintf(path, len, "%s/fapiaofs.db", dir);
    return true;
}

static inline int unit_remove_entry(const char *path, const struct stat *sb, int flag,
                                    struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Depth first, without following symbolic links out of the directory. */
static inline void unit_remove_tree(const char *dir)
{
    nftw(dir, unit_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Summary line and exit status for main(). */
static inline int unit_done(void)
{
    printf("# %d checks, %d failed\n", unit_checks, unit_failed);
    return unit_failed ? 1 : 0;
}

#endif
