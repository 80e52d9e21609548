#!/usr/bin/env bash
# Stage 3: build everything that comes from the patched kernel tree:
# bzImage, the uAPI headers, the KVM selftests named in tests/plans/, and the
# demo VMMs that run nested guests (userspace/demo/nested/: built on the
# selftest library of the same tree, which has the VMX/SVM setup an L1 needs).
# Output: $ARTIFACTS/<key>/{bzImage,config,include/,selftests/,demo/}; the directory
# is printed last on stdout. The key covers base version, the patches (names
# and contents, in order), config and test list, so unchanged inputs are never rebuilt; changed ones
# rebuild incrementally in the shared O= directory, with ccache underneath.
# Usage: build.sh [-t "TOPIC..."] [-n N] [-c extra.config] [-k]
#   -t T  only these topics of kernel/series (a topic and what it depends on)
#   -n N  only the first N patches (bisectability check)
#   -k    kernel only (no headers, no selftests)
. "$(dirname "$0")/common.sh"

npatches=
extra=
kernel_only=0
while getopts t:n:c:k o; do
	case $o in
	t) export NESTKIT_TOPICS=$OPTARG ;;
	n) npatches=$OPTARG ;;
	c) extra=$(realpath "$OPTARG") ;;
	k) kernel_only=1 ;;
	*) die "usage: build.sh [-t TOPICS] [-n N] [-c extra.config] [-k]" ;;
	esac
done

# A config variant (the debug kernel, check-series' KVM_*=n builds) keeps an
# output tree of its own, so switching variants never rebuilds from scratch.
[ -z "$extra" ] || BUILD_DIR=$BUILD_DIR-$(basename "$extra" .config)

installed=$(dpkg-query -W -f='${Version}' "$BASE_PACKAGE" 2>/dev/null) ||
	die "$BASE_PACKAGE is not installed: run 'make deps'"
mapfile -t tests < <("$NESTKIT_ROOT/rig/plan.sh" --all-binaries)
mapfile -t patches < <(series_patches | head -n "${npatches:-100000}")
key=$( {
	echo "$installed ${npatches:-all} $kernel_only $(gcc -dumpfullversion)"
	for p in "${patches[@]}"; do patch_name "$p"; done
	cat "$KERNEL_DIR/config/nestkit.config"
	[ -z "$extra" ] || cat "$extra"
	[ ${#patches[@]} = 0 ] || cat "${patches[@]}"
	# A kernel-only build does not depend on the tests and demos.
	[ "$kernel_only" = 1 ] || {
		echo "${tests[@]}"
		cat "$NESTKIT_ROOT"/userspace/demo/nested/*.[ch] "$NESTKIT_ROOT"/userspace/fuzz/kvm/*.[ch] \
		    "$NESTKIT_ROOT"/userspace/lib/*.c "$NESTKIT_ROOT"/userspace/include/nestkit/*.h
	}
} | sha256sum | cut -c1-16)
out=$ARTIFACTS/$key
if [ -f "$out/done" ]; then
	info "reusing build $key (base + patches + config + tests unchanged)" >&2
	echo "$out"
	exit 0
fi

with_lock
"$NESTKIT_ROOT/rig/prepare.sh" $npatches >&2
export CCACHE_DIR=$NESTKIT_CACHE/ccache CCACHE_MAXSIZE=5G
export KBUILD_BUILD_TIMESTAMP="2000-01-01" KBUILD_BUILD_USER=nestkit KBUILD_BUILD_HOST=rig
kmake() { make -C "$SRC_TREE" O="$BUILD_DIR" CC="ccache gcc" "$@"; }
rm -rf "$out"
mkdir -p "$BUILD_DIR" "$out"
log=$out/build.log
jobs=$(($(nproc) + 1))

step "configuring kernel (tinyconfig + nestkit.config${extra:+ + $(basename "$extra")})" >&2
frags=("$KERNEL_DIR/config/nestkit.config")
[ -z "$extra" ] || frags+=("$extra")
logged "$log" kmake tinyconfig
logged "$log" "$SRC_TREE/scripts/kconfig/merge_config.sh" -m -O "$BUILD_DIR" \
	"$BUILD_DIR/.config" "${frags[@]}"
logged "$log" kmake olddefconfig
# merge_config only warns when Kconfig drops a request: make it fatal.
# Later fragments override earlier ones, as in merge_config.
declare -A want=()
order=()
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) opt=${line%%=*}; val=$line ;;
	'# CONFIG_'*' is not set') opt=${line#\# }; opt=${opt%% *}; val="$opt=n" ;;
	*) continue ;;
	esac
	[ -n "${want[$opt]:-}" ] || order+=("$opt")
	want[$opt]=$val
done < <(cat "${frags[@]}")
bad=0
for opt in "${order[@]}"; do
	have=$(grep -E "^$opt=|^# $opt is not set" "$BUILD_DIR/.config" || true)
	case "${want[$opt]}" in
	*=n) [[ -z "$have" || "$have" == "# $opt is not set" ]] && continue ;;
	*) [ "$have" = "${want[$opt]}" ] && continue ;;
	esac
	warn "config: asked for ${want[$opt]}, got '${have:-unset}' (missing dependency?)"
	bad=1
done
[ "$bad" = 0 ] || die "kernel config does not honour the fragment"
cp "$BUILD_DIR/.config" "$out/config"

step "building bzImage on $(nproc) cores (first build about 7 min, later ones incremental)" >&2
t=$(date +%s)
logged "$log" kmake -j"$jobs" bzImage ||
	die "kernel build failed: $(grep -m1 -E 'error:|Error [0-9]' "$log" || echo "see $log")"
cp "$BUILD_DIR/arch/x86/boot/bzImage" "$out/"
# The functions of KVM (arch/x86/kvm with virt/kvm, all built in), without
# compiler suffixes (.constprop.0), and only names no other part of the
# kernel has (System.map lists them once): the debug targets fail a
# kmemleak report with one of them in its backtrace.
nm --defined-only "$BUILD_DIR/arch/x86/kvm/built-in.a" 2>/dev/null |
	awk '$2 ~ /^[tTwW]$/ { sub(/\..*/, "", $3); print $3 }' | LC_ALL=C sort -u >"$out/kvm-functions.all"
awk '{ sub(/\..*/, "", $3); print $3 }' "$BUILD_DIR/System.map" | LC_ALL=C sort | uniq -d >"$out/ambiguous"
LC_ALL=C comm -23 "$out/kvm-functions.all" "$out/ambiguous" >"$out/kvm-functions"
rm -f "$out/kvm-functions.all" "$out/ambiguous"
[ -s "$out/kvm-functions" ] || die "no KVM functions in $BUILD_DIR/arch/x86/kvm/built-in.a"
info "bzImage built in $(($(date +%s) - t)) s, $(du -k "$out/bzImage" | cut -f1) KiB" >&2

if [ "$kernel_only" = 0 ]; then
	step "building ${#tests[@]} KVM selftests from the patched tree" >&2
	t=$(date +%s)
	logged "$log" kmake headers
	mkdir -p "$out/include"
	cp -a "$BUILD_DIR/usr/include/." "$out/include/"
	# Fresh output dir each time (ccache keeps it fast): selftest objects have
	# no dependency tracking on the copied uAPI headers.
	stdir=$NESTKIT_CACHE/selftests-build
	rm -rf "$stdir"
	targets=()
	for tst in "${tests[@]}"; do targets+=("$stdir/x86_64/$tst"); done
	# Static binaries: the initramfs then needs no libc.
	logged "$log" make -C "$SRC_TREE/tools/testing/selftests/kvm" -j"$jobs" \
		CC="ccache gcc" OUTPUT="$stdir" EXTRA_CFLAGS=-static \
		KHDR_INCLUDES="-isystem $out/include" "${targets[@]}" ||
		die "selftest build failed: $(grep -m1 -E 'error:' "$log" || echo "see $log")"
	mkdir -p "$out/selftests"
	for tst in "${tests[@]}"; do cp "$stdir/x86_64/$tst" "$out/selftests/"; done
	info "selftests built in $(($(date +%s) - t)) s" >&2

	step "building the nested demo VMMs against the selftest library" >&2
	kvm=$SRC_TREE/tools/testing/selftests/kvm
	mkdir -p "$out/demo"
	# libnestkit as the userspace build compiles it, as an archive (only
	# what a demo uses is linked); the demo itself with the selftest
	# library's flags (its guest code needs them).
	mkdir -p "$stdir/libnestkit"
	for src in "$NESTKIT_ROOT"/userspace/lib/*.c; do
		logged "$log" gcc -std=c11 -Wall -Wextra -Werror -O2 -D_GNU_SOURCE \
			-isystem "$out/include" -I"$NESTKIT_ROOT/userspace/include" \
			-c "$src" -o "$stdir/libnestkit/$(basename "$src" .c).o" ||
			die "nested demo build failed (libnestkit): see $log"
	done
	ar rcs "$stdir/libnestkit.a" "$stdir"/libnestkit/*.o
	mapfile -t libkvm < <(find "$stdir/lib" -name '*.o' | LC_ALL=C sort)
	# The guest fuzzers (userspace/fuzz/kvm/) are L0 VMMs of the same kind.
	for src in "$NESTKIT_ROOT"/userspace/demo/nested/*.c "$NESTKIT_ROOT"/userspace/fuzz/kvm/*.c; do
		[ -f "$src" ] || continue
		name=$(nested_binary_name "$src")
		logged "$log" nested_cc "$src" "$out/demo/$name" "$out/include" "$stdir/libnestkit.a" \
			"${libkvm[@]}" ||
			die "nested demo build failed: $(grep -m1 -E 'error:' "$log" || echo "see $log")"
	done
	info "nested demo VMMs and guest fuzzers: $(cd "$out/demo" && echo *)" >&2
fi
touch "$out/done"
echo "$out"
