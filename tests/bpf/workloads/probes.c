/*
 * probes.c - ground truth for targeted traces: function latency, USDT probe
 * hits and tracepoint hits with known counts and call paths.
 *
 * usage: probes funclat SECONDS
 *          calls slow_call() 100 times a second (one call at the start of
 *          every 10 ms period, on an absolute clock, so the rate does not
 *          drift); each call sleeps 2 ms in clock_nanosleep, so it lasts
 *          2.05-2.3 ms: the [2048, 4096) us log2 bucket.  Prints the number
 *          of calls and their mean duration in microseconds on exit.
 *        probes fire N
 *          prints "ready", waits for a line on stdin, then fires the USDT
 *          probe webprof:tick N times (main -> probe_burst -> fire_tick) and
 *          calls getppid() N times (main -> probe_burst -> ask_parent),
 *          prints "done" and waits for stdin to close.
 *
 * The guarded probe webprof_guarded:hit (probes_guarded.c) has a semaphore:
 * traces must refuse it.  Build: gcc -O0 -fno-omit-frame-pointer -fno-inline
 * probes.c probes_guarded.c (needs <sys/sdt.h>: systemtap-sdt-dev).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PERIOD_NS 10000000L
#define SLEEP_NS 2000000L

void guarded_hit(void);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void slow_call(void)
{
    struct timespec req = {0, SLEEP_NS};
    clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
}

__attribute__((noinline)) static void fire_tick(long i)
{
    DTRACE_PROBE1(webprof, tick, i);
}

/* glibc's getppid() wrapper keeps no frame pointer: a helper of our own
 * stays on the stack (see offcpu_split.c). */
__attribute__((noinline)) static void ask_parent(void)
{
    syscall(SYS_getppid);
}

__attribute__((noinline)) static void probe_burst(long n)
{
    for (long i = 0; i < n; i++) {
        fire_tick(i);
        ask_parent();
    }
}

static int run_funclat(double seconds)
{
    struct timespec next;
    double start = now_s(), spent = 0;
    long calls = 0;

    clock_gettime(CLOCK_MONOTONIC, &next);
    while (now_s() < start + seconds) {
        double t0 = now_s();
        slow_call();
        spent += now_s() - t0;
        calls++;
        next.tv_nsec += PERIOD_NS;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    printf("%ld %.0f\n", calls, calls ? spent * 1e6 / calls : 0.0);
    return 0;
}

static int run_fire(long n)
{
    char line[64];

    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
        return 1;
    probe_burst(n);
    guarded_hit();
    printf("done\n");
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin))
        ;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "funclat") == 0)
        return run_funclat(atof(argv[2]));
    if (argc == 3 && strcmp(argv[1], "fire") == 0)
        return run_fire(atol(argv[2]));
    fprintf(stderr, "usage: probes funclat SECONDS | probes fire N\n");
    return 2;
}
