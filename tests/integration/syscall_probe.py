"""Syscall probe, run inside the sandbox with the system python3 (stdlib only).

In the spirit of flatpak's try-syscall: each case calls one syscall with arguments that make
it fail harmlessly when it is allowed (a bad fd, a bad pointer at address 1, invalid flags)
and prints a JSON map of case -> errno (0 when the call succeeded). Syscall numbers come
from the host (libseccomp) as a JSON argument, so this file has no per-architecture table.
"""

import ctypes
import json
import os
import sys

BAD = 1  # an address that always faults
NOFD = -1
TIOCSTI, TIOCLINUX, TIOCGWINSZ = 0x5412, 0x541C, 0x5413
CLONE_NEWUSER, CLONE_THREAD = 0x10000000, 0x00010000
AF_UNIX, AF_INET, AF_NETLINK, AF_PACKET, AF_VSOCK = 1, 2, 16, 17, 40
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3
HIGH = 1 << 32

CASES = {
    # Denied by the filter (the test holds the expected errno for each).
    "syslog": ("syslog", 9999, 0, 0),
    "acct": ("acct", BAD),
    "quotactl": ("quotactl", 0, BAD, 0, BAD),
    "add_key": ("add_key", BAD, BAD, BAD, 0, 0),
    "keyctl": ("keyctl", 9999, 0, 0, 0, 0),
    "request_key": ("request_key", BAD, BAD, BAD, 0),
    "move_pages": ("move_pages", 0, 0, 0, 0, 0, 0),
    "mbind": ("mbind", 0, 0, 0, 0, 0, 0),
    "get_mempolicy": ("get_mempolicy", BAD, BAD, 1, 0, 0),
    "set_mempolicy": ("set_mempolicy", 9999, 0, 0),
    "migrate_pages": ("migrate_pages", 0, 0, BAD, BAD),
    "unshare": ("unshare", 0x1),
    "setns": ("setns", NOFD, 0),
    "mount": ("mount", BAD, BAD, BAD, 0, 0),
    "umount2": ("umount2", BAD, 0x80000000),
    "pivot_root": ("pivot_root", BAD, BAD),
    "chroot": ("chroot", BAD),
    "clone_newuser": ("clone", CLONE_NEWUSER | CLONE_THREAD, 0, 0, 0, 0),
    "ioctl_tiocsti": ("ioctl", NOFD, TIOCSTI, BAD),
    "ioctl_tiocsti_high_bits": ("ioctl", NOFD, HIGH | TIOCSTI, BAD),
    "ioctl_tioclinux": ("ioctl", NOFD, TIOCLINUX, BAD),
    "clone3": ("clone3", BAD, 88),
    "open_tree": ("open_tree", NOFD, BAD, 0),
    "move_mount": ("move_mount", NOFD, BAD, NOFD, BAD, 0),
    "fsopen": ("fsopen", BAD, 0),
    "fsconfig": ("fsconfig", NOFD, 0, 0, 0, 0),
    "fsmount": ("fsmount", NOFD, 0, 0),
    "fspick": ("fspick", NOFD, BAD, 0),
    "mount_setattr": ("mount_setattr", NOFD, BAD, 0, BAD, 0),
    "modify_ldt": ("modify_ldt", 9999, 0, 0),
    "perf_event_open": ("perf_event_open", BAD, 0, -1, -1, 0),
    "ptrace": ("ptrace", 16, -1, 0, 0),
    "personality_set": ("personality", 0x0400000),
    "personality_high_bits": ("personality", HIGH | 0x0400000),
    "socket_packet": ("socket", AF_PACKET, SOCK_RAW, 0),
    "socket_vsock": ("socket", AF_VSOCK, SOCK_STREAM, 0),
    "socket_high_bits_family": ("socket", HIGH | AF_UNIX, SOCK_STREAM, 0),
    "socket_raw_inet": ("socket", AF_INET, SOCK_RAW, 1),
    "socketpair_vsock": ("socketpair", AF_VSOCK, SOCK_STREAM, 0, BAD),
    "socketpair_packet": ("socketpair", AF_PACKET, SOCK_DGRAM, 0, BAD),
    "io_uring_setup": ("io_uring_setup", 1, BAD),
    "io_uring_enter": ("io_uring_enter", NOFD, 0, 0, 0, 0, 0),
    "io_uring_register": ("io_uring_register", NOFD, 0, 0, 0),
    "process_vm_readv": ("process_vm_readv", 0, BAD, 1, BAD, 1, 0),
    "process_vm_writev": ("process_vm_writev", 0, BAD, 1, BAD, 1, 0),
    "kcmp": ("kcmp", -1, -1, 0, 0, 0),
    "pidfd_getfd": ("pidfd_getfd", NOFD, NOFD, 0),
    "bpf": ("bpf", 9999, BAD, 0),
    "userfaultfd": ("userfaultfd", 1 | 0x40000000),
    "lookup_dcookie": ("lookup_dcookie", 0, BAD, 0),
    "open_by_handle_at": ("open_by_handle_at", NOFD, BAD, 0),
    "name_to_handle_at": ("name_to_handle_at", NOFD, BAD, BAD, BAD, 0),
    "init_module": ("init_module", BAD, 0, BAD),
    "finit_module": ("finit_module", NOFD, BAD, 0),
    "delete_module": ("delete_module", BAD, 0),
    "kexec_load": ("kexec_load", 0, 0, 0, 0),
    "kexec_file_load": ("kexec_file_load", NOFD, NOFD, 0, BAD, 0),
    "reboot": ("reboot", 0, 0, 0, 0),
    "swapon": ("swapon", BAD, 0),
    "swapoff": ("swapoff", BAD),
    "settimeofday": ("settimeofday", BAD, BAD),
    "clock_settime": ("clock_settime", 0, BAD),
    "clock_adjtime": ("clock_adjtime", 0, BAD),
    "adjtimex": ("adjtimex", BAD),
    "iopl": ("iopl", 4),
    "ioperm": ("ioperm", 0, 1, 1),
    # Allowed controls: they must fail (or succeed) as they do without any filter.
    "ok_prctl": ("prctl", 15, BAD),
    "ok_seccomp": ("seccomp", 1, 0, BAD),
    "ok_listen": ("listen", NOFD, 0),
    "ok_personality_query": ("personality", 0xFFFFFFFF),
    "ok_personality_linux": ("personality", 0),
    "ok_ioctl_tiocgwinsz": ("ioctl", NOFD, TIOCGWINSZ, BAD),
    "ok_socket_unix": ("socket", AF_UNIX, SOCK_STREAM, 0),
    "ok_socket_inet": ("socket", AF_INET, SOCK_DGRAM, 0),
    "ok_socket_netlink_raw": ("socket", AF_NETLINK, SOCK_RAW, 0),
    "ok_socketpair_unix": ("socketpair", AF_UNIX, SOCK_STREAM, 0, BAD),
    "ok_clone_invalid": ("clone", CLONE_THREAD, 0, 0, 0, 0),
}


def main() -> None:
    numbers = json.loads(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = {}
    for case, (name, *args) in CASES.items():
        if name not in numbers:
            continue  # not a syscall on this architecture
        ctypes.set_errno(0)
        ret = libc.syscall(ctypes.c_long(numbers[name]), *(ctypes.c_long(a) for a in args))
        if ret >= 0:
            if name == "socket":
                os.close(ret)
            result[case] = 0
        else:
            result[case] = ctypes.get_errno()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
