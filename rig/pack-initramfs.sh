#!/usr/bin/env bash
# Stage 4: pack the guest initramfs: busybox-static, /init, the selftests of
# a build, the plans, and the demo VMMs.
# Usage: pack-initramfs.sh BUILD_DIR DEMO_BINARY OUT.cpio.gz
# The nested demo VMMs come from BUILD_DIR/demo, or from $NESTED_DEMOS (the
# demo runs those of the patched build on the pristine kernel too).
. "$(dirname "$0")/common.sh"

build=$1 demo=$2 out=$3
busybox=/bin/busybox
file -L "$busybox" | grep -q 'statically linked' ||
	die "$busybox is not static: install busybox-static ('make deps')"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,usr/bin,dev,proc,sys,tmp,tests,plans}
cp "$busybox" "$root/bin/busybox"
cp "$NESTKIT_ROOT/rig/guest/init" "$root/init"
chmod +x "$root/init"
# A kernel-only build (build.sh -k, e.g. the demo's unpatched kernel) has
# no selftests: the initramfs then only runs the demo VMM.
if [ -d "$build/selftests" ]; then
	cp "$build"/selftests/* "$root/tests/"
	strip --strip-debug "$root"/tests/*   # smaller initrd: Bochs loads it through the BIOS
fi
for p in "$NESTKIT_ROOT"/tests/plans/*.list; do
	v=$(basename "$p" .list)
	"$NESTKIT_ROOT/rig/plan.sh" "$v" >"$root/plans/$v.list"
done
cp "$demo" "$root/usr/bin/nestkit-demo"
nested=${NESTED_DEMOS:-$build/demo}
if [ -d "$nested" ]; then
	cp "$nested"/* "$root/usr/bin/"
	strip --strip-debug "$root"/usr/bin/nestkit-*-demo "$root"/usr/bin/nestkit-fuzz-* 2>/dev/null || true
fi
# Plans run the demo's tests like selftests, under their names.
for t in $DEMO_TESTS; do ln -s /usr/bin/nestkit-demo "$root/tests/$t"; done
for t in $NESTED_TESTS; do ln -s "/usr/bin/nestkit-${t//_/-}-demo" "$root/tests/$t"; done
for t in $FUZZ_TESTS; do ln -s "/usr/bin/nestkit-${t//_/-}" "$root/tests/$t"; done
# The packaged probe command, beside the demo VMM.
[ ! -x "$(dirname "$demo")/nestkit" ] || cp "$(dirname "$demo")/nestkit" "$root/usr/bin/nestkit"
for t in $SCRIPT_TESTS; do
	s=${t%_*}
	[ -f "$root/tests/$s" ] || cp "$NESTKIT_ROOT/rig/guest/$s" "$root/tests/$s"
	ln -s "$s" "$root/tests/$t"
done
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible) |
	gzip -1 >"$out"
info "initramfs $(du -k "$out" | cut -f1) KiB"
