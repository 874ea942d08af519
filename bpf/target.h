/* target.h - which task a targeted program counts: target_wanted(pid_tgid).
 *
 * A trace's target arrives as -D constants only (collectors/target.py makes
 * them), never as C text:
 *   FILTER_TGID                    the process id;
 *   FILTER_CGROUP                  a cgroup v2 id (the inode number of the
 *                                  cgroup's directory), compared with
 *                                  bpf_get_current_cgroup_id() (4.18+);
 *   FILTER_COMM_LO, FILTER_COMM_HI the task name, exactly, as the 16 bytes
 *                                  bpf_get_current_comm() fills (NUL padded),
 *                                  read as two little-endian u64 numbers.
 * Every test is about the current task, so a program may only ask when the
 * current task is the one it counts (a switch-out, a system call, a probe
 * hit).  TARGET_FILTERED is defined when any of them is.  Map-free, so it
 * can live in a header (bcc rewrites map calls in the main file only). */
#ifndef WEBPROF_TARGET_H
#define WEBPROF_TARGET_H

#if defined(FILTER_TGID) || defined(FILTER_CGROUP) || defined(FILTER_COMM_LO)
#define TARGET_FILTERED 1
#endif

static __always_inline int target_wanted(u64 pid_tgid)
{
#ifdef FILTER_TGID
    if ((pid_tgid >> 32) != FILTER_TGID)
        return 0;
#endif
#ifdef FILTER_CGROUP
    if (bpf_get_current_cgroup_id() != (u64)FILTER_CGROUP)
        return 0;
#endif
#ifdef FILTER_COMM_LO
    union {
        char text[16];
        u64 words[2];
    } comm = {};

    bpf_get_current_comm(comm.text, sizeof(comm.text));
    if (comm.words[0] != (u64)FILTER_COMM_LO || comm.words[1] != (u64)FILTER_COMM_HI)
        return 0;
#endif
    return 1;
}

#endif
