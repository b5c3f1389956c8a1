#include "sandbox.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <sys/socket.h>

/* Sanitizer builds need ptrace (LeakSanitizer) and exec (the symbolizer). */
#if defined(__SANITIZE_ADDRESS__)
#define KD_SANDBOX_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KD_SANDBOX_SANITIZED 1
#endif
#endif

/* Calls no decoder or encoder makes: refused with EPERM. Names, not
 * numbers, so that a call this architecture lacks is skipped. */
static const char *const refused[] = {
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "swapon",
    "swapoff",
    "reboot",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "unshare",
    "setns",
    "acct",
    "quotactl",
    "syslog",
    "iopl",
    "ioperm",
    "open_by_handle_at",
    "name_to_handle_at",
    "fanotify_init",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "lookup_dcookie",
    "vhangup",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
#ifndef KD_SANDBOX_SANITIZED
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "execve",
    "execveat",
#endif
};

/* The namespace flags of clone(2): a child with one of them could set up
 * a world of its own. */
static const unsigned long clone_ns_flags[] = {
    CLONE_NEWNS,  CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET,
    CLONE_NEWIPC, CLONE_NEWUTS,  CLONE_NEWCGROUP,
};

/* Refuses socket(domain, ...) for every domain but the allowed ones. One
 * rule per refused domain: a rule's comparisons cannot say "none of". */
static int
limit_sockets(scmp_filter_ctx ctx, bool inet)
{
    int rc;

    for (int domain = 0; domain < AF_MAX; domain++) {
        if (inet && (domain == AF_INET || domain == AF_INET6 || domain == AF_NETLINK))
            continue;
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1,
                              SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)domain));
        if (rc != 0)
            return rc;
    }
    /* A domain past AF_MAX (a kernel newer than these headers). */
    return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1,
                            SCMP_A0(SCMP_CMP_GE, (scmp_datum_t)AF_MAX));
}

int
kd_sandbox_apply(bool inet)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int rc = 0;

    if (ctx == NULL)
        return ENOMEM;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        int nr = seccomp_syscall_resolve_name(refused[i]);

        if (nr == __NR_SCMP_ERROR)
            continue;
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) != 0)
            goto out;
    }
    for (size_t i = 0; i < sizeof(clone_ns_flags) / sizeof(clone_ns_flags[0]); i++) {
        scmp_datum_t f = (scmp_datum_t)clone_ns_flags[i];

        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                   SCMP_A0(SCMP_CMP_MASKED_EQ, f, f))) != 0)
            goto out;
    }
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) != 0)
        goto out;
    if ((rc = limit_sockets(ctx, inet)) != 0)
        goto out;
    rc = seccomp_load(ctx);
out:
    seccomp_release(ctx);
    /* libseccomp returns negative errno values. */
    return rc < 0 ? -rc : rc;
}
