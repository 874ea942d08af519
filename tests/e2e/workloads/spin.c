/*
 * Busy-loop workload with known function names for the end-to-end test.
 *
 * Build with -O0 -fno-omit-frame-pointer -fno-inline so the collector's
 * frame-pointer unwinding sees main -> webprof_spin_outer -> webprof_spin_inner
 * (at -O1, gcc 12 gives the leaf function no frame and its caller vanishes).
 * Runs for argv[1] seconds (default 10), then exits.
 */
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

__attribute__((noinline)) void webprof_spin_inner(void)
{
    for (unsigned long i = 0; i < 200000; i++)
        sink += i * 2654435761UL;
}

__attribute__((noinline)) void webprof_spin_outer(void)
{
    for (int i = 0; i < 50; i++)
        webprof_spin_inner();
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 10.0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        webprof_spin_outer();
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
    return 0;
}
