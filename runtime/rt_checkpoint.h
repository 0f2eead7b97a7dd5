/* rt_checkpoint.h -- test hooks of the checkpoint writer (checkpoint.c).
 * Not a public header. */
#ifndef KILN_RT_CHECKPOINT_H
#define KILN_RT_CHECKPOINT_H

/* When nbytes >= 0, the next checkpoint save stops after writing nbytes of
 * its temporary file and returns KILN_ERR_IO as if the process had died
 * there: the temporary file is left behind and never renamed over the
 * checkpoint. The hook then turns itself off. -1 turns it off. Not
 * thread-safe; for tests only. */
void rt_checkpoint_crash_after(long nbytes);

#endif
