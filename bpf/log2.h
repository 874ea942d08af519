/* log2_slot(v): the log2 histogram slot of v, shared by the latency programs.
 *
 * Slot 0 holds v == 0; slot r holds [2^(r-1), 2^r), i.e. floor(log2(v)) + 1,
 * capped at MAX_SLOT (which the including program defines).  Only map-free
 * helpers live in headers: bcc rewrites map method calls (m.lookup(), ...)
 * in the main file only, so code touching maps stays in each program. */
#ifndef WEBPROF_LOG2_H
#define WEBPROF_LOG2_H

static __always_inline u32 log2_slot(u64 v)
{
    u32 r = 0;

    if (v == 0)
        return 0;
    if (v >> 32) { v >>= 32; r += 32; }
    if (v >> 16) { v >>= 16; r += 16; }
    if (v >> 8) { v >>= 8; r += 8; }
    if (v >> 4) { v >>= 4; r += 4; }
    if (v >> 2) { v >>= 2; r += 2; }
    if (v >> 1) { r += 1; }
    r += 1;
    return r > MAX_SLOT ? MAX_SLOT : r;
}

#endif
