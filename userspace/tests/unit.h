/* SPDX-License-Identifier: GPL-2.0 */
/* A minimal unit-test harness: CHECK() records, unit_done() summarizes. */
#ifndef NESTKIT_UNIT_H
#define NESTKIT_UNIT_H

#include <stdio.h>

static int unit_passed, unit_failed;

#define CHECK(cond)							\
	do {								\
		if (cond) {						\
			unit_passed++;					\
		} else {						\
			unit_failed++;					\
			fprintf(stderr, "%s:%d: CHECK failed: %s\n",	\
				__FILE__, __LINE__, #cond);		\
		}							\
	} while (0)

static inline int unit_done(const char *suite)
{
	printf("%s: %d checks passed, %d failed\n", suite, unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#endif
