/*
 * biolat.bpf.c - block I/O latency histograms for webprof
 * (loaded by collectors/latency.py, BiolatCollector).
 *
 * WHAT IT TRACES
 *   block:block_rq_issue (a request is handed to the device driver) stores
 *   the issue time keyed by (device, sector); block:block_rq_complete looks
 *   it up and counts the device time in a log2 histogram of microseconds
 *   keyed by (device, operation, slot).
 *
 *   The device is the tracepoint's dev field: the kernel's internal dev_t,
 *   MAJOR << 20 | MINOR, of the whole disk (not the partition).  User space
 *   names it from /sys/dev/block/MAJOR:MINOR/uevent.
 *
 *   The operation is the first two characters of the tracepoint's rwbs
 *   string ("R", "WS", "FWS", "D", "F", ...): a leading 'F' is a preflush
 *   flag when another operation letter follows.  User space decodes them,
 *   so the kernel copies two bytes and makes no decision.
 *
 *   No pid filter: requests are often issued from kworkers or another
 *   process's plug and complete in interrupt context, so the current task
 *   does not say who asked for the I/O.  FILTER_CGROUP is tested at issue,
 *   on the issuing task: it counts the requests a cgroup's own tasks issue
 *   (direct and synchronous I/O); write-back issued by kernel workers
 *   belongs to their cgroup, not to the one that dirtied the pages.
 *
 *   FILTER_DEV keeps one disk (its dev value as above) and drops the rest
 *   at issue, before anything is stored.
 *
 * MAPS
 *   start        hash[START_SIZE]   struct start_key (dev, sector) -> u64 ns.
 *                                   Flushes carry sector 0: two flushes in
 *                                   flight on one device share a key and the
 *                                   second overwrites the first.
 *   control      array[1]           u32 -> u32: current histogram set (0/1).
 *   hist0/1      hash[HIST_SIZE]    struct hist_key (dev, op[2], slot) -> u64.
 *   health       percpu_array[2 * H_MAX]  running totals per set: events,
 *                                   start map full, hist map full.
 *
 * SLOTS, DOUBLE BUFFERING
 *   As in syscall.bpf.c.
 *
 * PARAMETERS (-D cflags only)
 *   FILTER_DEV, FILTER_CGROUP (target.h), START_SIZE, HIST_SIZE.
 *
 * KERNEL FEATURES
 *   Tracepoint programs (4.7+).  Only tracepoint fields (dev, sector, rwbs)
 *   and BPF helpers are read.
 */
#include <uapi/linux/ptrace.h>

#ifndef START_SIZE
#define START_SIZE 16384
#endif
#ifndef HIST_SIZE
#define HIST_SIZE 4096
#endif
#define MAX_SLOT 40
#include "log2.h"
#include "target.h"

enum health_index {
    H_SAMPLES,
    H_START_FULL,
    H_COUNTS_FULL,
    H_MAX,
};

struct start_key {
    u32 dev;
    u32 pad;
    u64 sector;
};

struct hist_key {
    u32 dev;
    char op[2];
    u16 pad;
    u32 slot;
};

BPF_HASH(start, struct start_key, u64, START_SIZE);
BPF_ARRAY(control, u32, 1);
BPF_HASH(hist0, struct hist_key, u64, HIST_SIZE);
BPF_HASH(hist1, struct hist_key, u64, HIST_SIZE);
BPF_PERCPU_ARRAY(health, u64, 2 * H_MAX);

static __always_inline void bump(u32 set, int index)
{
    int slot = set * H_MAX + index;
    u64 *value = health.lookup(&slot);
    if (value)
        (*value)++;
}

static __always_inline u32 active_set(void)
{
    u32 zero = 0;
    u32 *active = control.lookup(&zero);
    return (active && *active == 1) ? 1 : 0;
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

TRACEPOINT_PROBE(block, block_rq_issue)
{
    struct start_key skey = {};
    u64 ts = bpf_ktime_get_ns();

#ifdef FILTER_DEV
    if (args->dev != FILTER_DEV)
        return 0;
#endif
#ifdef TARGET_FILTERED
    if (!target_wanted(bpf_get_current_pid_tgid()))
        return 0;
#endif
    skey.dev = args->dev;
    skey.sector = args->sector;
    if (start.update(&skey, &ts) != 0)
        bump(active_set(), H_START_FULL);
    return 0;
}

TRACEPOINT_PROBE(block, block_rq_complete)
{
    struct start_key skey = {};
    struct hist_key key = {};
    u64 *tsp;
    u64 delta_us;
    u32 set;

    skey.dev = args->dev;
    skey.sector = args->sector;
    tsp = start.lookup(&skey);
    if (!tsp)
        return 0;  /* issued before we attached, or its start was not stored */
    delta_us = (bpf_ktime_get_ns() - *tsp) / 1000;
    start.delete(&skey);

    key.dev = args->dev;
    bpf_probe_read_kernel(&key.op, sizeof(key.op), args->rwbs);
    key.slot = log2_slot(delta_us);
    set = active_set();
    bump(set, H_SAMPLES);
    if (set == 1)
        count1(&key);
    else
        count0(&key);
    return 0;
}
