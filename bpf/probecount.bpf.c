/*
 * probecount.bpf.c - hits of one probe point with the stacks that reached
 * it, for targeted traces (loaded by collectors/probecount.py).
 *
 * WHAT IT TRACES
 *   on_hit() runs each time the probe point fires and counts the hit under
 *   the current task's process id, name, user stack and kernel stack.  User
 *   space attaches it to one of:
 *   - a USDT probe: a uprobe at each of the probe's sites (the nop that
 *     <sys/sdt.h> plants; the address comes from the binary's .note.stapsdt,
 *     see collectors/usdt.py).  Built with -DPROBE_USER: the hit happens in
 *     user mode, so only the user stack is taken;
 *   - a tracepoint ("category:name", checked to exist in tracefs): both
 *     stacks.  A kernel thread has no user stack, so a missing one is not a
 *     loss there.
 *   The probe's arguments are not read: the question is who fires it and
 *   how often.
 *
 * MAPS (as cpu.bpf.c, whose drain code reads them: collectors/cpu.py)
 *   control      array[1]            u32 -> u32: which set hits go to now.
 *   counts0/1    hash[COUNTS_SIZE]   struct key_t (tgid, user stack id, kernel
 *                                    stack id, slot, comm[16]; 32 bytes, no
 *                                    padding) -> u64 hits.
 *   stacks0/1    stack_trace[STACK_STORAGE_SIZE]  stack id -> 127 addresses.
 *   health       percpu_array[2 * H_MAX]  running totals per set: hits, lost
 *                                    user / kernel stacks, stack map full,
 *                                    counts map full.  User space reports
 *                                    differences.
 *   seen, new_tasks                  first hit of each (tgid, comm) announced
 *                                    so user space snapshots /proc/PID/maps
 *                                    before a short-lived process exits.
 *
 * AGGREGATED IN THE KERNEL, AND WHY
 *   A tracepoint such as sched_switch or a syscall fires 100k+ times a
 *   second: hits are counted per stack key in the kernel, and a drain moves
 *   one entry per distinct stack and time slot.
 *
 * SUB-SECOND TIME, DOUBLE BUFFERING
 *   As in cpu.bpf.c: key.slot is the CLOCK_MONOTONIC window (SLOT_NS) of the
 *   hit; the drain flips control[0], waits a grace period, reads the old set.
 *
 * PARAMETERS (-D cflags only)
 *   PROBE_USER, FILTER_TGID, FILTER_CGROUP, FILTER_COMM_LO/HI (target.h),
 *   STACK_STORAGE_SIZE, COUNTS_SIZE, SEEN_SIZE, SLOT_NS.
 *
 * KERNEL FEATURES
 *   uprobes or tracepoint programs, bpf_get_stackid, LRU hash, perf buffer,
 *   bpf_get_current_cgroup_id (4.18+) for a cgroup target.  No kernel struct
 *   fields are read.
 */
#include <uapi/linux/ptrace.h>
#include "target.h"

#ifndef STACK_STORAGE_SIZE
#define STACK_STORAGE_SIZE 8192
#endif
#ifndef COUNTS_SIZE
#define COUNTS_SIZE 16384
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

struct key_t {
    u32 tgid;
    s32 user_stack_id;
    s32 kernel_stack_id;
    u32 slot;
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

static __always_inline void check_stack_id(u32 set, s32 id, int lost_index)
{
    if (id >= 0)
        return;
    if (id == -EEXIST || id == -ENOMEM)
        bump(set, H_STACK_FULL);
    else if (lost_index >= 0)
        bump(set, lost_index);
}

static __always_inline void add_one(u32 set, u64 *count)
{
    if (count)
        __sync_fetch_and_add(count, 1);
    else
        bump(set, H_COUNTS_FULL);
}

/* Count one hit; a failed insert (another CPU inserted first, or the map is
 * full) looks up again.  Two spelled-out copies: bcc rewrites map calls only
 * outside macros. */
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

int on_hit(struct pt_regs *ctx)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    struct key_t key = {};
    u32 zero = 0;
    u32 *active;
    u32 set;

#ifdef TARGET_FILTERED
    if (!target_wanted(pid_tgid))
        return 0;
#endif
    active = control.lookup(&zero);
    set = (active && *active == 1) ? 1 : 0;
    bump(set, H_SAMPLES);
    key.tgid = pid_tgid >> 32;
    key.slot = (u32)(bpf_ktime_get_ns() / (u64)(SLOT_NS));
    bpf_get_current_comm(&key.comm, sizeof(key.comm));
    if (set == 1)
        key.user_stack_id = stacks1.get_stackid(ctx, BPF_F_USER_STACK);
    else
        key.user_stack_id = stacks0.get_stackid(ctx, BPF_F_USER_STACK);
#ifdef PROBE_USER
    key.kernel_stack_id = -1;  /* a user-mode hit: no kernel stack to speak of */
    check_stack_id(set, key.user_stack_id, H_LOST_USER);
#else
    if (set == 1)
        key.kernel_stack_id = stacks1.get_stackid(ctx, 0);
    else
        key.kernel_stack_id = stacks0.get_stackid(ctx, 0);
    check_stack_id(set, key.user_stack_id, -1);  /* kernel threads have none */
    check_stack_id(set, key.kernel_stack_id, H_LOST_KERNEL);
#endif
    if (set == 1)
        count_in_set1(&key);
    else
        count_in_set0(&key);
    announce(ctx, &key);
    return 0;
}
