/* sandbox.h: the system-call filter of a job's child process.
 *
 * The child decodes untrusted media with libav; a bug there must not turn
 * into a shell, a network client or a foothold on the machine. After its
 * rlimits (child.c), the child installs a seccomp filter (libseccomp) that
 * refuses what decoding and encoding never need:
 *
 * - sockets: none at all with local storage; with S3 storage only the
 *   Internet families (and netlink, which the resolver reads), since the
 *   child itself reads its inputs from and writes its outputs to S3;
 * - running programs (execve, execveat), except in sanitizer builds, where
 *   the sanitizers run their symbolizer;
 * - tracing or reading other processes (ptrace, process_vm_*), except in
 *   sanitizer builds (LeakSanitizer stops threads with ptrace);
 * - new namespaces (unshare, setns, clone with a CLONE_NEW* flag; clone3,
 *   whose flags a filter cannot read, answers ENOSYS so that the C library
 *   falls back to clone);
 * - io_uring, which would run network and file operations outside the
 *   filter's view;
 * - the administrator's calls (mount, modules, reboot, kexec, swap, bpf,
 *   perf_event_open, keyrings, userfaultfd, ...), which a process without
 *   privileges is refused anyway: refusing them here also closes the
 *   kernel's attack surface behind them.
 *
 * A refused call fails with EACCES or EPERM (ENOSYS for clone3) rather than
 * killing the child, so that the job fails with a clear error through the
 * normal paths. Calls from another architecture's ABI kill the process. */
#ifndef KD_WORKER_SANDBOX_H
#define KD_WORKER_SANDBOX_H

#include <stdbool.h>

/* Installs the filter on the calling process (and its future threads);
 * inet allows Internet sockets. Returns 0, or an errno value. */
int kd_sandbox_apply(bool inet);

#endif
