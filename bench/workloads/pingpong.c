/*
 * pingpong.c - a context-switch storm: PAIRS thread pairs pass one byte back
 * and forth over two pipes, so every hop blocks one thread and wakes the
 * other.  Runs SECONDS, then prints "round_trips N seconds S" (a round trip
 * is two hops, at least two context switches).
 *
 * Usage: pingpong PAIRS SECONDS
 * Build: gcc -O2 -pthread
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct pair {
    int ping[2], pong[2];
    long round_trips;
};

static volatile int stop;

static void *pinger(void *arg)
{
    struct pair *p = arg;
    char byte = 'x';
    while (!stop) {
        if (write(p->ping[1], &byte, 1) != 1 || read(p->pong[0], &byte, 1) != 1)
            break;
        p->round_trips++;
    }
    close(p->ping[1]);  /* lets the ponger's read return 0 */
    return NULL;
}

static void *ponger(void *arg)
{
    struct pair *p = arg;
    char byte;
    while (read(p->ping[0], &byte, 1) == 1)
        if (write(p->pong[1], &byte, 1) != 1)
            break;
    close(p->pong[1]);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int pairs = argc > 1 ? atoi(argv[1]) : 2;
    double seconds = argc > 2 ? atof(argv[2]) : 5.0, t0, elapsed;
    struct pair *p = calloc(pairs, sizeof(*p));
    pthread_t *threads = calloc(2 * pairs, sizeof(*threads));
    long total = 0;

    t0 = now_s();
    for (int i = 0; i < pairs; i++) {
        if (pipe(p[i].ping) || pipe(p[i].pong))
            return 1;
        pthread_create(&threads[2 * i], NULL, pinger, &p[i]);
        pthread_create(&threads[2 * i + 1], NULL, ponger, &p[i]);
    }
    usleep((useconds_t)(seconds * 1e6));
    stop = 1;
    elapsed = now_s() - t0;
    for (int i = 0; i < 2 * pairs; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < pairs; i++)
        total += p[i].round_trips;
    printf("round_trips %ld seconds %.3f\n", total, elapsed);
    return 0;
}
