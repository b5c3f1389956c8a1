/* policy.h: the pure decisions of kadr-notify: the signature header, the
 * retry schedule and which addresses a webhook may reach. No I/O here, so
 * the unit tests cover them exactly (tests/unit/notify_test.c). */
#ifndef KD_NOTIFY_POLICY_H
#define KD_NOTIFY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "err.h"

/* "t=<unix_s>,v1=<hex HMAC-SHA256(secret, "<unix_s>." + body)>" into out.
 * KD_ELIMIT when out is too small (128 bytes always suffice). */
KD_MUST_CHECK enum kd_err kd_notify_signature(const char *secret, int64_t unix_s, const char *body,
                                              size_t body_len, char *out, size_t out_len);

/* The delay before the try after failed try number attempt (1 = the first
 * try failed): base_ms times 1, 3, 6, 12, 30, 60, 120, 180, 180, ... (with
 * the default base of 10 s: 10 s, 30 s, 1 min, 2 min, 5 min, 10 min, 20 min,
 * 30 min), spread by jitter in [0, 1) over 80..120 % so that receivers
 * coming back from an outage are not hit by every retry at once. */
int64_t kd_notify_backoff_ms(int attempt, int64_t base_ms, double jitter);

/* Whether a delivery that failed try number attempt is given up: only once
 * retrying has gone on for window_ms since the first try (elapsed_ms), so a
 * webhook is retried at least that long whatever the schedule. */
bool kd_notify_give_up(int64_t elapsed_ms, int64_t window_ms);

/* Whether a connection to this address may be opened when private
 * addresses are not allowed: false for loopback, private (RFC 1918, ULA),
 * link-local, carrier-grade NAT, unspecified, multicast, reserved and
 * benchmark ranges, and IPv4-mapped or NAT64 forms of them. Anything but
 * IPv4 and IPv6 is refused. */
bool kd_notify_addr_public(const struct sockaddr *sa, size_t len);

#endif
