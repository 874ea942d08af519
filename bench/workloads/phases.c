/*
 * Phased CPU workload for the end-to-end latency benchmark (bench/e2e_latency.py).
 *
 * Runs an optional warm-up (function `warmup`), then phase functions with
 * distinct names, phase_00, phase_01, ..., one after the other on one thread,
 * each busy on the CPU for a fixed time.  Just before entering a phase it
 * prints "phase_NN <ms>" to stdout and flushes, <ms> being CLOCK_REALTIME in
 * unix milliseconds: the same wall clock as the browser's Date.now(), so the
 * benchmark can subtract the two.  At the end it prints "done <ms>".
 *
 * Usage: phases [N_PHASES (1..30, default 15)] [PHASE_MS (default 2500)]
 *               [WARMUP_MS (default 0)]
 *
 * Build: gcc -O0 -fno-omit-frame-pointer -fno-inline
 * Every phase is a leaf that keeps a `volatile` local: Debian 12's gcc sets up
 * no frame in a leaf that needs no stack at -O1 and above, and a frame-pointer
 * unwinder sampling in such a leaf skips its caller.  The clock is read only
 * every 100k iterations, so samples rarely land in the vdso's clock_gettime
 * (which has no frame and would hide the phase function from the stack).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_PHASES 30
#define SPIN_CHUNK 100000UL

static volatile unsigned long sink;

__attribute__((noinline)) static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

__attribute__((noinline)) static long long wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* One busy leaf per name; the body is the same, the symbol is what differs. */
#define PHASE(name)                                                          \
	__attribute__((noinline)) void name(double until_ms)                 \
	{                                                                    \
		volatile unsigned long acc = 0; /* forces a frame, see above */ \
		do {                                                         \
			for (unsigned long i = 0; i < SPIN_CHUNK; i++)       \
				acc += i * 2654435761UL;                     \
		} while (mono_ms() < until_ms);                              \
		sink += acc;                                                 \
	}

PHASE(warmup)
PHASE(phase_00) PHASE(phase_01) PHASE(phase_02) PHASE(phase_03) PHASE(phase_04)
PHASE(phase_05) PHASE(phase_06) PHASE(phase_07) PHASE(phase_08) PHASE(phase_09)
PHASE(phase_10) PHASE(phase_11) PHASE(phase_12) PHASE(phase_13) PHASE(phase_14)
PHASE(phase_15) PHASE(phase_16) PHASE(phase_17) PHASE(phase_18) PHASE(phase_19)
PHASE(phase_20) PHASE(phase_21) PHASE(phase_22) PHASE(phase_23) PHASE(phase_24)
PHASE(phase_25) PHASE(phase_26) PHASE(phase_27) PHASE(phase_28) PHASE(phase_29)

static void (*const phases[MAX_PHASES])(double) = {
	phase_00, phase_01, phase_02, phase_03, phase_04, phase_05, phase_06, phase_07,
	phase_08, phase_09, phase_10, phase_11, phase_12, phase_13, phase_14, phase_15,
	phase_16, phase_17, phase_18, phase_19, phase_20, phase_21, phase_22, phase_23,
	phase_24, phase_25, phase_26, phase_27, phase_28, phase_29,
};

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 15;
	double phase_ms = argc > 2 ? atof(argv[2]) : 2500.0;
	double warmup_ms = argc > 3 ? atof(argv[3]) : 0.0;
	if (n < 1 || n > MAX_PHASES || phase_ms <= 0 || warmup_ms < 0) {
		fprintf(stderr, "usage: phases [N_PHASES 1..%d] [PHASE_MS > 0] [WARMUP_MS >= 0]\n",
			MAX_PHASES);
		return 2;
	}
	if (warmup_ms > 0)
		warmup(mono_ms() + warmup_ms);
	for (int k = 0; k < n; k++) {
		/* Stamp first, then enter: no sample of phase k can precede its stamp. */
		printf("phase_%02d %lld\n", k, wall_ms());
		fflush(stdout);
		phases[k](mono_ms() + phase_ms);
	}
	printf("done %lld\n", wall_ms());
	fflush(stdout);
	return 0;
}
