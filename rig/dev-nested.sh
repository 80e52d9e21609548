#!/usr/bin/env bash
# Developer loop for one nested demo VMM (userspace/demo/nested/*.c) or
# guest fuzzer (userspace/fuzz/kvm/*.c): build it
# as rig/build.sh does, boot a cached kernel on one vendor with it added to
# the initramfs, and print its console output. Not part of "make check".
# Usage: dev-nested.sh [-k KERNEL_BUILD] [-t SECONDS] SRC.c VENDOR [ARGS...]
# $NESTKIT_DEV_CMDLINE: more kernel parameters (e.g. maxcpus=1).
#   -k  an artifacts directory with bzImage (default: the newest rig build
#       with selftests; e.g. a debug build: build.sh -k -c kernel/config/debug.config)
# Needs one earlier full build (make check): it copies that build's selftest
# library and initramfs once into $NESTKIT_DEV (/tmp/nestkit-dev), so that
# concurrent builds cannot change them under a running loop.
. "$(dirname "$0")/common.sh"

kbuild= limit=900
while getopts k:t: o; do
	case $o in
	k) kbuild=$OPTARG ;;
	t) limit=$OPTARG ;;
	*) die "usage: dev-nested.sh [-k KERNEL_BUILD] [-t SECONDS] SRC.c VENDOR [ARGS...]" ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 2 ] || die "usage: dev-nested.sh [-k KERNEL_BUILD] [-t SECONDS] SRC.c VENDOR [ARGS...]"
src=$(realpath "$1") vendor=$2
shift 2
dev=${NESTKIT_DEV:-/tmp/nestkit-dev}
full=$(ls -td "$ARTIFACTS"/*/selftests 2>/dev/null | head -n 1)
[ -n "$full" ] || die "no full build in $ARTIFACTS: run make check once"
full=$(dirname "$full")
[ -n "$kbuild" ] || kbuild=$full
if [ ! -f "$dev/st/libnestkit.a" ]; then
	mkdir -p "$dev"
	cp -a "$NESTKIT_CACHE/selftests-build" "$dev/st"
fi
if [ ! -f "$dev/base-initrd.gz" ]; then
	[ -x "$NESTKIT_ROOT/out/check/nestkit-demo" ] || die "no out/check/nestkit-demo: run make check once"
	"$NESTKIT_ROOT/rig/pack-initramfs.sh" "$full" "$NESTKIT_ROOT/out/check/nestkit-demo" "$dev/base-initrd.gz"
fi

name=$(basename "$src" .c)
bin=$(nested_binary_name "$src")
work=$dev/run-$name-$vendor
rm -rf "$work"; mkdir -p "$work/root/usr/bin" "$work/root/tests" "$work/root/plans"
mapfile -t libkvm < <(find "$dev/st/lib" -name '*.o' | LC_ALL=C sort)
nested_cc "$src" "$work/root/usr/bin/$bin" "$full/include" "$dev/st/libnestkit.a" "${libkvm[@]}" ||
	die "build failed"
strip --strip-debug "$work/root/usr/bin/$bin"
ln -s "/usr/bin/$bin" "$work/root/tests/$name"
echo "$name $*" >"$work/root/plans/dev.list"
overlay_initrd "$dev/base-initrd.gz" "$work/root" "$work/initrd.gz"
rc=0
"$NESTKIT_ROOT/rig/boot.sh" "$vendor" "$kbuild/bzImage" "$work/initrd.gz" "$work/out" "$limit" \
	nestkit.plan=dev nestkit.timeout="$limit" ${NESTKIT_DEV_CMDLINE:-} || rc=$?
sed -n '/^# nestkit: run/,$p' "$work/out/console.log"
info "boot status $rc, $(cat "$work/out/seconds" 2>/dev/null || echo '?') s; log: $work/out/console.log"
grep -q "^ok 1 $name" "$work/out/console.log"
