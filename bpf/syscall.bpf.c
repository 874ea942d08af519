/*
 * syscall.bpf.c - system call latency histograms for webprof
 * (loaded by collectors/latency.py, SyscallCollector).
 *
 * WHAT IT TRACES
 *   raw_syscalls:sys_enter stores the entry time per thread; raw_syscalls:
 *   sys_exit computes the call's duration and counts it in a log2 histogram
 *   of microseconds keyed by (system call number, slot).  The numbers are
 *   named in user space from the architecture's unistd header.
 *
 * MAPS
 *   start        hash[START_SIZE]   u32 tid -> u64 entry time (ns).  One entry
 *                                   per thread currently inside a system call.
 *                                   exit and exit_group never return, so they
 *                                   are not stored (NR_EXIT, NR_EXIT_GROUP),
 *                                   or every exiting thread would leak one.
 *   control      array[1]           u32 -> u32: which histogram set (0/1)
 *                                   events go to now (see DOUBLE BUFFERING).
 *   hist0/1      hash[HIST_SIZE]    struct hist_key (syscall nr, slot) -> u64
 *                                   count.
 *   health       percpu_array[2 * H_MAX]  set * H_MAX + index -> u64 running
 *                                   totals since load (events recorded, start
 *                                   map full, hist map full, filtered).
 *                                   User space reports differences only.
 *   wanted_nr    array[NR_SLOTS]    (FILTER_SYSCALLS only) u32 syscall nr ->
 *                                   u8, 1 for the calls a trace asked for.
 *                                   User space fills it right after load;
 *                                   until then every call is filtered, so a
 *                                   trace starts a few microseconds late but
 *                                   never counts a call it did not ask for.
 *
 * AGGREGATED IN THE KERNEL, AND WHY
 *   Every system call on the machine passes through here (hundreds of
 *   thousands per second are common), so only histogram counts leave the
 *   kernel: a few hundred map entries per interval instead of one event each.
 *
 * SLOTS
 *   slot 0 counts durations under 1 us; slot k >= 1 counts [2^(k-1), 2^k) us.
 *   Slots above MAX_SLOT are clamped into MAX_SLOT.
 *
 * DOUBLE BUFFERING
 *   As in cpu.bpf.c: user space flips control[0], waits a grace period for
 *   programs still using the old index, then reads and deletes the old set.
 *
 * PARAMETERS (-D cflags only)
 *   FILTER_TGID, FILTER_CGROUP, FILTER_COMM_LO/HI (only that process, cgroup
 *   v2 or task name: see target.h), FILTER_SYSCALLS (only the numbers set in
 *   wanted_nr), NR_EXIT, NR_EXIT_GROUP, START_SIZE, HIST_SIZE.
 *
 * KERNEL FEATURES
 *   Tracepoint programs (4.7+), raw_syscalls tracepoints.  Only tracepoint
 *   fields (args->id) and BPF helpers are read, never kernel structs.
 */
#include <uapi/linux/ptrace.h>

#ifndef START_SIZE
#define START_SIZE 16384
#endif
#ifndef HIST_SIZE
#define HIST_SIZE 8192
#endif
#ifndef NR_EXIT
#define NR_EXIT -1
#endif
#ifndef NR_EXIT_GROUP
#define NR_EXIT_GROUP -1
#endif
#define MAX_SLOT 40
#define NR_SLOTS 1024  /* above every system call number of today's architectures */
#include "log2.h"
#include "target.h"

enum health_index {
    H_SAMPLES,
    H_START_FULL,
    H_COUNTS_FULL,
    H_FILTERED,
    H_MAX,
};

struct hist_key {
    u32 nr;    /* system call number; negative ids wrap to large numbers */
    u32 slot;
};

BPF_HASH(start, u32, u64, START_SIZE);
BPF_ARRAY(control, u32, 1);
BPF_HASH(hist0, struct hist_key, u64, HIST_SIZE);
BPF_HASH(hist1, struct hist_key, u64, HIST_SIZE);
BPF_PERCPU_ARRAY(health, u64, 2 * H_MAX);
#ifdef FILTER_SYSCALLS
BPF_ARRAY(wanted_nr, u8, NR_SLOTS);
#endif

static __always_inline void bump(u32 set, int index)
{
    int slot = set * H_MAX + index;
    u64 *value = health.lookup(&slot);
    if (value)
        (*value)++;  /* per-CPU slot: no atomic needed */
}

static __always_inline u32 active_set(void)
{
    u32 zero = 0;
    u32 *active = control.lookup(&zero);
    return (active && *active == 1) ? 1 : 0;
}

/* Another CPU may insert the same key between lookup and insert, so a failed
 * insert looks up again; a second miss means the map is full.  (bcc rewrites
 * map calls only outside macros, hence two spelled-out copies.) */
static __always_inline void count0(struct hist_key *key)
{
    u64 one = 1;
    u64 *count = hist0.lookup(key);

    if (!count) {
        if (hist0.insert(key, &one) == 0)
            return;
        count = hist0.lookup(key);
    }
    if (count)
        __sync_fetch_and_add(count, 1);
    else
        bump(0, H_COUNTS_FULL);
}

static __always_inline void count1(struct hist_key *key)
{
    u64 one = 1;
    u64 *count = hist1.lookup(key);

    if (!count) {
        if (hist1.insert(key, &one) == 0)
            return;
        count = hist1.lookup(key);
    }
    if (count)
        __sync_fetch_and_add(count, 1);
    else
        bump(1, H_COUNTS_FULL);
}

TRACEPOINT_PROBE(raw_syscalls, sys_enter)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid;
    u64 ts;

#ifdef TARGET_FILTERED
    if (!target_wanted(pid_tgid)) {
        bump(active_set(), H_FILTERED);
        return 0;
    }
#endif
#ifdef FILTER_SYSCALLS
    u32 nr = (u32)args->id;  /* negative ids wrap above NR_SLOTS: no entry */
    u8 *wanted = wanted_nr.lookup(&nr);
    if (!wanted || *wanted == 0) {
        bump(active_set(), H_FILTERED);
        return 0;
    }
#endif
    if (args->id == NR_EXIT || args->id == NR_EXIT_GROUP)
        return 0;  /* never returns: its start would never be deleted */
    ts = bpf_ktime_get_ns();
    if (start.update(&tid, &ts) != 0)
        bump(active_set(), H_START_FULL);
    return 0;
}

TRACEPOINT_PROBE(raw_syscalls, sys_exit)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid;
    struct hist_key key = {};
    u64 *tsp;
    u64 delta_us;
    u32 set;

#ifdef FILTER_TGID
    if ((pid_tgid >> 32) != FILTER_TGID)
        return 0;  /* counted once, at entry */
#endif
    tsp = start.lookup(&tid);
    if (!tsp)
        return 0;  /* entered before we attached, or its start was not stored */
    delta_us = (bpf_ktime_get_ns() - *tsp) / 1000;
    start.delete(&tid);
    key.nr = (u32)args->id;
    key.slot = log2_slot(delta_us);
    set = active_set();
    bump(set, H_SAMPLES);
    if (set == 1)
        count1(&key);
    else
        count0(&key);
    return 0;
}
