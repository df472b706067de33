/* template.c — the benchmarks' draft template; see template.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/bench/template.h"

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (!fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET) &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = 0;
        } else {
            free(buf);
            buf = NULL;
            errno = EIO;
        }
    }
    fclose(f);
    return buf;
}

int template_load(const char *path, struct draft_template *t, char *why, size_t whylen)
{
    const char *p, *q;

    memset(t, 0, sizeof *t);
    t->text = read_all(path);
    if (!t->text) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    p = strstr(t->text, "\"request_id\"");
    if (p) {
        p += strlen("\"request_id\"");
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':')
            p++;
    }
    if (!p || *p != '"' || !(q = strchr(p + 1, '"'))) {
        snprintf(why, whylen, "%s: no \"request_id\": \"...\" member", path);
        template_free(t);
        return -1;
    }
    t->head = t->text;
    t->head_len = (size_t)(p + 1 - t->text);
    t->tail = q;
    t->tail_len = strlen(q);
    return 0;
}

void template_free(struct draft_template *t)
{
    free(t->text);
    memset(t, 0, sizeof *t);
}

size_t template_fill(const struct draft_template *t, const char *id, char *buf, size_t cap)
{
    size_t idlen = strlen(id), len = t->head_len + idlen + t->tail_len;
    if (len > cap)
        return 0;
    memcpy(buf, t->head, t->head_len);
    memcpy(buf + t->head_len, id, idlen);
    memcpy(buf + t->head_len + idlen, t->tail, t->tail_len);
    return len;
}
