# shellcheck shell=bash
# Shared helpers for the rig scripts: paths, cache layout, progress lines.
# Sourced, never run.

set -euo pipefail

NESTKIT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NESTKIT_CACHE=${NESTKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nestkit}
# Elapsed time is measured from the top-level command (make exports it).
NESTKIT_T0=${NESTKIT_T0:-$(date +%s)}
export NESTKIT_ROOT NESTKIT_CACHE NESTKIT_T0

# shellcheck source=../kernel/base.env
. "$NESTKIT_ROOT/kernel/base.env"

KERNEL_DIR=$NESTKIT_ROOT/kernel
SRC_TREE=$NESTKIT_CACHE/src          # pristine base + series, rebuilt on demand
BUILD_DIR=$NESTKIT_CACHE/build       # kernel O= output, reused across keys
ARTIFACTS=$NESTKIT_CACHE/artifacts   # one directory per build key
# Plan entries that the demo VMM provides (run as /tests/NAME, a link to it),
# not KVM selftests.
DEMO_TESTS="snapshot_test"
# Plan entries that a nested demo VMM provides: NAME runs
# userspace/demo/nested/NAME.c, built as nestkit-NAME-demo (_ as -), through
# a link /tests/NAME. Not KVM selftests either.
NESTED_TESTS="snapshot_nested vmbus_relay vmware_tools"
# The guest fuzzers: NAME runs userspace/fuzz/kvm/NAME.c, built as
# nestkit-NAME (_ as -), through a link /tests/NAME.
FUZZ_TESTS="fuzz_relay fuzz_vmware fuzz_remote_read fuzz_memory_fault"
# Plan entries that are scripts of rig/guest/ (SCRIPT_NAME_SUFFIX runs
# rig/guest/SCRIPT_NAME, which reads its suffix from its name).
SCRIPT_TESTS="kvm_modules_stock kvm_modules_dkms"
mkdir -p "$NESTKIT_CACHE"

_elapsed() {
	local s=$(( $(date +%s) - NESTKIT_T0 ))
	printf '%02d:%02d' $((s / 60)) $((s % 60))
}

# step "message": announce a long step; ok/warn/die close or report it.
step() { printf '[%s] ==> %s\n' "$(_elapsed)" "$*"; }
info() { printf '[%s]     %s\n' "$(_elapsed)" "$*"; }
warn() { printf '[%s] !!  %s\n' "$(_elapsed)" "$*" >&2; }
die()  { printf '[%s] ERROR: %s\n' "$(_elapsed)" "$*" >&2; exit 1; }

# Run "$@" with its output in a log file; on failure show the tail.
logged() {
	local log=$1; shift
	if ! "$@" >"$log" 2>&1; then
		warn "command failed: $*"
		warn "last lines of $log:"
		tail -n 40 "$log" >&2
		return 1
	fi
}

# Serialize everything that touches the shared source/build trees. Held
# until the script exits or calls release_lock; scripts it runs inherit it
# (fd 9 + NESTKIT_LOCKED), so a caller can hold it across several stages,
# e.g. prepare + build, without another run resetting the tree in between.
with_lock() {
	[ "${NESTKIT_LOCKED:-}" = 1 ] && return 0
	exec 9>"$NESTKIT_CACHE/lock"
	flock 9
	export NESTKIT_LOCKED=1
}
release_lock() {
	[ "${NESTKIT_LOCKED:-}" = 1 ] || return 0
	exec 9>&-
	unset NESTKIT_LOCKED
}

# The series is a list of topics (kernel/series: "TOPIC  # comment" lines),
# each a folder kernel/patches/TOPIC/ holding 0000-cover-letter.patch and
# its patches, numbered in order from 0001. NESTKIT_TOPICS="a b" restricts
# every consumer to those topics (still in series order): check-series uses
# it to apply a topic on the pristine base with only what it depends on.
COVER_LETTER=0000-cover-letter.patch

# kernel/series as "TOPIC REST" lines, REST being the topic's comment.
series_entries() {
	local t rest
	while read -r t rest; do
		case "$t" in ''|'#'*) continue ;; esac
		echo "$t $rest"
	done <"$KERNEL_DIR/series"
}

series_topics() {
	local t _
	series_entries | while read -r t _; do
		if [ -n "${NESTKIT_TOPICS:-}" ]; then
			case " $NESTKIT_TOPICS " in *" $t "*) ;; *) continue ;; esac
		fi
		echo "$t"
	done
}

# One topic's patches, in order; the cover letter is not a patch.
topic_patches() {
	local p
	for p in "$KERNEL_DIR/patches/$1"/[0-9][0-9][0-9][0-9]-*.patch; do
		[ -e "$p" ] || continue
		[ "$(basename "$p")" = "$COVER_LETTER" ] && continue
		echo "$p"
	done
}

# The whole series as a list of patch paths, in order.
series_patches() {
	local t
	for t in $(series_topics); do topic_patches "$t"; done
}

# A patch's name as the rig prints it: TOPIC/NNNN-subject.patch.
patch_name() { echo "$(basename "$(dirname "$1")")/$(basename "$1")"; }

# The topics a topic's cover letter says it applies on top of: its
# "Depends-on:" line, "none" for the pristine base alone.
topic_depends() {
	local d
	d=$(sed -n 's/^Depends-on: *//p' "$KERNEL_DIR/patches/$1/$COVER_LETTER" | head -n 1)
	[ "$d" = none ] || echo "$d" | tr ', ' '\n\n' | grep -v '^$' || true
}

# Print a results.tsv (target, test, status, detail) as an aligned table.
print_results() {
	awk -F'\t' '{ printf "  %-12s %-36s %-6s %s\n", $1, $2, $3, $4 }' "$1"
}

git_kernel() {
	git -c gc.auto=0 -c maintenance.auto=0 -c user.name=nestkit -c user.email=nestkit@localhost \
	    -c advice.detachedHead=false "$@"
}

# A nested demo VMM or guest fuzzer (userspace/demo/nested/, userspace/fuzz/kvm/):
# its binary name, and how it is built: with the KVM selftest library's flags
# (its guest code needs them), against a built tree's uAPI headers.
#   nested_binary_name SRC.c
#   nested_cc SRC.c OUT UAPI_INCLUDE_DIR LIBNESTKIT.a SELFTEST_LIB_OBJECTS...
nested_binary_name() {
	case $1 in
	*/fuzz/kvm/*) echo "nestkit-$(basename "$1" .c | tr _ -)" ;;
	*) echo "nestkit-$(basename "$1" .c | tr _ -)-demo" ;;
	esac
}
nested_cc() {
	local src=$1 out=$2 uapi=$3 lib=$4 kvm=$SRC_TREE/tools/testing/selftests/kvm
	shift 4
	gcc -std=gnu99 -Wall -Wstrict-prototypes -Wuninitialized -Werror \
		-O2 -g -D_GNU_SOURCE -DCONFIG_64BIT -U_FORTIFY_SOURCE \
		-fno-builtin-memcmp -fno-builtin-memcpy -fno-builtin-memset \
		-fno-builtin-strnlen -fno-stack-protector -fno-PIE -fno-strict-aliasing \
		-I"$SRC_TREE/tools/include" -I"$SRC_TREE/tools/arch/x86/include" \
		-isystem "$uapi" -I"$kvm/include" -I"$kvm/include/x86_64" -I"$kvm/.." \
		-I"$NESTKIT_ROOT/userspace/include" -I"$NESTKIT_ROOT/userspace/demo/nested" \
		"$src" "$@" "$lib" -static -no-pie -pthread -ldl -o "$out"
}

# An initramfs with DIR's files added to BASE (a second archive after the
# first: the kernel unpacks both, later files win).
#   overlay_initrd BASE.gz DIR OUT.gz
overlay_initrd() {
	{ cat "$1"; (cd "$2" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) | gzip -1; } >"$3"
}
