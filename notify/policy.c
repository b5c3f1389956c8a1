#include "policy.h"

#include <netinet/in.h>
#include <string.h>

#include "util.h"

enum kd_err
kd_notify_signature(const char *secret, int64_t unix_s, const char *body, size_t body_len,
                    char *out, size_t out_len)
{
    struct kd_buf msg;
    char mac[65];
    enum kd_err rc;

    /* The timestamp is signed with the body so that a captured request
     * cannot be replayed later with a fresh t (receivers check its age). */
    kd_buf_init(&msg, SIZE_MAX);
    if ((rc = kd_buf_printf(&msg, "%lld.", (long long)unix_s)) != KD_OK ||
        (rc = kd_buf_append(&msg, body, body_len)) != KD_OK)
        goto out;
    if ((rc = kd_hmac_sha256_hex(secret, strlen(secret), msg.data, msg.len, mac)) != KD_OK)
        goto out;
    rc = kd_snprintf(out, out_len, "t=%lld,v1=%s", (long long)unix_s, mac);
out:
    kd_buf_clear(&msg);
    return rc;
}

int64_t
kd_notify_backoff_ms(int attempt, int64_t base_ms, double jitter)
{
    static const int steps[] = {1, 3, 6, 12, 30, 60, 120, 180};
    size_t i = attempt < 1 ? 0 : (size_t)attempt - 1;
    int64_t d;

    if (i >= KD_ARRAY_LEN(steps))
        i = KD_ARRAY_LEN(steps) - 1;
    if (base_ms < 1)
        base_ms = 1;
    d = base_ms * steps[i];
    if (jitter < 0 || jitter >= 1)
        jitter = 0.5;
    d = (int64_t)((double)d * (0.8 + 0.4 * jitter));
    return d < 1 ? 1 : d;
}

bool
kd_notify_give_up(int64_t elapsed_ms, int64_t window_ms)
{
    return elapsed_ms >= window_ms;
}

/* a.b.c.d as a host-order number, and whether it lies in net/bits. */
static bool
in4(uint32_t a, uint32_t net, int bits)
{
    uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);

    return (a & mask) == (net & mask);
}

#define V4(a, b, c, d)                                                                             \
    (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

static bool
public4(uint32_t a)
{
    static const struct {
        uint32_t net;
        int bits;
    } blocked[] = {
        {V4(0, 0, 0, 0), 8},       /* "this network" */
        {V4(10, 0, 0, 0), 8},      /* RFC 1918 */
        {V4(100, 64, 0, 0), 10},   /* carrier-grade NAT */
        {V4(127, 0, 0, 0), 8},     /* loopback */
        {V4(169, 254, 0, 0), 16},  /* link-local: cloud metadata services live here */
        {V4(172, 16, 0, 0), 12},   /* RFC 1918 */
        {V4(192, 0, 0, 0), 24},    /* IETF protocol assignments */
        {V4(192, 0, 2, 0), 24},    /* documentation */
        {V4(192, 88, 99, 0), 24},  /* 6to4 relay */
        {V4(192, 168, 0, 0), 16},  /* RFC 1918 */
        {V4(198, 18, 0, 0), 15},   /* benchmarking */
        {V4(198, 51, 100, 0), 24}, /* documentation */
        {V4(203, 0, 113, 0), 24},  /* documentation */
        {V4(224, 0, 0, 0), 4},     /* multicast */
        {V4(240, 0, 0, 0), 4},     /* reserved, broadcast */
    };

    for (size_t i = 0; i < KD_ARRAY_LEN(blocked); i++)
        if (in4(a, blocked[i].net, blocked[i].bits))
            return false;
    return true;
}

static uint32_t
v4_at(const unsigned char *p)
{
    return V4(p[0], p[1], p[2], p[3]);
}

static bool
public6(const unsigned char *p)
{
    static const unsigned char zero[16] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

    if (memcmp(p, zero, 15) == 0 && (p[15] == 0 || p[15] == 1))
        return false; /* :: and ::1 */
    if (memcmp(p, mapped, 12) == 0 || memcmp(p, nat64, 12) == 0)
        return public4(v4_at(p + 12));
    if (memcmp(p, zero, 12) == 0)
        return false; /* IPv4-compatible (deprecated) */
    if ((p[0] & 0xfe) == 0xfc)
        return false; /* fc00::/7 unique local */
    if (p[0] == 0xfe && (p[1] & 0xc0) == 0x80)
        return false; /* fe80::/10 link-local */
    if (p[0] == 0xfe && (p[1] & 0xc0) == 0xc0)
        return false; /* fec0::/10 site-local (deprecated) */
    if (p[0] == 0xff)
        return false; /* multicast */
    if (p[0] == 0x20 && p[1] == 0x01 && p[2] == 0x0d && p[3] == 0xb8)
        return false; /* 2001:db8::/32 documentation */
    if (p[0] == 0x20 && p[1] == 0x02)
        return public4(v4_at(p + 2)); /* 6to4 carries an IPv4 address */
    return true;
}

bool
kd_notify_addr_public(const struct sockaddr *sa, size_t len)
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;

        return public4(ntohl(s4->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;

        return public6(s6->sin6_addr.s6_addr);
    }
    return false;
}
