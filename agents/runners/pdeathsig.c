/* hive-pdeathsig [--user=UID:GID:GROUPS] PARENT PROGRAM [ARG...]: exec PROGRAM (a path) with
 * SIGKILL as its parent-death signal, the way `setpriv --pdeathsig KILL` does, for a fraction of
 * its cost (static, no locale, no libcap-ng: one exec less to pay per attempt). PARENT is the pid
 * of the worker starting it: if that process is already gone when the signal is set, it can never
 * come, so this ends as SIGKILL would have ended the program.
 *
 * --user switches to UID and GID with the supplementary GROUPS (comma-separated gids, possibly
 * none) first, as `setpriv --reuid --regid --init-groups` does, and like setpriv keeps the
 * capabilities it had until the exec: the exec itself may reach a program through directories the
 * user cannot pass (an interpreter under /root, say), and the program then runs with none. A
 * change of credentials clears the parent-death signal, so it is set after. setpriv does not look at its parent afterwards, so a
 * worker killed between starting it and its prctl left a contained program running; here the
 * PARENT check covers contained programs too.
 *
 * Built by `make install` (agents/runners/process.py falls back to setpriv without it). */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char USER_OPTION[] = "--user=";

static int fail(const char *what) {
    fprintf(stderr, "hive-pdeathsig: %s\n", what);
    return 127;
}

static int parse_id(const char **cursor, long *out) {
    char *end = NULL;
    errno = 0;
    long value = strtol(*cursor, &end, 10);
    if (end == *cursor || errno != 0 || value < 0 || value > 0x7fffffffL) return -1;
    *cursor = end;
    *out = value;
    return 0;
}

/* UID:GID:G1,G2,... -> the process's credentials; 0 when switched, else a message on stderr. */
static int switch_user(const char *spec) {
    const char *p = spec;
    long uid, gid;
    if (parse_id(&p, &uid) != 0 || *p++ != ':' || parse_id(&p, &gid) != 0 || *p++ != ':')
        return fail("--user must be UID:GID:GROUPS");
    size_t count = 0, capacity = 1;
    for (const char *c = p; *c; c++) capacity += (*c == ',');
    gid_t *groups = calloc(capacity, sizeof(gid_t));
    if (groups == NULL) return fail("out of memory");
    while (*p) {
        long group;
        if (parse_id(&p, &group) != 0 || (*p != ',' && *p != '\0')) return fail("--user must be UID:GID:GROUPS");
        groups[count++] = (gid_t)group;
        if (*p == ',') p++;
    }
    /* Keep the permitted capabilities through setresuid, then make them effective again: the
     * kernel drops them all at the exec, as a non-root uid execs a file without capabilities. */
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 || setgroups(count, groups) != 0 ||
        setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) != 0 || setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0 ||
        syscall(SYS_capget, &header, caps) != 0) {
        fprintf(stderr, "hive-pdeathsig: cannot switch to uid %ld gid %ld: %s\n", uid, gid, strerror(errno));
        return 127;
    }
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) caps[i].effective = caps[i].permitted;
    if (syscall(SYS_capset, &header, caps) != 0 || prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0) {
        fprintf(stderr, "hive-pdeathsig: capabilities: %s\n", strerror(errno));
        return 127;
    }
    free(groups);
    return 0;
}

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strncmp(argv[1], USER_OPTION, sizeof(USER_OPTION) - 1) == 0) {
        if (switch_user(argv[1] + sizeof(USER_OPTION) - 1) != 0) return 127;
        first = 2;
    }
    if (argc < first + 2) return fail("usage: hive-pdeathsig [--user=UID:GID:GROUPS] PARENT PROGRAM [ARG...]");
    char *end = NULL;
    long parent = strtol(argv[first], &end, 10);
    if (end == argv[first] || *end != '\0' || parent <= 0) return fail("PARENT must be a pid");
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        fprintf(stderr, "hive-pdeathsig: prctl: %s\n", strerror(errno));
        return 127;
    }
    if ((long)getppid() != parent) { /* the worker died before the signal was set */
        raise(SIGKILL);
    }
    execv(argv[first + 1], argv + first + 1);
    fprintf(stderr, "hive-pdeathsig: %s: %s\n", argv[first + 1], strerror(errno));
    return 127;
}
