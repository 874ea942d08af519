/*
 * runqlat.bpf.c - run-queue latency histograms for webprof
 * (loaded by collectors/latency.py, RunqlatCollector).
 *
 * WHAT IT TRACES
 *   The time a thread waits on a run queue: from becoming runnable to
 *   running.  A thread becomes runnable when it is woken
 *   (sched:sched_wakeup, sched:sched_wakeup_new) or when it is preempted and
 *   so stays runnable (sched:sched_switch with a runnable prev).  It starts
 *   running at sched:sched_switch where it is next; the difference goes into
 *   a log2 histogram of microseconds, once for the whole system and once
 *   per thread name (the tracepoint's next_comm).
 *
 *   Why names and not process ids: at switch-in the current task is still
 *   prev, so helpers cannot tell next's process id, and the tracepoint
 *   carries only next's thread id and name.  Series are per name.
 *
 *   Runnable prev: the tracepoint's prev_state is 0 for a task that yielded
 *   and TASK_REPORT_MAX (0x100) for a preempted one; any of the low report
 *   bits (0xff: S, D, T, t, X, Z, P, I) means it blocked instead.
 *
 * MAPS
 *   start        hash[START_SIZE]   u32 tid -> u64 time it became runnable (ns).
 *   control      array[1]           u32 -> u32: current histogram set (0/1).
 *   hist0/1      hash[HIST_SIZE]    struct hist_key (next_comm[16], slot) -> u64.
 *   all_hist     percpu_array[2 * NSLOTS]  set * NSLOTS + slot -> u64 running
 *                                   total since load, whole system.
 *   health       percpu_array[2 * H_MAX]  set * H_MAX + index -> u64 running
 *                                   totals: events, start map full, hist map
 *                                   full, filtered.  User space reports
 *                                   differences of running totals, so never
 *                                   clears them and cannot race.
 *   members      lru_hash[MEMBERS_SIZE] (TARGET_FILTERED only) u32 tid -> u8:
 *                                   threads of the target (process, cgroup
 *                                   or task name: target.h), learnt when one
 *                                   is switched out or creates a thread
 *                                   (current is then that task); wakeups are
 *                                   made by other tasks, so the wakee is not
 *                                   known otherwise.
 *
 * AGGREGATED IN THE KERNEL, AND WHY
 *   sched_switch fires at context-switch rate (100k+/s under load): only
 *   histogram counts leave the kernel.
 *
 * SLOTS, DOUBLE BUFFERING
 *   As in syscall.bpf.c: slot 0 is < 1 us, slot k is [2^(k-1), 2^k) us; the
 *   drain flips control[0], waits a grace period, then reads the old set.
 *
 * PARAMETERS (-D cflags only)
 *   FILTER_TGID, FILTER_CGROUP, FILTER_COMM_LO/HI (target.h), START_SIZE,
 *   HIST_SIZE, MEMBERS_SIZE.
 *
 * KERNEL FEATURES
 *   Tracepoint programs (4.7+).  Only tracepoint fields (pid, prev_pid,
 *   prev_state, next_pid, next_comm) and BPF helpers are read.
 */
#include <uapi/linux/ptrace.h>

#ifndef START_SIZE
#define START_SIZE 16384
#endif
#ifndef HIST_SIZE
#define HIST_SIZE 8192
#endif
#ifndef MEMBERS_SIZE
#define MEMBERS_SIZE 4096
#endif
#define MAX_SLOT 40
#include "log2.h"
#include "target.h"
#define NSLOTS (MAX_SLOT + 1)
#define BLOCKED_STATES 0xff
#define COMM_LEN 16

enum health_index {
    H_SAMPLES,
    H_START_FULL,
    H_COUNTS_FULL,
    H_FILTERED,
    H_MAX,
};

struct hist_key {
    char comm[COMM_LEN];
    u32 slot;
};

BPF_HASH(start, u32, u64, START_SIZE);
BPF_ARRAY(control, u32, 1);
BPF_HASH(hist0, struct hist_key, u64, HIST_SIZE);
BPF_HASH(hist1, struct hist_key, u64, HIST_SIZE);
BPF_PERCPU_ARRAY(all_hist, u64, 2 * NSLOTS);
BPF_PERCPU_ARRAY(health, u64, 2 * H_MAX);
#ifdef TARGET_FILTERED
BPF_TABLE("lru_hash", u32, u8, members, MEMBERS_SIZE);
#endif

static __always_inline void bump_index(u32 set, int index)
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

/* Is tid a thread of the filtered process?  Always yes without a filter. */
static __always_inline int wanted(u32 tid)
{
#ifdef TARGET_FILTERED
    if (!members.lookup(&tid)) {
        bump_index(active_set(), H_FILTERED);
        return 0;
    }
#endif
    return 1;
}

/* Learn that tid belongs to the target (current is that task, or the one
 * creating it). */
static __always_inline void note_member(u32 tid)
{
#ifdef TARGET_FILTERED
    u8 one = 1;
    if (target_wanted(bpf_get_current_pid_tgid()))
        members.update(&tid, &one);
#endif
}

static __always_inline void mark_runnable(u32 tid)
{
    u64 ts;

    if (tid == 0 || !wanted(tid))
        return;
    ts = bpf_ktime_get_ns();
    if (start.update(&tid, &ts) != 0)
        bump_index(active_set(), H_START_FULL);
}

static __always_inline void count0(struct hist_key *key)
{
    u64 one = 1;
    u64 *count = hist0.lookup(key);

    if (!count) {
        if (hist0.insert(key, &one) == 0)
            return;
        count = hist0.lookup(key);  /* another CPU inserted it first */
    }
    if (count)
        __sync_fetch_and_add(count, 1);
    else
        bump_index(0, H_COUNTS_FULL);
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
        bump_index(1, H_COUNTS_FULL);
}

TRACEPOINT_PROBE(sched, sched_wakeup)
{
    mark_runnable(args->pid);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_wakeup_new)
{
    note_member(args->pid);  /* a new thread of the current (creating) process */
    mark_runnable(args->pid);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_switch)
{
    u32 prev = args->prev_pid;
    u32 next = args->next_pid;
    struct hist_key key = {};
    int all_index;
    u64 *tsp, *all;
    u64 delta_us;
    u32 set;

    if (prev != 0) {
        note_member(prev);  /* current is prev here */
        if ((args->prev_state & BLOCKED_STATES) == 0)
            mark_runnable(prev);  /* preempted: back on the run queue */
    }
    if (next == 0)
        return 0;
    tsp = start.lookup(&next);
    if (!tsp)
        return 0;  /* runnable before we attached, or filtered */
    delta_us = (bpf_ktime_get_ns() - *tsp) / 1000;
    start.delete(&next);

    key.slot = log2_slot(delta_us);
    bpf_probe_read_kernel(&key.comm, sizeof(key.comm), args->next_comm);
    set = active_set();
    bump_index(set, H_SAMPLES);
    all_index = set * NSLOTS + key.slot;
    all = all_hist.lookup(&all_index);
    if (all)
        (*all)++;
    if (set == 1)
        count1(&key);
    else
        count0(&key);
    return 0;
}
