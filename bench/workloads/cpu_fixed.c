/*
 * Fixed CPU-bound work on every core, for measuring profiler overhead.
 *
 * Starts one thread per CPU (or argv[1] threads); each performs the same
 * fixed number of iterations (argv[2], default 3 billion) through a
 * three-deep call chain, then the program prints its wall time in seconds.
 * A profiler's overhead shows up as a longer wall time for the same work.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long iterations = 3000000000L;

__attribute__((noinline)) static unsigned long mix(unsigned long x)
{
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

__attribute__((noinline)) static unsigned long chunk(unsigned long x, long n)
{
	for (long i = 0; i < n; i++)
		x = mix(x + (unsigned long)i);
	return x;
}

__attribute__((noinline)) static void *worker(void *arg)
{
	unsigned long x = (unsigned long)arg + 1;
	for (long done = 0; done < iterations; done += 1000)
		x = chunk(x, 1000);
	return (void *)x;
}

int main(int argc, char **argv)
{
	long threads = sysconf(_SC_NPROCESSORS_ONLN);
	if (argc > 1)
		threads = atol(argv[1]);
	if (argc > 2)
		iterations = atol(argv[2]);
	pthread_t tid[256];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < threads && i < 256; i++)
		pthread_create(&tid[i], NULL, worker, (void *)i);
	unsigned long sink = 0;
	for (long i = 0; i < threads && i < 256; i++) {
		void *r;
		pthread_join(tid[i], &r);
		sink ^= (unsigned long)r;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.6f %lu\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, sink & 1);
	return 0;
}
