/*
 * platform_auth.h — request signatures of SPEC §6, shared by the client
 * (engine/platform.c) and the platform simulator (platform/sim.c):
 *
 *   X-Signature = base64(HMAC-SHA256(app_secret,
 *                   method "\n" path "\n" timestamp "\n" nonce "\n" body))
 */
#ifndef FAPIAO_PLATFORM_AUTH_H
#define FAPIAO_PLATFORM_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define PLATFORM_SIG_MAX 64   /* base64 of 32 bytes is 44 characters */

/* Writes the base64 signature into out; 0 on success. */
int platform_sign(const char *secret, const char *method, const char *path,
                  const char *timestamp, const char *nonce,
                  const void *body, size_t body_len, char out[PLATFORM_SIG_MAX]);

/* Constant-time check of a received signature. */
bool platform_verify(const char *secret, const char *method, const char *path,
                     const char *timestamp, const char *nonce,
                     const void *body, size_t body_len, const char *signature);

#endif
