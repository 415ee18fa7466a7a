/* hive-pdeathsig PARENT PROGRAM [ARG...]: exec PROGRAM (a path) with SIGKILL as its parent-death
 * signal, the way `setpriv --pdeathsig KILL` does, for a fraction of its cost (static, no locale,
 * no libcap-ng: one exec less to pay per attempt). PARENT is the pid of the worker starting it: if
 * that process is already gone when the signal is set, it can never come, so this ends as
 * SIGKILL would have ended the program. Built by `make install` (agents/runners/process.py
 * falls back to setpriv without it). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fputs("usage: hive-pdeathsig PARENT PROGRAM [ARG...]\n", stderr);
        return 127;
    }
    char *end = NULL;
    long parent = strtol(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0' || parent <= 0) {
        fputs("hive-pdeathsig: PARENT must be a pid\n", stderr);
        return 127;
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
        fprintf(stderr, "hive-pdeathsig: prctl: %s\n", strerror(errno));
        return 127;
    }
    if ((long)getppid() != parent) { /* the worker died before the signal was set */
        raise(SIGKILL);
    }
    execv(argv[2], argv + 2);
    fprintf(stderr, "hive-pdeathsig: %s: %s\n", argv[2], strerror(errno));
    return 127;
}
