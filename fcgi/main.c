/* main.c: kadr-api, the FastCGI program behind nginx.
 *
 * spawn-fcgi starts several single-threaded copies that share the listening
 * socket on fd 0; each accepts one request at a time. SIGTERM (or SIGINT)
 * lets the request in hand finish, then the process exits. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "router.h"

static volatile sig_atomic_t stopping;

static void
on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

static void
usage(FILE *f)
{
    fputs("usage: kadr-api [--config PATH] [--check-config] [--help-config]\n"
          "  Runs under spawn-fcgi with the listening socket on fd 0.\n"
          "  --config PATH   configuration file (default: $KADR_CONFIG, then none)\n"
          "  --check-config  validate the configuration and exit (0 when valid)\n"
          "  --help-config   list every setting and exit\n",
          f);
}

/* Signals: SIGTERM and SIGINT only set a flag. They are installed without
 * SA_RESTART so that a blocked accept() returns at once (the request is
 * initialised with FCGI_FAIL_ACCEPT_ON_INTR), and they are blocked while a
 * request is served so that no write to nginx is cut short by EINTR. */
static int
install_signals(sigset_t *stop_set)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0 || sigaction(SIGHUP, &sa, NULL) != 0)
        return -1;
    sigemptyset(stop_set);
    sigaddset(stop_set, SIGTERM);
    sigaddset(stop_set, SIGINT);
    return 0;
}

static int
serve(struct kd_app *app)
{
    FCGX_Request req;
    sigset_t stop_set;
    int status = EXIT_SUCCESS;

    if (FCGX_Init() != 0) {
        kd_log(KD_LOG_ERROR, "FCGX_Init failed");
        return EXIT_FAILURE;
    }
    if (FCGX_IsCGI()) {
        kd_log(KD_LOG_ERROR, "fd 0 is not a listening socket: run kadr-api under spawn-fcgi");
        return EXIT_FAILURE;
    }
    /* After FCGX_Init, which installs its own SIGPIPE handler. */
    if (install_signals(&stop_set) != 0) {
        kd_log_errno(KD_LOG_ERROR, errno, "sigaction");
        return EXIT_FAILURE;
    }
    if (FCGX_InitRequest(&req, 0, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
        kd_log(KD_LOG_ERROR, "FCGX_InitRequest failed");
        return EXIT_FAILURE;
    }
    sigprocmask(SIG_BLOCK, &stop_set, NULL);
    kd_log(KD_LOG_INFO, "kadr-api ready");
    while (!stopping) {
        int arc, err;

        /* A signal that came during the last request is delivered here. */
        sigprocmask(SIG_UNBLOCK, &stop_set, NULL);
        if (stopping) {
            sigprocmask(SIG_BLOCK, &stop_set, NULL);
            break;
        }
        arc = FCGX_Accept_r(&req);
        err = errno;
        sigprocmask(SIG_BLOCK, &stop_set, NULL);
        if (arc < 0) {
            if (stopping)
                break;
            if (err == EINTR)
                continue;
            /* Not a signal: the socket itself is broken. spawn-fcgi's
             * supervisor (systemd) restarts us; spinning here would not help. */
            kd_log_errno(KD_LOG_ERROR, err, "FCGX_Accept_r failed");
            status = EXIT_FAILURE;
            break;
        }
        kd_router_serve(app, &req);
        FCGX_Finish_r(&req);
    }
    FCGX_Free(&req, 1);
    kd_log(KD_LOG_INFO, "kadr-api stopping");
    return status;
}

int
main(int argc, char **argv)
{
    struct kd_config *cfg = NULL;
    struct kd_app app = {0};
    const char *config_path = NULL;
    bool check_only = false;
    char errbuf[512];
    int i, level, status = EXIT_FAILURE;

    kd_log_init("kadr-api", KD_LOG_INFO);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_only = true;
        } else if (strcmp(argv[i], "--help-config") == 0) {
            kd_config_help(stdout);
            status = EXIT_SUCCESS;
            goto out;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            status = EXIT_SUCCESS;
            goto out;
        } else {
            usage(stderr);
            status = 2;
            goto out;
        }
    }
    /* kd_config_load falls back to $KADR_CONFIG itself when path is NULL. */
    if (kd_config_load(config_path, &cfg, errbuf, sizeof(errbuf)) != KD_OK) {
        if (check_only)
            fprintf(stderr, "kadr-api: invalid configuration: %s\n", errbuf);
        else
            kd_log(KD_LOG_ERROR, "invalid configuration: %s", errbuf);
        goto out;
    }
    /* Presigned URLs of the local backend are signed and checked with it:
     * without it every upload would fail later, one 500 at a time. */
    if (strcmp(cfg->storage_backend, "local") == 0 && cfg->url_signing_secret[0] == '\0') {
        snprintf(errbuf, sizeof(errbuf),
                 "url_signing_secret is required with the local storage backend "
                 "(url_signing_secret_file = PATH, or KADR_URL_SIGNING_SECRET_FILE)");
        if (check_only)
            fprintf(stderr, "kadr-api: invalid configuration: %s\n", errbuf);
        else
            kd_log(KD_LOG_ERROR, "invalid configuration: %s", errbuf);
        goto out;
    }
    if (check_only) {
        printf("kadr-api: configuration is valid\n");
        status = EXIT_SUCCESS;
        goto out;
    }
    level = kd_log_level_parse(cfg->log_level);
    kd_log_init("kadr-api", level >= 0 ? (enum kd_log_level)level : KD_LOG_INFO);
    app.cfg = cfg;
    status = serve(&app);
out:
    kd_app_clear(&app);
    kd_config_free(cfg);
    return status;
}
