/*
 * template.h — the draft template of the benchmarks: a draft file (by
 * default examples/basic.json) split around the value of its request_id, so
 * that each draft gets its own request_id without parsing JSON per draft.
 */
#ifndef FAPIAO_BENCH_TEMPLATE_H
#define FAPIAO_BENCH_TEMPLATE_H

#include <stddef.h>

struct draft_template {
    char *text;                 /* the whole file, malloc'd */
    const char *head, *tail;    /* before and after the request_id value */
    size_t head_len, tail_len;
};

/* 0, or -1 with the reason in why (the file, or no "request_id": "..." member). */
int template_load(const char *path, struct draft_template *t, char *why, size_t whylen);
void template_free(struct draft_template *t);
/* The draft with request_id `id` into buf (cap bytes); its length, or 0 if it does not fit. */
size_t template_fill(const struct draft_template *t, const char *id, char *buf, size_t cap);

#endif
