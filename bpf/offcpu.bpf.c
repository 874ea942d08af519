/*
 * offcpu.bpf.c - off-CPU (blocked) time per stack for webprof, and with
 * -DOFFWAKE the same joined to the waker's stack (loaded by
 * collectors/offcpu.py).
 *
 * WHAT IT TRACES
 *   sched:sched_switch.  At a switch the current task is still prev, so
 *   switch-OUT is where prev's user and kernel stacks, tgid and comm can be
 *   read (bpf_get_stackid on the tracepoint context, bpf_get_current_*):
 *   they go into `start`, keyed by prev's thread id, with a timestamp.  At
 *   switch-IN of next_pid the entry is taken back, the time off CPU computed,
 *   filtered by MIN/MAX_BLOCK_NS and added, in microseconds, to `counts`.
 *   With OFFWAKE, sched:sched_wakeup and sched:sched_wakeup_new also run: the
 *   current task is then the waker, whose stacks, tgid and comm go into
 *   `wakers`, keyed by the wakee's thread id (args->pid), and are joined to
 *   the blocked stack at the wakee's switch-in (as offwaketime does).
 *   Only the tracepoints' own fields and BPF helpers are used: no kprobes,
 *   no kernel struct fields (the kernel headers may be older than the kernel).
 *
 * MAPS
 *   control   array[1]               u32 -> u32: the set (0/1) that new
 *                                    switch-outs put their stacks in.
 *   start     hash[START_SIZE]       tid -> struct start_t (40 bytes): when
 *                                    and in which set a thread went off CPU.
 *   wakers    hash[START_SIZE]       (OFFWAKE) wakee tid -> struct waker_t.
 *   counts0/1 hash[COUNTS_SIZE]      struct key_t -> u64 microseconds blocked
 *                                    (offcpu 32-byte key: tgid, user and
 *                                    kernel stack ids, slot, comm; offwake
 *                                    60 bytes: the waker's tgid, stack ids
 *                                    and comm follow).
 *   stacks0/1 stack_trace[STACK_STORAGE_SIZE]  id -> 127 u64 addresses.
 *   health    percpu_array[H_MAX]    running totals since load; user space
 *                                    reports differences and never resets.
 *
 * AGGREGATED IN THE KERNEL, AND WHY
 *   A context-switch storm is hundreds of thousands of switches per second;
 *   sending each to user space would cost more than the workload.  Blocked
 *   time is summed per key in the kernel and stacks are deduplicated by the
 *   stack maps, so a drain moves one entry per distinct stack.
 *
 * SUB-SECOND TIME: THE SLOT IN THE KEY
 *   key.slot = bpf_ktime_get_ns() / SLOT_NS at switch-IN, the absolute
 *   CLOCK_MONOTONIC window (20 ms by default) in which the block ENDED: that
 *   is where its time is accounted, so a recorded session's heatmap shows
 *   blocked time per window and a range flame graph can be cut to 20 ms.
 *   The whole block lands in its end window, however long it lasted.  A
 *   stack that stops blocking in k windows of an interval takes k entries
 *   instead of one: at most one extra entry per (stack, window) with
 *   blocked time, and never more entries than blocks.  Stack ids are still
 *   stored once (the stack maps hold ids, not slots), and user space
 *   symbolizes each stack once per drain however many slots it spans.
 *   COUNTS_SIZE bounds it: an insert into a full counts map drops that
 *   block and counts it in H_COUNTS_FULL (reported as counts_map_full),
 *   never silently.  The u32 wraps after 2^32 windows (2.7 years of uptime
 *   at 20 ms); user space maps slots to each interval's wall-clock windows.
 *
 * DOUBLE BUFFERING, AND BLOCKS THAT SPAN A DRAIN
 *   A thread's stacks are stored in the set active at its switch-out, and its
 *   blocked time is added to that same set's counts at switch-in, so a key
 *   and the stack ids it names always live in one set.  The drain flips
 *   control[0], waits for running programs to finish, reads `start` (and
 *   `wakers`) first to learn which of the old set's stack ids threads still
 *   blocked will need, then takes the old set's counts and deletes only the
 *   stack ids no pending thread refers to.  A thread that blocked before the
 *   flip and wakes after it adds to its start set's counts, never lost and
 *   never pointing to a freed stack.  When that set is the old one, the
 *   entry is read at the old set's next drain, one interval late; so that
 *   its slot still lands in the interval it ended in, each drain also takes,
 *   from the set that just became active, the entries whose slot ended
 *   before the flip (no program writes those any more), reads their stacks
 *   there and frees those ids at that set's own drain.  Only blocks ending in
 *   the slot of a flip still arrive one interval late, in its first window.
 *   (An increment racing the very lookup-and-delete of its key can be lost;
 *   that window is a few instructions wide.)
 *
 * USER THREADS ONLY (the default; -DALL_THREADS turns it off)
 *   A kernel thread has no user memory, so get_stackid(BPF_F_USER_STACK)
 *   fails with -EFAULT for it: that is the test used, because reading
 *   task->mm would be a kernel struct field.  A user thread whose user stack
 *   cannot be read is indistinguishable and is skipped too (counted in
 *   H_FILTERED).  The idle task (tid 0) is always skipped.
 *
 * EXITING THREADS
 *   A thread's last switch-out has EXIT_ZOMBIE (0x20) or EXIT_DEAD (0x10) in
 *   prev_state (TASK_REPORT bits of the tracepoint); it never switches in
 *   again, so no start entry is stored.  User space also purges start entries
 *   of threads that no longer exist.
 *
 * ERRORS, COUNTED NOT HIDDEN
 *   get_stackid -EFAULT: no kernel stack (H_LOST_KERNEL); a missing user
 *   stack is a kernel thread (see above), so H_LOST_USER stays 0 here;
 *   -EEXIST (hash collision) or -ENOMEM: stack map too small (H_STACK_FULL).
 *   Other errors (-EPERM: a task with no user context to walk, e.g. one
 *   exiting) are not a full map: a kernel stack counts as lost, a user stack
 *   is simply absent.  start/wakers insert
 *   failed: H_START_FULL.  counts insert failed: H_COUNTS_FULL.  OFFWAKE: a
 *   waker recorded in the other set than the blocked stack cannot be joined
 *   (its ids name another map) and is dropped from the key: H_LOST_WAKER.
 *
 * PARAMETERS (-D cflags only)
 *   FILTER_TGID, FILTER_CGROUP, FILTER_COMM_LO/HI (the blocked task's
 *   process, cgroup v2 or name, tested at switch-out where it is current:
 *   see target.h), MIN_BLOCK_NS, MAX_BLOCK_NS, ALL_THREADS, OFFWAKE,
 *   START_SIZE, COUNTS_SIZE, STACK_STORAGE_SIZE, SLOT_NS (width of a time
 *   window in nanoseconds).
 *
 * KERNEL FEATURES
 *   Tracepoint programs, bpf_get_stackid from tracepoints (4.9+), per-CPU
 *   arrays, bpf_ktime_get_ns.
 */
#include <uapi/linux/ptrace.h>
#include "target.h"

#ifndef STACK_STORAGE_SIZE
#define STACK_STORAGE_SIZE 16384
#endif
#ifndef COUNTS_SIZE
#define COUNTS_SIZE 40960
#endif
#ifndef START_SIZE
#define START_SIZE 65536
#endif
#ifndef MIN_BLOCK_NS
#define MIN_BLOCK_NS 1000
#endif
#ifndef SLOT_NS
#define SLOT_NS 20000000ULL
#endif

#define COMM_LEN 16
#define EXITING_STATE 0x30  /* EXIT_DEAD | EXIT_ZOMBIE as reported by the tracepoint */

enum health_index {
    H_BLOCKS,       /* blocks counted (any set) */
    H_LOST_USER,    /* kept for the shared health layout; see ERRORS */
    H_LOST_KERNEL,
    H_STACK_FULL,
    H_COUNTS_FULL,
    H_START_FULL,
    H_FILTERED,     /* dropped by pid / thread kind / min / max filters */
    H_LOST_WAKER,
    H_SWITCHES,     /* every sched_switch seen, for cost per event */
    H_MAX,
};

struct start_t {
    u64 ts_ns;
    u32 tgid;
    u32 set;
    s32 user_stack_id;
    s32 kernel_stack_id;
    char comm[COMM_LEN];
};

struct waker_t {
    u32 tgid;
    u32 set;
    s32 user_stack_id;
    s32 kernel_stack_id;
    char comm[COMM_LEN];
};

/* Every field at its natural alignment, so no padding: hash keys compare as
 * bytes and user space unpacks "<IiiI16s" (offwake: "<IiiI16sIii16s"). */
struct key_t {
    u32 tgid;
    s32 user_stack_id;
    s32 kernel_stack_id;
    u32 slot;  /* switch-in time / SLOT_NS: see SUB-SECOND TIME */
    char comm[COMM_LEN];
#ifdef OFFWAKE
    u32 waker_tgid;
    s32 waker_user_stack_id;
    s32 waker_kernel_stack_id;
    char waker_comm[COMM_LEN];
#endif
};

BPF_ARRAY(control, u32, 1);
BPF_HASH(start, u32, struct start_t, START_SIZE);
#ifdef OFFWAKE
BPF_HASH(wakers, u32, struct waker_t, START_SIZE);
#endif
BPF_HASH(counts0, struct key_t, u64, COUNTS_SIZE);
BPF_HASH(counts1, struct key_t, u64, COUNTS_SIZE);
BPF_STACK_TRACE(stacks0, STACK_STORAGE_SIZE);
BPF_STACK_TRACE(stacks1, STACK_STORAGE_SIZE);
BPF_PERCPU_ARRAY(health, u64, H_MAX);

static __always_inline void bump(int index)
{
    u64 *value = health.lookup(&index);
    if (value)
        (*value)++;  /* per-CPU slot: no atomic needed */
}

static __always_inline void check_stack_id(s32 id, int lost_index)
{
    if (id >= 0)
        return;
    bump(id == -EEXIST || id == -ENOMEM ? H_STACK_FULL : lost_index);
}

static __always_inline u32 active_set(void)
{
    u32 zero = 0;
    u32 *active = control.lookup(&zero);
    return (active && *active == 1) ? 1 : 0;
}

/* Stack ids of the current task in the active set; returns the set.  (bcc
 * rewrites map calls only outside macros, hence the spelled-out branches.) */
static __always_inline u32 current_stacks(void *ctx, s32 *user, s32 *kernel)
{
    u32 set = active_set();
    if (set == 1) {
        *user = stacks1.get_stackid(ctx, BPF_F_USER_STACK);
        *kernel = stacks1.get_stackid(ctx, 0);
    } else {
        *user = stacks0.get_stackid(ctx, BPF_F_USER_STACK);
        *kernel = stacks0.get_stackid(ctx, 0);
    }
    return set;
}

static __always_inline void add_us(u64 *total, u64 us)
{
    if (total)
        __sync_fetch_and_add(total, us);
    else
        bump(H_COUNTS_FULL);
}

/* Add us to key in set 0 or 1.  Another CPU may insert the same key between
 * our lookup and insert, so a failed insert looks up again; a second miss
 * means the map is full. */
static __always_inline void count_in(u32 set, struct key_t *key, u64 us)
{
    u64 *total;
    if (set == 1) {
        total = counts1.lookup(key);
        if (!total) {
            if (counts1.insert(key, &us) == 0)
                return;
            total = counts1.lookup(key);
        }
    } else {
        total = counts0.lookup(key);
        if (!total) {
            if (counts0.insert(key, &us) == 0)
                return;
            total = counts0.lookup(key);
        }
    }
    add_us(total, us);
}

static __always_inline void switch_out(void *ctx, u32 tid, long state)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    struct start_t entry = {};

    if (tid == 0 || (state & EXITING_STATE))
        return;
#ifdef TARGET_FILTERED
    if (!target_wanted(pid_tgid)) {
        bump(H_FILTERED);
        return;
    }
#endif
    entry.set = current_stacks(ctx, &entry.user_stack_id, &entry.kernel_stack_id);
#ifndef ALL_THREADS
    if (entry.user_stack_id == -EFAULT) {  /* kernel thread: see USER THREADS ONLY */
        bump(H_FILTERED);
        return;
    }
#endif
    /* -EFAULT here is a kernel thread (ALL_THREADS): normal, not a loss. */
    if (entry.user_stack_id == -EEXIST || entry.user_stack_id == -ENOMEM)
        bump(H_STACK_FULL);
    check_stack_id(entry.kernel_stack_id, H_LOST_KERNEL);
    entry.tgid = pid_tgid >> 32;
    bpf_get_current_comm(&entry.comm, sizeof(entry.comm));
    entry.ts_ns = bpf_ktime_get_ns();
    if (start.update(&tid, &entry) != 0)
        bump(H_START_FULL);
#ifdef OFFWAKE
    wakers.delete(&tid);  /* a wakeup seen before this block is not its waker */
#endif
}

static __always_inline void switch_in(u32 tid)
{
    struct start_t *entry = start.lookup(&tid);
    struct key_t key = {};
    u64 now_ns, delta_ns;
    u32 set;

    if (!entry)
        return;
    now_ns = bpf_ktime_get_ns();
    delta_ns = now_ns - entry->ts_ns;
    key.tgid = entry->tgid;
    key.slot = (u32)(now_ns / (u64)(SLOT_NS));
    key.user_stack_id = entry->user_stack_id;
    key.kernel_stack_id = entry->kernel_stack_id;
    __builtin_memcpy(key.comm, entry->comm, COMM_LEN);
    set = entry->set;
    start.delete(&tid);
#ifdef OFFWAKE
    struct waker_t *waker = wakers.lookup(&tid);
    key.waker_user_stack_id = -1;
    key.waker_kernel_stack_id = -1;
    if (waker) {
        if (waker->set == set) {
            key.waker_tgid = waker->tgid;
            key.waker_user_stack_id = waker->user_stack_id;
            key.waker_kernel_stack_id = waker->kernel_stack_id;
            __builtin_memcpy(key.waker_comm, waker->comm, COMM_LEN);
        } else {
            bump(H_LOST_WAKER);
        }
        wakers.delete(&tid);
    }
#endif
    if (delta_ns < MIN_BLOCK_NS) {
        bump(H_FILTERED);
        return;
    }
#ifdef MAX_BLOCK_NS
    if (delta_ns > MAX_BLOCK_NS) {
        bump(H_FILTERED);
        return;
    }
#endif
    bump(H_BLOCKS);
    count_in(set, &key, delta_ns / 1000);
}

TRACEPOINT_PROBE(sched, sched_switch)
{
    bump(H_SWITCHES);
    switch_out(args, (u32)args->prev_pid, args->prev_state);
    switch_in((u32)args->next_pid);
    return 0;
}

#ifdef OFFWAKE
static __always_inline void on_wakeup(void *ctx, u32 wakee)
{
    struct waker_t waker = {};

    if (!start.lookup(&wakee))
        return;  /* not a thread we are timing (filtered, or never blocked) */
    waker.set = current_stacks(ctx, &waker.user_stack_id, &waker.kernel_stack_id);
    if (waker.user_stack_id == -EEXIST || waker.user_stack_id == -ENOMEM)
        bump(H_STACK_FULL);
    check_stack_id(waker.kernel_stack_id, H_LOST_KERNEL);
    waker.tgid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(&waker.comm, sizeof(waker.comm));
    if (wakers.update(&wakee, &waker) != 0)
        bump(H_START_FULL);
}

TRACEPOINT_PROBE(sched, sched_wakeup)
{
    on_wakeup(args, (u32)args->pid);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_wakeup_new)
{
    on_wakeup(args, (u32)args->pid);
    return 0;
}
#endif
