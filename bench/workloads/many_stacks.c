/*
 * many_stacks.c - a CPU-bound workload with 16,384 distinct user call paths,
 * for bench/drain_bench.py (how long one drain of 10,000+ stacks takes).
 *
 * A complete binary tree of noinline functions, 14 levels below the root
 * t(): every inner node calls its left or right child by one bit of a
 * pseudo-random path number, so each call walks root -> leaf along one of
 * 2^14 paths, each leaf equally likely.  Leaves spin for a few microseconds,
 * so nearly every sample lands in a leaf and every leaf has its own name and
 * its own stack (t, t0, t01, ..., t01101001110100).  The tree is spelled out
 * with macros: 32,767 small functions, about 10 s to compile at -O0.
 *
 * Build:  gcc -O0 -fno-omit-frame-pointer -fno-inline many_stacks.c
 * Run:    many_stacks SECONDS      (one process per CPU: the bench starts them)
 * Prints: the number of root -> leaf walks done.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SPIN 1500  /* loop iterations per leaf visit: a few microseconds at -O0 */

static volatile uint64_t sink;

#define LEAF(name)                                                   \
    __attribute__((noinline)) void name(uint32_t path)               \
    {                                                                \
        for (volatile int i = 0; i < SPIN; i++)                      \
            sink += path;                                            \
    }

#define NODE(name, left, right)                                      \
    __attribute__((noinline)) void name(uint32_t path)               \
    {                                                                \
        if (path & 1)                                                \
            right(path >> 1);                                        \
        else                                                         \
            left(path >> 1);                                         \
    }

/* T<n>(p) defines the subtree of depth n rooted at function p: children
 * first (p0, p1), then p itself.  Pasting keeps every name unique. */
#define T0(p) LEAF(p)
#define T1(p) T0(p##0) T0(p##1) NODE(p, p##0, p##1)
#define T2(p) T1(p##0) T1(p##1) NODE(p, p##0, p##1)
#define T3(p) T2(p##0) T2(p##1) NODE(p, p##0, p##1)
#define T4(p) T3(p##0) T3(p##1) NODE(p, p##0, p##1)
#define T5(p) T4(p##0) T4(p##1) NODE(p, p##0, p##1)
#define T6(p) T5(p##0) T5(p##1) NODE(p, p##0, p##1)
#define T7(p) T6(p##0) T6(p##1) NODE(p, p##0, p##1)
#define T8(p) T7(p##0) T7(p##1) NODE(p, p##0, p##1)
#define T9(p) T8(p##0) T8(p##1) NODE(p, p##0, p##1)
#define T10(p) T9(p##0) T9(p##1) NODE(p, p##0, p##1)
#define T11(p) T10(p##0) T10(p##1) NODE(p, p##0, p##1)
#define T12(p) T11(p##0) T11(p##1) NODE(p, p##0, p##1)
#define T13(p) T12(p##0) T12(p##1) NODE(p, p##0, p##1)
#define T14(p) T13(p##0) T13(p##1) NODE(p, p##0, p##1)

T14(t)

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 10.0;
    double end = now_s() + seconds;
    uint64_t state = 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&end;
    uint64_t walks = 0;

    while (now_s() < end) {
        for (int i = 0; i < 256; i++, walks++) {
            /* xorshift64: cheap, and no period aliasing with the sampler. */
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            t((uint32_t)(state >> 20));
        }
    }
    printf("%llu\n", (unsigned long long)walks);
    return 0;
}
