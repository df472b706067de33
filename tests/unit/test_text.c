/*
 * test_text.c — engine/text.c: decoding drafts (UTF-8 with and without BOM,
 * GB18030/GBK, the rejections of SPEC §2.1 and §3.2) and GBK byte lengths
 * (SPEC §3.1), including from several threads at once.
 */
#include <iconv.h>
#include <pthread.h>
#include <stdlib.h>
#include "engine/text.h"
#include "tests/unit/unit.h"

/* Bytes of a string literal, without its NUL. */
#define B(lit) (lit), (sizeof(lit) - 1)

/* Decodes and expects FA_OK with exactly want_len bytes of want. */
static void check_ok(const char *label, const char *in, size_t len, const char *want, size_t want_len)
{
    char *out = (char *)"untouched";
    size_t out_len = 12345;
    char why[256] = "";
    enum fa_err rc = text_to_utf8(in, len, &out, &out_len, why, sizeof why);
    bool same = rc == FA_OK && out && out_len == want_len && memcmp(out, want, want_len) == 0 &&
                out[out_len] == '\0';
    CHECK(same, "%s: decodes to %zu bytes (rc %d, got %zu bytes%s%s)", label, want_len, (int)rc,
          rc == FA_OK ? out_len : 0, *why ? ", why: " : "", why);
    if (rc == FA_OK)
        free(out);
}

/* Decodes and expects FA_REJECTED, *out NULL and a reason holding each of
 * the (up to three) fragments. */
static void check_rejected(const char *label, const char *in, size_t len,
                           const char *frag1, const char *frag2, const char *frag3)
{
    char *out = (char *)"untouched";
    size_t out_len = 12345;
    char why[256] = "";
    enum fa_err rc = text_to_utf8(in, len, &out, &out_len, why, sizeof why);
    CHECK(rc == FA_REJECTED && out == NULL, "%s: rejected (rc %d)", label, (int)rc);
    const char *frags[] = { "(document): ", frag1, frag2, frag3 };
    for (size_t i = 0; i < sizeof frags / sizeof frags[0]; i++)
        if (frags[i])
            CHECK(strstr(why, frags[i]) != NULL, "%s: reason mentions \"%s\" (why: %s)",
                  label, frags[i], why);
    if (rc == FA_OK)
        free(out);
}

/* ---- UTF-8 ---------------------------------------------------------------- */

static void test_utf8(void)
{
    check_ok("ASCII", B("{\"a\": 1}"), B("{\"a\": 1}"));
    check_ok("UTF-8 with CRLF kept", B("{\r\n\"drawer\": \"张三\"\r\n}\r\n"),
             B("{\r\n\"drawer\": \"张三\"\r\n}\r\n"));
    check_ok("UTF-8 BOM stripped", B("\xEF\xBB\xBF{\"drawer\": \"张三\"}"), B("{\"drawer\": \"张三\"}"));
    check_ok("BOM only", B("\xEF\xBB\xBF"), B(""));
    check_ok("empty", NULL, 0, B(""));
    /* Only the leading BOM is stripped; a later U+FEFF is text (JSON then
     * rejects it as it would any stray character). */
    check_ok("second BOM kept", B("\xEF\xBB\xBF\xEF\xBB\xBF{}"), B("\xEF\xBB\xBF{}"));
    /* Boundaries of strict UTF-8 that are valid: U+0080, U+07FF, U+0800,
     * U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF. */
    check_ok("UTF-8 boundaries",
             B("\xEF\xBB\xBF\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF"
               "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"),
             B("\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF"
               "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"));
    check_ok("emoji is UTF-8", B("\xF0\x9F\x98\x80"), B("\xF0\x9F\x98\x80"));

    /* Behind a BOM there is no GB18030 fallback, so these show what strict
     * UTF-8 refuses, with the offset counted in the file (BOM included). */
    check_rejected("BOM + overlong C0 AF", B("\xEF\xBB\xBF{\xC0\xAF}"),
                   "byte order mark but is not UTF-8", "invalid byte 0xC0 at offset 4", NULL);
    check_rejected("BOM + overlong E0 80 AF", B("\xEF\xBB\xBF\xE0\x80\xAF"),
                   "invalid byte 0xE0 at offset 3", NULL, NULL);
    check_rejected("BOM + overlong F0 8F BF BF", B("\xEF\xBB\xBF\xF0\x8F\xBF\xBF"),
                   "invalid byte 0xF0 at offset 3", NULL, NULL);
    check_rejected("BOM + surrogate ED A0 80", B("\xEF\xBB\xBF\xED\xA0\x80"),
                   "invalid byte 0xED at offset 3", NULL, NULL);
    check_rejected("BOM + U+110000", B("\xEF\xBB\xBF\xF4\x90\x80\x80"),
                   "invalid byte 0xF4 at offset 3", NULL, NULL);
    check_rejected("BOM + F5", B("\xEF\xBB\xBF\xF5\x80\x80\x80"),
                   "invalid byte 0xF5 at offset 3", NULL, NULL);
    check_rejected("BOM + stray continuation", B("\xEF\xBB\xBF" "ab\x80"),
                   "invalid byte 0x80 at offset 5", NULL, NULL);
    check_rejected("BOM + cut sequence", B("\xEF\xBB\xBF" "ab\xE5\xBC"),
                   "incomplete sequence at the end, offset 5", "save the draft as UTF-8", NULL);
}

/* ---- GB18030 -------------------------------------------------------------- */

/* text in UTF-8 -> bytes in `to`, through iconv, for building test input. */
static char *encode(const char *utf8, const char *to, size_t *len)
{
    iconv_t cd = iconv_open(to, "UTF-8");
    if (cd == (iconv_t)-1)
        return NULL;
    size_t inleft = strlen(utf8), cap = inleft * 2 + 8, outleft = cap;
    char *buf = malloc(cap), *inp = (char *)utf8, *outp = buf;
    if (buf && iconv(cd, &inp, &inleft, &outp, &outleft) == (size_t)-1) {
        free(buf);
        buf = NULL;
    }
    iconv_close(cd);
    *len = cap - outleft;
    return buf;
}

static void test_gb18030(void)
{
    /* 张三 is D5 C5 C8 FD in GBK. */
    check_ok("GBK 张三", B("{\"drawer\": \"\xD5\xC5\xC8\xFD\"}\r\n"), B("{\"drawer\": \"张三\"}\r\n"));

    const char *draft = "{\"buyer\": {\"name\": \"上海示例科技有限公司\"}, \"remark\": \"合同号 HT-001\"}";
    size_t len = 0;
    char *gbk = encode(draft, "GBK", &len);
    CHECK(gbk != NULL, "iconv encodes the test draft to GBK");
    if (gbk) {
        check_ok("GBK draft from iconv", gbk, len, draft, strlen(draft));
        free(gbk);
    }
    /* Four-byte GB18030 sequences reach beyond GBK: 95 32 82 36 is U+20000. */
    check_ok("GB18030 four-byte 𠀀", B("\"\x95\x32\x82\x36\""), B("\"\xF0\xA0\x80\x80\""));

    /* Overlong C0 AF is not UTF-8, but C0 AF is a GBK character (U+8721 蜡),
     * so without a BOM the draft is read as GB18030 and accepted.  That is
     * the price of accepting GBK at all: GB18030 gives a meaning to most
     * byte pairs.  JSON parsing or field checks then see an unexpected
     * character, not an encoding error. */
    check_ok("overlong C0 AF read as GB18030", B("\"\xC0\xAF\""), B("\"\xE8\x9C\xA1\""));

    /* A large GBK draft: 512 Ki × 张 is 1 MiB in, 1.5 MiB out. */
    size_t n = (size_t)1024 * 1024;
    char *big = malloc(n);
    char *want = malloc(n / 2 * 3);
    CHECK(big && want, "allocate 1 MiB test draft");
    if (big && want) {
        for (size_t i = 0; i < n / 2; i++) {
            memcpy(big + 2 * i, "\xD5\xC5", 2);
            memcpy(want + 3 * i, "张", 3);
        }
        check_ok("1 MiB GBK draft", big, n, want, n / 2 * 3);
    }
    free(big);
    free(want);
}

/* ---- rejections ----------------------------------------------------------- */

static void test_rejected(void)
{
    /* 上海 in UTF-8, then a Latin-1 é: also "valid" GB18030 (E4 B8 | 8A E6 | B5 B7 | E9 22),
     * which would issue nonsense; UTF-8 text before the bad byte settles it. */
    check_rejected("mixed encodings", B("{\"remark\": \"\xE4\xB8\x8A\xE6\xB5\xB7" "caf\xE9\"}"),
                   "not UTF-8 (invalid byte 0xE9 at offset 21)", "mixes encodings",
                   "save the draft as UTF-8");
    /* 17 bytes of ASCII, then C3 and a space: bad in both encodings. */
    check_rejected("invalid in both", B("{\"drawer\": \"Bob X\xC3 \"}"),
                   "not UTF-8 (invalid byte 0xC3 at offset 17)",
                   "not GB18030 (invalid sequence at offset 17)",
                   "save the draft as UTF-8 or GB18030");
    /* 张 in UTF-8, then FF: UTF-8 fails at FF (3), GB18030 pairs E5 BC and
     * then fails at A0 FF (2). */
    check_rejected("different offsets", B("\xE5\xBC\xA0\xFF"),
                   "invalid byte 0xFF at offset 3", "invalid sequence at offset 2", NULL);
    check_rejected("cut at the end in both", B("ab\xC3"),
                   "not UTF-8 (incomplete sequence at the end, offset 2)",
                   "not GB18030 (incomplete sequence at the end, offset 2)", NULL);
    check_rejected("single 0x80", B("\x80"),
                   "invalid byte 0x80 at offset 0", "invalid sequence at offset 0", NULL);
    check_rejected("surrogate ED A0 80", B("\xED\xA0\x80"),
                   "invalid byte 0xED at offset 0", "not GB18030", NULL);

    check_rejected("NUL byte", B("{\"a\"\0: 1}"), "NUL byte at offset 4", "a JSON text has none", NULL);
    check_rejected("NUL after a UTF-8 BOM", B("\xEF\xBB\xBF{}\0"), "NUL byte at offset 5", NULL, NULL);
    check_rejected("UTF-16LE BOM", B("\xFF\xFE{\0}\0"),
                   "UTF-16 byte order mark", "UTF-16 is not accepted", NULL);
    check_rejected("UTF-16BE BOM", B("\xFE\xFF\0{\0}"), "UTF-16 byte order mark", NULL, NULL);
    check_rejected("UTF-16LE without BOM", B("{\0}\0"), "NUL byte at offset 1", "UTF-16", NULL);

    /* why may be absent or short: still rejected, never overrun. */
    char *out = NULL;
    size_t out_len = 0;
    CHECK(text_to_utf8(B("\x80"), &out, &out_len, NULL, 0) == FA_REJECTED && !out, "why NULL");
    char tiny[8];
    memset(tiny, 'x', sizeof tiny);
    enum fa_err rc = text_to_utf8(B("\x80"), &out, &out_len, tiny, sizeof tiny);
    CHECK(rc == FA_REJECTED && tiny[7] == '\0' && strcmp(tiny, "(docume") == 0,
          "short why truncated: %.8s", tiny);
}

/* ---- GBK lengths ---------------------------------------------------------- */

static void test_gbk_len(void)
{
    CHECK_INT(text_gbk_len(""), 0);
    CHECK_INT(text_gbk_len("abc"), 3);
    CHECK_INT(text_gbk_len("张三"), 4);
    CHECK_INT(text_gbk_len("上海示例科技有限公司"), 20);
    CHECK_INT(text_gbk_len("合同号 HT-001"), 13);
    CHECK_INT(text_gbk_len("上海市浦东新区示例路1号 021-12345678"), 36);
    CHECK_INT(text_gbk_len("（负数）·"), 10);
    CHECK_INT(text_gbk_len("\xF0\x9F\x98\x80"), -1);            /* 😀 */
    CHECK_INT(text_gbk_len("abc\xF0\x9F\x98\x80"), -1);
    CHECK_INT(text_gbk_len("\xF0\xA0\x80\x80"), -1);            /* 𠀀 U+20000 */
    CHECK_INT(text_gbk_len("张\xE4\xB8"), -1);                  /* cut UTF-8 */
    CHECK_INT(text_gbk_len("张\xC3("), -1);                     /* invalid UTF-8 */
    /* After the failures above the converter is reset, not left mid-way. */
    CHECK_INT(text_gbk_len("张三"), 4);
    /* More output than one internal chunk of 256 bytes. */
    char many[3 * 300 + 2];
    for (int i = 0; i < 300; i++)
        memcpy(many + 3 * i, "张", 3);
    memcpy(many + 900, "a", 2);
    CHECK_INT(text_gbk_len(many), 601);
}

/* Where a message may be shortened: never inside a character. */
static void test_utf8_cut(void)
{
    CHECK_INT(text_utf8_cut("", 5), 0);
    CHECK_INT(text_utf8_cut("abc", 5), 3);
    CHECK_INT(text_utf8_cut("abc", 3), 3);
    CHECK_INT(text_utf8_cut("abcd", 3), 3);
    CHECK_INT(text_utf8_cut("ab张三", 4), 2);   /* 张 is bytes 2..4: not half of it */
    CHECK_INT(text_utf8_cut("ab张三", 5), 5);
    CHECK_INT(text_utf8_cut("ab张三", 7), 5);
    CHECK_INT(text_utf8_cut("ab张三", 8), 8);
    CHECK_INT(text_utf8_cut("\xF0\x9F\x98\x80x", 3), 0);   /* 😀 */
    CHECK_INT(text_utf8_cut("a", 0), 0);
}

/* Several threads, each with its own converter, must agree. */
static void *gbk_worker(void *arg)
{
    (void)arg;
    long bad = 0;
    for (int i = 0; i < 2000; i++) {
        bad += text_gbk_len("上海示例科技有限公司") != 20;
        bad += text_gbk_len("\xF0\x9F\x98\x80") != -1;
        bad += text_gbk_len("合同号 HT-001") != 13;
    }
    return (void *)bad;
}

static void test_gbk_threads(void)
{
    enum { N = 4 };
    pthread_t t[N];
    long bad = 0;
    int started = 0;
    for (int i = 0; i < N; i++)
        if (pthread_create(&t[i], NULL, gbk_worker, NULL) == 0)
            started++;
    for (int i = 0; i < started; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        bad += (long)r;
    }
    CHECK(started == N && bad == 0, "%d threads × 6000 lengths agree (%d started, %ld wrong)",
          N, started, bad);
}

int main(void)
{
    test_utf8();
    test_gb18030();
    test_rejected();
    test_gbk_len();
    test_gbk_threads();
    test_utf8_cut();
    return unit_done();
}
