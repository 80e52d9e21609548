/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NESTKIT_DEMO_SNAPSHOT_TEST_H
#define NESTKIT_DEMO_SNAPSHOT_TEST_H

/* "snapshot-test [--backend mprotect|uffd|both] [--runs N] [--pages N]" */
int nk_snapshot_test(int argc, char **argv);
/* "snapshot-bench [--pages N]...": per-fault cost, snapshot time, stall */
int nk_snapshot_bench(int argc, char **argv);

#endif
