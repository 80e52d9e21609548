#!/usr/bin/env bash
# "make deb" / "make dkms": Debian packages into out/deb/.
#   nestkit-dkms      the series' KVM modules as a DKMS source tree: the
#                     patched arch/x86/kvm and virt/kvm of the base, with the
#                     headers the series changes; built on install against
#                     the running kernel's headers (packaging/dkms/)
#   libnestkit-dev    libnestkit.a, its headers, a pkg-config file
#   nestkit           the "nestkit probe" command
# Usage: deb.sh [dkms|all]    (default all). Prints the .deb paths.
. "$(dirname "$0")/common.sh"
. "$NESTKIT_ROOT/packaging/package.env"

what=${1:-all}
out=$NESTKIT_ROOT/out/deb
version=$NESTKIT_VERSION-$DEB_REVISION
release_re="^${BASE_ABI//./\\.}-"
release_re=${release_re//+/\\+}
sed_re=${release_re//\\/\\\\}   # as a sed replacement: keep the backslashes
supported="$BASE_ABI-* kernels (Debian linux $BASE_VERSION, e.g. $BASE_ABI-$BASE_FLAVOUR)"
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

control() {   # control PKG ARCH DEPENDS DESCRIPTION...
	local pkg=$1 arch=$2 deps=$3; shift 3
	mkdir -p "$stage/$pkg/DEBIAN"
	{
		echo "Package: $pkg"
		echo "Version: $version"
		echo "Architecture: $arch"
		echo "Maintainer: $MAINTAINER"
		[ -z "$deps" ] || echo "Depends: $deps"
		echo "Section: misc"
		echo "Priority: optional"
		echo "Installed-Size: $(du -sk --exclude=DEBIAN "$stage/$pkg" | cut -f1)"
		printf 'Description: %s\n' "$1"; shift
		for l in "$@"; do [ -n "$l" ] && echo " $l" || echo " ."; done
	} >"$stage/$pkg/DEBIAN/control"
}
build_deb() {
	local pkg=$1 arch=$2 f
	f=$out/${pkg}_${version}_$arch.deb
	dpkg-deb --root-owner-group -Zxz --build "$stage/$pkg" "$f" >/dev/null ||
		die "dpkg-deb failed for $pkg"
	echo "$f"
}

# --- nestkit-dkms -----------------------------------------------------------
"$NESTKIT_ROOT/rig/base.sh" >&2
with_lock
"$NESTKIT_ROOT/rig/prepare.sh" >&2
src=$stage/nestkit-dkms/usr/src/nestkit-$version
mkdir -p "$src"
# The KVM sources and the headers the series changes, as committed (no
# build output of the shared tree).
mapfile -t hdrs < <(git -C "$SRC_TREE" diff --name-only base HEAD -- include arch/x86/include)
git -C "$SRC_TREE" archive HEAD arch/x86/kvm virt/kvm "${hdrs[@]}" | tar -x -C "$src"
release_lock
cp "$NESTKIT_ROOT/packaging/dkms/Makefile" "$src/"
kbuild=$(sed -e 's|\$(srctree)/arch/x86/kvm|$(NESTKIT_SRC)/arch/x86/kvm|' \
	-e 's|\$(srctree)/virt/kvm|$(NESTKIT_SRC)/virt/kvm|' "$src/arch/x86/kvm/Makefile")
! grep -q 'srctree' <<<"$kbuild" || die "arch/x86/kvm/Makefile has a \$(srctree) path deb.sh does not map"
{ cat "$NESTKIT_ROOT/packaging/dkms/Kbuild.head"; echo "$kbuild"
  cat "$NESTKIT_ROOT/packaging/dkms/Kbuild.tail"; } >"$src/arch/x86/kvm/Kbuild"
for d in . vmx svm; do
	sed "s|@VERSION@|$version|" "$NESTKIT_ROOT/packaging/dkms/nestkit_version.c.in" \
		>"$src/arch/x86/kvm/$d/nestkit_version.c"
done
printf 'SUPPORTED_RELEASE := %s\nSUPPORTED_TEXT := %s\n' "$release_re" "$supported" >"$src/SUPPORTED"
sed -e "s|@VERSION@|$version|" -e "s|@BASE_VERSION@|$BASE_VERSION|" \
    -e "s|@SUPPORTED_RELEASE@|$sed_re|" \
    "$NESTKIT_ROOT/packaging/dkms/dkms.conf.in" >"$src/dkms.conf"
mkdir -p "$stage/nestkit-dkms/DEBIAN"
for s in postinst prerm; do
	sed -e "s|@VERSION@|$version|" -e "s|@SUPPORTED_RELEASE@|$sed_re|" \
	    -e "s|@SUPPORTED_TEXT@|$supported|" "$NESTKIT_ROOT/packaging/dkms/$s.in" \
		>"$stage/nestkit-dkms/DEBIAN/$s"
	chmod 755 "$stage/nestkit-dkms/DEBIAN/$s"
done
control nestkit-dkms all "dkms (>= 3), make, gcc" \
	"nestkit KVM modules (DKMS): nested Hyper-V relay, VMware, Remote Read, memory faults" \
	"The kvm, kvm-intel and kvm-amd modules of Debian's $BASE_VERSION kernel" \
	"with the nestkit series applied, built by DKMS against the installed" \
	"kernel headers. They replace the stock KVM modules and add" \
	"KVM_CAP_HYPERV_NESTED_RELAY, KVM_CAP_X86_VMWARE," \
	"KVM_CAP_X86_APIC_REMOTE_READ and KVM_CAP_MEMORY_FAULT_PERM." \
	"" "Only $supported are supported; on any other kernel the" \
	"package builds nothing and the stock modules stay in use."
build_deb nestkit-dkms all
[ "$what" = dkms ] && exit 0

# --- libnestkit-dev and nestkit -----------------------------------------------
ub=$NESTKIT_ROOT/out/deb/userspace
logged "$out/userspace.log" make -s -C "$NESTKIT_ROOT/userspace" O="$ub" \
	"$ub/libnestkit.a" "$ub/nestkit" || die "userspace build failed (see $out/userspace.log)"
arch=$(dpkg --print-architecture)
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
d=$stage/libnestkit-dev
mkdir -p "$d/usr/include/nestkit" "$d/usr/lib/$triplet/pkgconfig" "$d/usr/share/doc/libnestkit-dev"
cp "$NESTKIT_ROOT"/userspace/include/nestkit/*.h "$d/usr/include/nestkit/"
cp "$ub/libnestkit.a" "$d/usr/lib/$triplet/"
sed -e "s|@VERSION@|$NESTKIT_VERSION|" -e "s|@LIBDIR@|/usr/lib/$triplet|" \
	"$NESTKIT_ROOT/packaging/nestkit.pc.in" >"$d/usr/lib/$triplet/pkgconfig/nestkit.pc"
cp "$NESTKIT_ROOT/packaging/copyright" "$d/usr/share/doc/libnestkit-dev/"
control libnestkit-dev "$arch" "linux-libc-dev" \
	"nestkit userspace library for VMMs (static library and headers)" \
	"libnestkit: capability probing, the vmbus endpoint for relayed nested" \
	"Hyper-V messages, the VMware backdoor responder, the APIC Remote Read" \
	"helpers and the lazy snapshot engine (KVM memory-fault exits and" \
	"userfaultfd-wp). Link with \$(pkg-config --libs nestkit)."
build_deb libnestkit-dev "$arch"

d=$stage/nestkit
mkdir -p "$d/usr/bin" "$d/usr/share/doc/nestkit"
install -m 755 "$ub/nestkit" "$d/usr/bin/nestkit"
cp "$NESTKIT_ROOT/packaging/copyright" "$d/usr/share/doc/nestkit/"
control nestkit "$arch" "" \
	"nestkit command: which nestkit KVM capabilities the running kernel offers" \
	"\"nestkit probe\" opens /dev/kvm and prints each nestkit capability" \
	"with its value, and related upstream capabilities."
build_deb nestkit "$arch"
