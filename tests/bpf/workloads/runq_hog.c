/*
 * runq_hog.c - ground truth for run-queue latency: more runnable threads
 * than CPUs.
 *
 * usage: runq_hog THREADS SECONDS
 *
 * THREADS threads spin without blocking for SECONDS.  With more threads than
 * CPUs the scheduler time-slices them, so every preempted thread waits on a
 * run queue for roughly (THREADS / CPUs - 1) slices of a few milliseconds
 * before it runs again: the run-queue latency of the whole system moves from
 * microseconds (idle) to milliseconds.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static void *spin(void *arg)
{
    volatile unsigned long counter = 0;
    double end = now_s() + seconds;

    (void)arg;
    while (now_s() < end)
        for (int i = 0; i < 100000; i++)
            counter++;
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 8;
    pthread_t tids[256];

    seconds = argc > 2 ? atof(argv[2]) : 3.0;
    if (threads < 1 || threads > 256)
        return 2;
    for (int i = 0; i < threads; i++)
        pthread_create(&tids[i], NULL, spin, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    return 0;
}
