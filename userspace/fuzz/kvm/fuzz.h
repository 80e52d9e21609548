/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shared by the guest fuzzers (userspace/fuzz/kvm/): L0 VMMs on the KVM
 * selftest library that drive random operations through L1 and L2 and check
 * every outcome against a reference model of the decision.
 *
 * Every random choice is made here, in the VMM, from one seeded generator
 * (xoshiro256**, seeded by splitmix64), and handed to the guests as data:
 * a seed replays the same run.  A run prints its seed and iteration count
 * first, its counts last, and fails on the first model mismatch with the
 * operation that caused it.
 */
#ifndef NESTKIT_FUZZ_H
#define NESTKIT_FUZZ_H

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fuzz_rng {
	uint64_t s[4];
};

static inline uint64_t fuzz_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline void fuzz_rng_seed(struct fuzz_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = fuzz_splitmix64(&seed);
}

static inline uint64_t fuzz_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t fuzz_u64(struct fuzz_rng *r)
{
	uint64_t *s = r->s, result = fuzz_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = fuzz_rotl(s[3], 45);
	return result;
}

/* Uniform in [0, n), n > 0 (the bias of the modulo is irrelevant here). */
static inline uint64_t fuzz_below(struct fuzz_rng *r, uint64_t n)
{
	return fuzz_u64(r) % n;
}

/* True with probability num/den. */
static inline int fuzz_chance(struct fuzz_rng *r, unsigned int num, unsigned int den)
{
	return fuzz_below(r, den) < num;
}

/* One element of a constant array. */
#define fuzz_pick(r, arr) ((arr)[fuzz_below((r), sizeof(arr) / sizeof((arr)[0]))])

struct fuzz_opts {
	uint64_t seed;
	uint64_t iterations;
};

static inline uint64_t fuzz_parse_u64(const char *prog, const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-') {
		fprintf(stderr, "%s: %s needs a non-negative integer, not '%s'\n", prog, opt, s);
		exit(2);
	}
	return v;
}

/*
 * --seed N and --iterations N (decimal or 0x hex); anything else is an
 * error.  The defaults are the fuzzer's own, fixed so that a plan run
 * is the same run every time.
 */
static inline struct fuzz_opts fuzz_parse(int argc, char **argv, const char *prog,
					  uint64_t seed, uint64_t iterations)
{
	struct fuzz_opts o = { .seed = seed, .iterations = iterations };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			o.seed = fuzz_parse_u64(prog, "--seed", argv[++i]);
		} else if (!strcmp(argv[i], "--iterations") && i + 1 < argc) {
			o.iterations = fuzz_parse_u64(prog, "--iterations", argv[++i]);
			if (!o.iterations) {
				fprintf(stderr, "%s: --iterations must be at least 1\n", prog);
				exit(2);
			}
		} else {
			fprintf(stderr, "usage: %s [--seed N] [--iterations N]\n", prog);
			exit(2);
		}
	}
	printf("%s: seed 0x%" PRIx64 " iterations %" PRIu64 " (replay: --seed 0x%" PRIx64
	       " --iterations %" PRIu64 ")\n", prog, o.seed, o.iterations, o.seed, o.iterations);
	fflush(stdout);
	return o;
}

/*
 * Outcome counters, printed at the end: a run that never reached an
 * outcome the model allows is visible in the output.
 */
struct fuzz_counter {
	const char *name;
	uint64_t n;
};

static inline void fuzz_print_counters(const char *prog, const struct fuzz_counter *c, int nr)
{
	for (int i = 0; i < nr; i++)
		printf("%s:   %-40s %" PRIu64 "\n", prog, c[i].name, c[i].n);
}

/*
 * The last line of every run, parsed by nobody but read by everyone:
 * "PROG: seed S iterations N guest-ops N mismatches N".
 */
static inline void fuzz_summary(const char *prog, const struct fuzz_opts *o,
				uint64_t guest_ops, uint64_t mismatches)
{
	printf("%s: seed 0x%" PRIx64 " iterations %" PRIu64 " guest-ops %" PRIu64
	       " mismatches %" PRIu64 "\n", prog, o->seed, o->iterations, guest_ops, mismatches);
	fflush(stdout);
}

#endif
