/*
 * offcpu_split.c - blocks ~2/3 of its time in wait_for_feeder() and ~1/3 in
 * nap(), by design, and measures what it really did.
 *
 * The worker thread loops: wait_for_feeder() asks the feeder thread for a
 * byte and blocks in read() on a pipe until the feeder answers, which it does
 * FEED_DELAY_NS (20 ms) after the request; then nap() sleeps NAP_NS (10 ms)
 * with nanosleep.  So the worker is blocked 20 ms in the pipe read and 10 ms
 * in the sleep per round: 2/3 and 1/3.  The feeder's answer is written by
 * feed(), which is therefore the waker of the pipe read (off-wake test).
 *
 * Each function measures its own blocked time with CLOCK_MONOTONIC; at the
 * end (after ARGV[1] seconds, or on SIGTERM) the program prints
 * "wait_for_feeder NS" and "nap NS" so a test can check the design holds.
 *
 * glibc's syscall wrappers (read, write, nanosleep) keep no frame pointer, so
 * a frame-pointer unwind from inside one skips its direct caller.  Every
 * syscall therefore goes through a helper (read_byte, write_byte, sleep_ns)
 * that is the frame lost, and the functions that matter stay in the stack.
 *
 * Build: gcc -O0 -fno-omit-frame-pointer -fno-inline -pthread
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define FEED_DELAY_NS 20000000L
#define NAP_NS 10000000L

static volatile sig_atomic_t stop;
static int request_pipe[2], answer_pipe[2];
static long long waited_ns, napped_ns;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

__attribute__((noinline)) int read_byte(int fd)
{
    char byte;
    return read(fd, &byte, 1) == 1 ? byte : -1;
}

__attribute__((noinline)) int write_byte(int fd, char byte)
{
    return write(fd, &byte, 1) == 1 ? 0 : -1;
}

__attribute__((noinline)) void sleep_ns(long ns)
{
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    while (nanosleep(&ts, &ts) != 0 && !stop)
        ;
}

__attribute__((noinline)) void feed(void)
{
    volatile char byte = 'x';
    if (write_byte(answer_pipe[1], byte) != 0)
        stop = 1;
}

__attribute__((noinline)) void *feeder_loop(void *unused)
{
    (void)unused;
    while (read_byte(request_pipe[0]) == 'r') {
        sleep_ns(FEED_DELAY_NS);
        feed();
    }
    return NULL;
}

__attribute__((noinline)) void wait_for_feeder(void)
{
    volatile char byte = 'r';
    long long t0;
    if (write_byte(request_pipe[1], byte) != 0)
        return;
    t0 = now_ns();
    if (read_byte(answer_pipe[0]) != 'x')
        stop = 1;
    waited_ns += now_ns() - t0;
}

__attribute__((noinline)) void nap(void)
{
    volatile long ns = NAP_NS;
    long long t0 = now_ns();
    sleep_ns(ns);
    napped_ns += now_ns() - t0;
}

__attribute__((noinline)) void *worker_loop(void *unused)
{
    (void)unused;
    while (!stop) {
        wait_for_feeder();
        nap();
    }
    return NULL;
}

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 5.0;
    long long end;
    pthread_t worker, feeder;
    char quit = 'q';

    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    if (pipe(request_pipe) || pipe(answer_pipe))
        return 1;
    pthread_create(&feeder, NULL, feeder_loop, NULL);
    pthread_create(&worker, NULL, worker_loop, NULL);
    end = now_ns() + (long long)(seconds * 1e9);
    while (!stop && now_ns() < end)
        usleep(50000);
    stop = 1;
    pthread_join(worker, NULL);
    if (write(request_pipe[1], &quit, 1) != 1)
        return 1;
    pthread_join(feeder, NULL);
    printf("wait_for_feeder %lld\nnap %lld\n", waited_ns, napped_ns);
    fflush(stdout);
    return 0;
}
