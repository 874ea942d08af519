/*
 * sleeper.c - ground truth for syscall latency: sleeps a fixed time in a loop.
 *
 * usage: sleeper SECONDS [SLEEP_US]   (SLEEP_US defaults to 2000)
 *
 * Each iteration is one clock_nanosleep(CLOCK_MONOTONIC) of SLEEP_US.  The
 * timer never fires early; with the default 50 us timer slack it fires in
 * [2000, 2050] us, normally at the hard end (2050) unless another timer
 * interrupt arrives first, and wake-up and system call overhead come on top:
 * most 2000 us sleeps last 2050-2300 us, inside the [2048, 4096) us log2
 * bucket, a few just under 2048.  Prints the number of sleeps and their mean
 * duration in microseconds on exit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static void sleep_once(long sleep_us)
{
    volatile int keep_frame = 0;
    struct timespec req = {sleep_us / 1000000, (sleep_us % 1000000) * 1000};
    clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
    (void)keep_frame;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 5.0;
    long sleep_us = argc > 2 ? atol(argv[2]) : 2000;
    double start = now_s(), end = start + seconds;
    long n = 0;

    while (now_s() < end) {
        sleep_once(sleep_us);
        n++;
    }
    printf("%ld %.0f\n", n, n ? (now_s() - start) * 1e6 / n : 0.0);
    return 0;
}
