/*
 * Ground-truth workload for the CPU collector tests.
 *
 * Spends its CPU time in three leaf functions reached through distinct call
 * paths, in shares fixed by design: 60 % / 30 % / 10 %.
 *
 *   main -> path_a -> leaf_60
 *   main -> path_b -> mid_b -> leaf_30
 *   main -> path_c -> leaf_10
 *
 * Each round gives the leaves 4.2 / 2.1 / 0.7 ms of this thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID, so time spent descheduled does not count).  A
 * leaf burns arithmetic in chunks and reads the clock between chunks, so the
 * clock's own cost is a small, equal fraction of every leaf.  On exit it
 * prints the CPU time each leaf really consumed ("leaf_60 <ns>"), which the
 * tests use to check the design held.
 *
 * Usage: cpu_shares SECONDS (wall-clock run time; SIGTERM or SIGINT ends it
 * early, after the current round, still printing the measurement).
 * Build: gcc -O1 -fno-omit-frame-pointer -fno-inline -fno-optimize-sibling-calls
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static long long thread_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Each leaf runs its own loop (no shared helper) so that a sample taken in
 * it has the leaf as its innermost named frame. */
#define LEAF_BODY(budget_ns)                                                  \
    long long start = thread_ns(), now = start;                               \
    unsigned long x = sink;                                                   \
    while (now - start < (budget_ns)) {                                       \
        for (int i = 0; i < 20000; i++)                                       \
            x = x * 6364136223846793005UL + 1442695040888963407UL;            \
        now = thread_ns();                                                    \
    }                                                                         \
    sink = x;                                                                 \
    return now - start;

__attribute__((noinline)) long long leaf_60(void) { LEAF_BODY(4200000) }
__attribute__((noinline)) long long leaf_30(void) { LEAF_BODY(2100000) }
__attribute__((noinline)) long long leaf_10(void) { LEAF_BODY(700000) }

__attribute__((noinline)) long long path_a(void) { long long t = leaf_60(); sink++; return t; }
__attribute__((noinline)) long long mid_b(void) { long long t = leaf_30(); sink++; return t; }
__attribute__((noinline)) long long path_b(void) { long long t = mid_b(); sink++; return t; }
__attribute__((noinline)) long long path_c(void) { long long t = leaf_10(); sink++; return t; }

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 4.0;
    long long end = wall_ns() + (long long)(seconds * 1e9);
    long long t60 = 0, t30 = 0, t10 = 0;

    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop && wall_ns() < end) {
        t60 += path_a();
        t30 += path_b();
        t10 += path_c();
    }
    printf("leaf_60 %lld\nleaf_30 %lld\nleaf_10 %lld\n", t60, t30, t10);
    return 0;
}
