/*
 * cpu.bpf.c - stacks of the current task counted per event, for webprof:
 * on-CPU sampling (loaded by collectors/cpu.py) and, built with
 * -DPROBE_COUNT, hits of one probe point (collectors/probecount.py).
 *
 * WHAT IT TRACES (one entry point per build)
 *   on_cpu_sample() (default build): a software perf event
 *     (PERF_COUNT_SW_CPU_CLOCK) fires on every CPU at the sampling frequency
 *     and this runs in that interrupt, recording the interrupted task's
 *     process id, thread name, user stack and kernel stack.  The idle task
 *     (pid 0) is skipped, as bcc's profile tool does.
 *   on_hit() (-DPROBE_COUNT): runs each time a probe point fires and counts
 *     the hit the same way.  User space attaches it to one of:
 *     - a USDT probe: a uprobe at each of the probe's sites (the nop that
 *       <sys/sdt.h> plants; the address comes from the binary's
 *       .note.stapsdt, see collectors/usdt.py).  Built with -DPROBE_USER too:
 *       the hit happens in user mode, so only the user stack is taken;
 *     - a tracepoint ("category:name", checked to exist in tracefs): both
 *       stacks, the hit being in kernel mode.
 *     The probe's arguments are not read: the question is who fires it and
 *     how often.  A tracepoint such as sched_switch fires 100k+ times a
 *     second, which is why hits are aggregated in the kernel too.
 *   Both call count_event(), so the maps below and the drain that reads them
 *   (collectors/cpu.py) are the same for samples and hits.
 *
 * MAPS (two "sets", 0 and 1, of counts + stacks: see DOUBLE BUFFERING; in
 * a PROBE_COUNT build "samples" below are probe hits)
 *   control      array[1]            u32 -> u32: which set samples go to now.
 *   counts0/1    hash[COUNTS_SIZE]   struct key_t (32 bytes, no padding:
 *                                    tgid, user stack id, kernel stack id,
 *                                    slot, comm[16]) -> u64 sample count.
 *   stacks0/1    stack_trace[STACK_STORAGE_SIZE]  stack id -> 127 u64
 *                                    instruction pointers (1 KiB per entry).
 *   health       percpu_array[2 * H_MAX]  set * H_MAX + index -> u64 running
 *                                    total since load: samples, lost user /
 *                                    kernel stacks, stack map full, counts map
 *                                    full.  Kept per set, so the numbers of a
 *                                    drained set match its counts exactly;
 *                                    user space reports differences and never
 *                                    resets them, so it cannot race.
 *   seen         lru_hash[SEEN_SIZE] struct task_t (tgid, comm) -> u8: tasks
 *                                    already announced on new_tasks.
 *   new_tasks    perf buffer of struct task_t: the first sample of each
 *                                    (tgid, comm) is announced so user space
 *                                    can read /proc/PID/maps while the process
 *                                    is still alive (short-lived processes
 *                                    would otherwise exit before the drain and
 *                                    lose their symbols).
 *
 * AGGREGATED IN THE KERNEL, AND WHY
 *   Samples are counted per (process, user stack, kernel stack, comm) key and
 *   stacks are deduplicated by the stack map, so the per-interval drain moves
 *   one entry per distinct stack instead of one event per sample: at 999 Hz
 *   on many CPUs the per-sample alternative costs far more.
 *
 * SUB-SECOND TIME: THE SLOT IN THE KEY
 *   key.slot = bpf_ktime_get_ns() / SLOT_NS, the absolute CLOCK_MONOTONIC
 *   window of the sample (SLOT_NS = 20 ms by default), so a recorded session
 *   can show a FlameScope-style heatmap and re-aggregate any sub-second range.
 *   A stack seen in k windows of an interval takes k entries instead of one,
 *   but every entry holds at least one sample: an interval never needs more
 *   entries than it has samples (frequency x CPUs x interval), whatever the
 *   number of distinct stacks, so the slot costs at most one entry per
 *   sample, and COUNTS_SIZE must cover one interval's samples.  Stacks are
 *   still stored once (the stack maps hold ids, not slots), and user space
 *   symbolizes each stack id once however many slots it spans.  The u32
 *   wraps after 2^32 windows (2.7 years of uptime at 20 ms); user space
 *   turns slots into wall-clock windows relative to each interval's start.
 *
 * DOUBLE BUFFERING
 *   The drain flips control[0], waits a moment for programs already running
 *   on other CPUs to finish, then reads and clears the set no longer written.
 *   Clearing the live set instead would race: a sample arriving between the
 *   read and the delete could reuse a stack id that is then deleted.
 *
 * ERRORS, COUNTED NOT HIDDEN
 *   get_stackid -EFAULT: no stack could be read.  Counted as a lost user stack
 *   only when the sample interrupted user mode and as a lost kernel stack only
 *   when it interrupted kernel mode (user-mode samples have no kernel stack,
 *   kernel threads no user stack: both normal); so is any other error but
 *   -EEXIST (hash collision) and -ENOMEM, which mean the stack map is too
 *   small: H_STACK_FULL.
 *   A counts insert that fails (map full) is counted in H_COUNTS_FULL.
 *
 * PARAMETERS (-D cflags only)
 *   PROBE_COUNT (build on_hit instead of on_cpu_sample), PROBE_USER (on_hit
 *   fires in user mode: take no kernel stack), FILTER_TGID, FILTER_CGROUP, FILTER_COMM_LO/HI (only that process, cgroup
 *   v2 or task name: see target.h), STACK_STORAGE_SIZE, COUNTS_SIZE,
 *   SEEN_SIZE, SLOT_NS (width of a time window in nanoseconds).
 *
 * KERNEL FEATURES
 *   BPF_PROG_TYPE_PERF_EVENT (or, with PROBE_COUNT, uprobe or tracepoint
 *   programs), bpf_get_stackid (4.6+), LRU hash (4.10+), perf buffer output,
 *   bpf_ktime_get_ns, bpf_get_current_cgroup_id (4.18+) for a cgroup target.
 *   No kprobes, and no kernel struct fields are read: only BPF helpers and
 *   the UAPI perf event context (the interrupted instruction pointer, to
 *   tell user mode from kernel mode).
 */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf_perf_event.h>
#include "target.h"

#ifndef STACK_STORAGE_SIZE
#define STACK_STORAGE_SIZE 16384
#endif
#ifndef COUNTS_SIZE
#define COUNTS_SIZE 40960
#endif
#ifndef SEEN_SIZE
#define SEEN_SIZE 8192
#endif

#ifndef SLOT_NS
#define SLOT_NS 20000000ULL
#endif

#define COMM_LEN 16

enum health_index {
    H_SAMPLES,
    H_LOST_USER,
    H_LOST_KERNEL,
    H_STACK_FULL,
    H_COUNTS_FULL,
    H_MAX,
};

/* 4 + 4 + 4 + 4 + 16 = 32 bytes, every field at its natural alignment, so no
 * padding: hash keys compare as bytes and user space unpacks "<IiiI16s". */
struct key_t {
    u32 tgid;
    s32 user_stack_id;
    s32 kernel_stack_id;
    u32 slot;  /* bpf_ktime_get_ns() / SLOT_NS: see SUB-SECOND TIME */
    char comm[COMM_LEN];
};

struct task_t {
    u32 tgid;
    char comm[COMM_LEN];
};

BPF_ARRAY(control, u32, 1);
BPF_HASH(counts0, struct key_t, u64, COUNTS_SIZE);
BPF_HASH(counts1, struct key_t, u64, COUNTS_SIZE);
BPF_STACK_TRACE(stacks0, STACK_STORAGE_SIZE);
BPF_STACK_TRACE(stacks1, STACK_STORAGE_SIZE);
BPF_PERCPU_ARRAY(health, u64, 2 * H_MAX);
BPF_TABLE("lru_hash", struct task_t, u8, seen, SEEN_SIZE);
BPF_PERF_OUTPUT(new_tasks);

static __always_inline void bump(u32 set, int index)
{
    int at = set * H_MAX + index;
    u64 *value = health.lookup(&at);
    if (value)
        (*value)++;  /* per-CPU entry: no atomic needed */
}

static __always_inline void check_stack_id(u32 set, s32 id, int in_this_mode,
                                           int lost_index)
{
    if (id >= 0)
        return;
    if (id == -EEXIST || id == -ENOMEM) {
        bump(set, H_STACK_FULL);
    } else if (in_this_mode) {
        /* -EFAULT, or -EPERM for tasks with no user context to walk. */
        bump(set, lost_index);
    }
}

static __always_inline void add_one(u32 set, u64 *count)
{
    if (count)
        __sync_fetch_and_add(count, 1);
    else
        bump(set, H_COUNTS_FULL);
}

/* Count one sample for key in set 0 or 1.  Another CPU may insert the same
 * key between our lookup and insert, so a failed insert looks up again; a
 * second miss means the map is full.  (bcc rewrites map calls only outside
 * macros, hence two spelled-out copies.) */
static __always_inline void count_in_set0(struct key_t *key)
{
    u64 one = 1;
    u64 *count = counts0.lookup(key);

    if (!count) {
        if (counts0.insert(key, &one) == 0)
            return;
        count = counts0.lookup(key);
    }
    add_one(0, count);
}

static __always_inline void count_in_set1(struct key_t *key)
{
    u64 one = 1;
    u64 *count = counts1.lookup(key);

    if (!count) {
        if (counts1.insert(key, &one) == 0)
            return;
        count = counts1.lookup(key);
    }
    add_one(1, count);
}

static __always_inline void announce(void *ctx, struct key_t *key)
{
    struct task_t task = {};
    u8 one = 1;

    task.tgid = key->tgid;
    __builtin_memcpy(task.comm, key->comm, COMM_LEN);
    if (seen.lookup(&task))
        return;
    if (seen.insert(&task, &one) == 0)
        new_tasks.perf_submit(ctx, &task, sizeof(task));
}

/* Count one event of the current task under its stacks, in the set user
 * space is not draining.  user_mode says whether the event interrupted user
 * code, which decides what a missing stack means: user-mode events have no
 * kernel stack and kernel threads no user stack (both normal), so only the
 * stack of the mode the event came from counts as lost. */
static __always_inline void count_event(void *ctx, u64 pid_tgid, int user_mode)
{
    struct key_t key = {};
    u32 zero = 0;
    u32 *active = control.lookup(&zero);
    u32 set = (active && *active == 1) ? 1 : 0;

    bump(set, H_SAMPLES);
    key.tgid = pid_tgid >> 32;
    key.slot = (u32)(bpf_ktime_get_ns() / (u64)(SLOT_NS));
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    if (set == 1)
        key.user_stack_id = stacks1.get_stackid(ctx, BPF_F_USER_STACK);
    else
        key.user_stack_id = stacks0.get_stackid(ctx, BPF_F_USER_STACK);
#ifdef PROBE_USER
    key.kernel_stack_id = -1;  /* a uprobe hit: no kernel stack to walk */
#else
    if (set == 1)
        key.kernel_stack_id = stacks1.get_stackid(ctx, 0);
    else
        key.kernel_stack_id = stacks0.get_stackid(ctx, 0);
#endif
    check_stack_id(set, key.user_stack_id, user_mode, H_LOST_USER);
    check_stack_id(set, key.kernel_stack_id, !user_mode, H_LOST_KERNEL);

    if (set == 1)
        count_in_set1(&key);
    else
        count_in_set0(&key);
    announce(ctx, &key);
}

#ifdef PROBE_COUNT
int on_hit(struct pt_regs *ctx)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();

#ifdef TARGET_FILTERED
    if (!target_wanted(pid_tgid))
        return 0;
#endif
#ifdef PROBE_USER
    count_event(ctx, pid_tgid, 1);
#else
    count_event(ctx, pid_tgid, 0);  /* a tracepoint fires in kernel mode */
#endif
    return 0;
}
#else
int on_cpu_sample(struct bpf_perf_event_data *ctx)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();

    if ((u32)pid_tgid == 0)
        return 0;  /* idle task */
#ifdef TARGET_FILTERED
    if (!target_wanted(pid_tgid))
        return 0;
#endif
    /* Kernel addresses have the top bit set on 64-bit architectures. */
    count_event(ctx, pid_tgid, (s64)PT_REGS_IP(&ctx->regs) >= 0);
    return 0;
}
#endif
