/*
 * probes_guarded.c - a USDT probe with a semaphore, for probes.c.
 *
 * _SDT_HAS_SEMAPHORES makes every probe of this file test its counter
 * (provider_name_semaphore, in the .probes section) before firing, as
 * dtrace -G generated code does; a tracer must raise the counter for the
 * probe to fire.  Kept in its own file so probes.c's probes stay unguarded.
 */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

__extension__ unsigned short webprof_guarded_hit_semaphore
    __attribute__((unused)) __attribute__((section(".probes")));

__attribute__((noinline)) void guarded_hit(void)
{
    DTRACE_PROBE(webprof_guarded, hit);
}
