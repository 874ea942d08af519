/*
 * Busy-loop workload for the browser test: known, distinctive function names
 * in a fixed call chain main -> browser_spin_outer -> browser_spin_inner.
 *
 * Build: cc -O1 -fno-omit-frame-pointer -fno-inline
 * The leaf keeps a volatile local on purpose: Debian 12's gcc 12 at -O1 sets
 * up no frame in a leaf that needs no stack, even with -fno-omit-frame-pointer
 * and -mno-omit-leaf-frame-pointer, and a frame-pointer unwinder sampling in
 * such a leaf skips its caller (browser_spin_outer would vanish).
 * Runs for argv[1] seconds (default 10), then exits.
 */
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

__attribute__((noinline)) void browser_spin_inner(void)
{
    volatile unsigned long acc = 0; /* on the stack: forces a frame, see above */
    for (unsigned long i = 0; i < 200000; i++)
        acc += i * 2654435761UL;
    sink += acc;
}

__attribute__((noinline)) void browser_spin_outer(void)
{
    for (int i = 0; i < 50; i++)
        browser_spin_inner();
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 10.0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        browser_spin_outer();
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
    return 0;
}
