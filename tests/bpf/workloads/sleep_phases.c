/*
 * Ground-truth workload for sub-second time in off-CPU profiles.
 *
 * Waits for a line on stdin (so a collector can attach first), then
 * alternates two sleeping phases of fixed wall-clock length, each in its own
 * function, so a profile's time slots can be checked against when each
 * phase's blocked time really ended:
 *
 *   main -> sleep_a -> nap   (NAP_MS sleeps until PHASE_MS have passed)
 *   main -> sleep_b -> nap
 *
 * On exit it prints one line per phase run, "sleep_a START_US END_US
 * BLOCKED_US": CLOCK_REALTIME microseconds (the clock of the protocol's
 * start_ms) taken before the phase's first and after its last sleep, and the
 * time spent inside clock_nanosleep during the phase.
 *
 * Usage: sleep_phases CYCLES [PHASE_MS [NAP_MS]]   (defaults 4, 400, 10)
 * Build: gcc -O0 -fno-omit-frame-pointer -fno-inline
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_CYCLES 64

static long long clock_us(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* One sleep; returns the microseconds it took. */
__attribute__((noinline)) static long long nap(int ms)
{
    struct timespec req = {ms / 1000, (ms % 1000) * 1000000L};
    long long before = clock_us(CLOCK_MONOTONIC);
    clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
    return clock_us(CLOCK_MONOTONIC) - before;
}

/* Each phase has its own function so its blocked stacks name it. */
#define SLEEP_BODY(phase_ms, nap_ms)                                          \
    long long end = clock_us(CLOCK_MONOTONIC) + (phase_ms) * 1000LL;          \
    long long blocked = 0;                                                    \
    while (clock_us(CLOCK_MONOTONIC) < end)                                   \
        blocked += nap(nap_ms);                                               \
    return blocked;

__attribute__((noinline)) long long sleep_a(int phase_ms, int nap_ms)
{
    SLEEP_BODY(phase_ms, nap_ms)
}

__attribute__((noinline)) long long sleep_b(int phase_ms, int nap_ms)
{
    SLEEP_BODY(phase_ms, nap_ms)
}

int main(int argc, char **argv)
{
    int cycles = argc > 1 ? atoi(argv[1]) : 4;
    int phase_ms = argc > 2 ? atoi(argv[2]) : 400;
    int nap_ms = argc > 3 ? atoi(argv[3]) : 10;
    long long a[MAX_CYCLES][3], b[MAX_CYCLES][3];
    char line[16];

    if (cycles < 1 || cycles > MAX_CYCLES || phase_ms < 1 || nap_ms < 1) {
        fprintf(stderr, "usage: sleep_phases CYCLES(1..%d) [PHASE_MS [NAP_MS]]\n",
                MAX_CYCLES);
        return 2;
    }
    if (!fgets(line, sizeof(line), stdin))
        return 2;
    for (int c = 0; c < cycles; c++) {
        a[c][0] = clock_us(CLOCK_REALTIME);
        a[c][2] = sleep_a(phase_ms, nap_ms);
        a[c][1] = clock_us(CLOCK_REALTIME);
        b[c][0] = clock_us(CLOCK_REALTIME);
        b[c][2] = sleep_b(phase_ms, nap_ms);
        b[c][1] = clock_us(CLOCK_REALTIME);
    }
    for (int c = 0; c < cycles; c++)
        printf("sleep_a %lld %lld %lld\nsleep_b %lld %lld %lld\n", a[c][0], a[c][1], a[c][2],
               b[c][0], b[c][1], b[c][2]);
    return 0;
}
