/*
 * funclat.bpf.c - latency of up to 8 user-space functions, for targeted
 * traces (loaded by collectors/funclat.py).
 *
 * WHAT IT TRACES
 *   A uprobe on a function's entry stores the time; a uretprobe on its
 *   return computes the call's duration and counts it in a log2 histogram of
 *   microseconds keyed by (function index, slot).  The eight entry/return
 *   handler pairs are spelled once by the FUNC_PAIR macro below (entry_0 /
 *   return_0 ... entry_7 / return_7); user space attaches the first N pairs,
 *   pair i to the i-th symbol, so no C is generated per request and the
 *   symbol names never reach this file.  The count of a function's
 *   histogram is its number of calls.
 *
 * RECURSION, NESTING AND LOST RETURNS
 *   The start time is keyed by (thread, function index) and carries the
 *   user stack pointer at entry.  The stack grows down, so a call of the
 *   same function on the same thread whose stack pointer is below the
 *   stored one runs inside the timed call (recursion, or re-entry from a
 *   signal handler): it is not timed, and neither is its return, whose
 *   stack pointer is below the stored one too.  The outermost call's return
 *   leaves the stack pointer at or above its entry value (x86-64's ret pops
 *   the return address; arm64's does not move it), so it is timed, once,
 *   with everything below it included: one recursive computation is one
 *   call with its whole duration, as a caller sees it.  Different functions
 *   nest freely (each has its own entry).
 *   Returns can be missed: a call already running when the probes were
 *   attached, a thread's pending returns beyond the kernel's limit of 64
 *   (deep recursion), longjmp.  A later call of the function from the same
 *   frame (a loop) or a shallower one has a stack pointer at or above the
 *   stale entry's and replaces it, so a missed return costs one call, not
 *   the calls after it.  (A nesting depth counter instead would treat
 *   every later call as nested inside the lost one: a trace attached while
 *   the function was running would stay empty.)
 *   The stack pointer comes from the probe's struct pt_regs, the user
 *   register frame whose layout is the ptrace ABI (uapi), the same in
 *   every kernel of an architecture, unlike the internal structs the
 *   project never reads.  Limits: code that switches stacks under a running
 *   call (sigaltstack handlers, coroutines) can make a call look stale or
 *   nested, and so can calls made only from deeper frames after a missed
 *   return, or a recycled thread id inheriting a dead thread's entry (the
 *   map is an LRU, so stale entries cannot fill it; an update that fails
 *   counts in H_START_FULL).
 *
 * MAPS
 *   start     lru_hash[START_SIZE]  struct start_key (tid, fn) -> struct
 *                                   start_val (ts ns, user stack pointer).
 *   control   array[1]              u32 -> u32: current histogram set (0/1).
 *   hist0/1   hash[HIST_SIZE]       struct hist_key (fn, slot) -> u64 count.
 *   health    percpu_array[2 * H_MAX]  set * H_MAX + index -> u64 running
 *                                   totals: calls timed, start map full, hist
 *                                   map full, filtered.  User space reports
 *                                   differences only.
 *
 * SLOTS, DOUBLE BUFFERING
 *   As in syscall.bpf.c: slot 0 is < 1 us, slot k is [2^(k-1), 2^k) us; the
 *   drain flips control[0], waits a grace period, then reads the old set.
 *
 * PARAMETERS (-D cflags only)
 *   FILTER_TGID, FILTER_CGROUP, FILTER_COMM_LO/HI (target.h), START_SIZE,
 *   HIST_SIZE.
 *
 * KERNEL FEATURES
 *   uprobes and uretprobes (BPF_PROG_TYPE_KPROBE on a uprobe), LRU hash
 *   (4.10+), bpf_get_current_cgroup_id (4.18+) for a cgroup target.  No
 *   kernel struct fields and no probe arguments are read; only the stack
 *   pointer of the probe's pt_regs (see above).
 */
#include <uapi/linux/ptrace.h>

#ifndef START_SIZE
#define START_SIZE 16384
#endif
#ifndef HIST_SIZE
#define HIST_SIZE 2048
#endif
#define MAX_SLOT 40
#include "log2.h"
#include "target.h"

enum health_index {
    H_SAMPLES,
    H_START_FULL,
    H_COUNTS_FULL,
    H_FILTERED,
    H_MAX,
};

struct start_key {
    u32 tid;
    u32 fn;
};

struct start_val {
    u64 ts_ns;
    u64 sp;  /* user stack pointer at the timed call's entry */
};

struct hist_key {
    u32 fn;
    u32 slot;
};

BPF_TABLE("lru_hash", struct start_key, struct start_val, start, START_SIZE);
BPF_ARRAY(control, u32, 1);
BPF_HASH(hist0, struct hist_key, u64, HIST_SIZE);
BPF_HASH(hist1, struct hist_key, u64, HIST_SIZE);
BPF_PERCPU_ARRAY(health, u64, 2 * H_MAX);

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

static __always_inline int on_entry(u32 fn, u64 sp)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    struct start_key key = {};
    struct start_val val = {};
    struct start_val *running;

#ifdef TARGET_FILTERED
    if (!target_wanted(pid_tgid)) {
        bump(active_set(), H_FILTERED);
        return 0;
    }
#endif
    key.tid = (u32)pid_tgid;
    key.fn = fn;
    running = start.lookup(&key);
    if (running && sp < running->sp)
        return 0;  /* nested inside the timed call: see above */
    /* New, or replacing a call whose return was missed (its frame is gone). */
    val.ts_ns = bpf_ktime_get_ns();
    val.sp = sp;
    if (start.update(&key, &val) != 0)
        bump(active_set(), H_START_FULL);
    return 0;
}

static __always_inline int on_return(u32 fn, u64 sp)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    struct start_key key = {};
    struct hist_key hkey = {};
    struct start_val *running;
    u64 delta_us;
    u32 set;

    key.tid = (u32)pid_tgid;
    key.fn = fn;
    running = start.lookup(&key);
    if (!running)
        return 0;  /* entered before we attached, or filtered at entry */
    if (sp < running->sp)
        return 0;  /* a nested call returned; the timed one still runs */
    delta_us = (bpf_ktime_get_ns() - running->ts_ns) / 1000;
    start.delete(&key);
    hkey.fn = fn;
    hkey.slot = log2_slot(delta_us);
    set = active_set();
    bump(set, H_SAMPLES);
    if (set == 1)
        count1(&hkey);
    else
        count0(&hkey);
    return 0;
}

/* One uprobe/uretprobe program pair per function slot; the index is a
 * constant of each pair.  The stack pointer is read here, in the program
 * itself, where ctx is the probe's register frame. */
#define FUNC_PAIR(i) \
    int entry_##i(struct pt_regs *ctx) { return on_entry(i, PT_REGS_SP(ctx)); } \
    int return_##i(struct pt_regs *ctx) { return on_return(i, PT_REGS_SP(ctx)); }

FUNC_PAIR(0)
FUNC_PAIR(1)
FUNC_PAIR(2)
FUNC_PAIR(3)
FUNC_PAIR(4)
FUNC_PAIR(5)
FUNC_PAIR(6)
FUNC_PAIR(7)
