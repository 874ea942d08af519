/*
 * Ground-truth workload for sub-second time in CPU profiles.
 *
 * Alternates two busy phases of fixed wall-clock length, each in its own
 * function, so a profile's time slots can be checked against when each phase
 * really ran:
 *
 *   main -> phase_a   (spins for PHASE_MS milliseconds)
 *   main -> phase_b   (spins for PHASE_MS milliseconds)
 *
 * On exit it prints one line per phase run, "phase_a START_US END_US", in
 * CLOCK_REALTIME microseconds (the clock of the protocol's start_ms), taken
 * right before the phase's first and after its last instruction.
 *
 * Usage: phases CYCLES [PHASE_MS]   (defaults 4 and 400)
 * Build: gcc -O1 -fno-omit-frame-pointer -fno-inline -fno-optimize-sibling-calls
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_CYCLES 64

static volatile unsigned long sink;

static long long clock_us(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* Each phase runs its own loop (no shared helper) so that a sample taken in
 * it has the phase as its innermost named frame. */
#define SPIN_BODY(ms)                                                         \
    long long end = clock_us(CLOCK_MONOTONIC) + (ms) * 1000LL;                \
    unsigned long x = sink;                                                   \
    while (clock_us(CLOCK_MONOTONIC) < end) {                                 \
        for (int i = 0; i < 2000; i++)                                        \
            x = x * 6364136223846793005UL + 1442695040888963407UL;            \
    }                                                                         \
    sink = x;

__attribute__((noinline)) void phase_a(int ms) { SPIN_BODY(ms) }
__attribute__((noinline)) void phase_b(int ms) { SPIN_BODY(ms) }

int main(int argc, char **argv)
{
    int cycles = argc > 1 ? atoi(argv[1]) : 4;
    int phase_ms = argc > 2 ? atoi(argv[2]) : 400;
    long long a[MAX_CYCLES][2], b[MAX_CYCLES][2];

    if (cycles < 1 || cycles > MAX_CYCLES || phase_ms < 1) {
        fprintf(stderr, "usage: phases CYCLES(1..%d) [PHASE_MS]\n", MAX_CYCLES);
        return 2;
    }
    for (int c = 0; c < cycles; c++) {
        a[c][0] = clock_us(CLOCK_REALTIME);
        phase_a(phase_ms);
        a[c][1] = clock_us(CLOCK_REALTIME);
        b[c][0] = clock_us(CLOCK_REALTIME);
        phase_b(phase_ms);
        b[c][1] = clock_us(CLOCK_REALTIME);
    }
    for (int c = 0; c < cycles; c++)
        printf("phase_a %lld %lld\nphase_b %lld %lld\n", a[c][0], a[c][1], b[c][0], b[c][1]);
    return 0;
}
