#!/usr/bin/env bash
# "make deb" / "make dkms": Debian packages into out/deb/.
#   nestkit-dkms      the series' KVM modules as a DKMS source tree: the
#                     patched arch/x86/kvm and virt/kvm of the base, with the
#                     headers the series changes; built on install against
#                     the running kernel's headers (packaging/dkms/)
#   libnestkit-dev    libnestkit.a, its headers, the series' uAPI headers,
#                     a pkg-config file
#   nestkit           the "nestkit probe" command
# Usage: deb.sh [dkms|all]    (default all). Prints the .deb paths.
. "$(dirname "$0")/common.sh"
. "$NESTKIT_ROOT/packaging/package.env"

what=${1:-all}
out=$NESTKIT_ROOT/out/deb
pk=$NESTKIT_ROOT/packaging
version=$NESTKIT_VERSION-$DEB_REVISION
release_re="^${BASE_ABI//./\\.}-"
release_re=${release_re//+/\\+}
sed_re=${release_re//\\/\\\\}   # as a sed replacement: keep the backslashes
supported="$BASE_ABI-* kernels (Debian linux $BASE_VERSION, e.g. $BASE_ABI-$BASE_FLAVOUR)"
# Debian's binary kernels of the base: a same-ABI upload with other sources
# must not keep our modules (Breaks), and the headers we build against.
flavours="$BASE_FLAVOUR cloud-$BASE_FLAVOUR rt-$BASE_FLAVOUR"
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# The series may change files only where the packages take them from.
allowed='^(arch/x86/kvm/|virt/kvm/|include/|arch/x86/include/|tools/|Documentation/)'

subst() {   # subst FILE: the package's @...@ placeholders filled in
	sed -e "s|@VERSION@|$version|g" -e "s|@BASE_VERSION@|$BASE_VERSION|g" \
	    -e "s|@SUPPORTED_RELEASE@|$sed_re|g" -e "s|@SUPPORTED_TEXT@|$supported|g" \
	    -e "s|@BASE_ABI@|$BASE_ABI|g" "$1"
}
control() {   # control PKG ARCH FIELDS SYNOPSIS DESCRIPTION-LINE...
	local pkg=$1 arch=$2 fields=$3; shift 3
	mkdir -p "$stage/$pkg/DEBIAN"
	{
		echo "Package: $pkg"
		echo "Version: $version"
		echo "Architecture: $arch"
		echo "Maintainer: $MAINTAINER"
		printf '%b' "$fields"
		echo "Priority: optional"
		echo "Installed-Size: $(du -sk --exclude=DEBIAN "$stage/$pkg" | cut -f1)"
		printf 'Description: %s\n' "$1"; shift
		for l in "$@"; do [ -n "$l" ] && echo " $l" || echo " ."; done
	} >"$stage/$pkg/DEBIAN/control"
	# The description, as lintian measures it: synopsis and lines <= 80.
	awk '/^Description: / { s = substr($0, 14); if (length(s) > 80) { print "synopsis over 80: " s; bad = 1 } }
	     /^ / && length > 80 { print "description line over 80: " $0; bad = 1 } END { exit bad }' \
		"$stage/$pkg/DEBIAN/control" >&2 || die "$pkg: description too wide"
}
docs() {   # docs PKG: copyright and changelog, as policy 12.5/12.7 asks
	local d=$stage/$1/usr/share/doc/$1
	mkdir -p "$d"
	cp "$pk/copyright" "$d/copyright"
	subst "$pk/changelog.in" | sed "s|@PACKAGE@|$1|" | gzip -9n >"$d/changelog.Debian.gz"
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
other=$(git -C "$SRC_TREE" diff --name-only base HEAD | grep -v -E "$allowed" || true)
[ -z "$other" ] || die "the series changes files the packages do not carry: $other"
src=$stage/nestkit-dkms/usr/src/nestkit-$version
mkdir -p "$src"
# The KVM sources and the headers the series changes, as committed (no
# build output of the shared tree), with the usual file modes.
mapfile -t hdrs < <(git -C "$SRC_TREE" diff --name-only base HEAD -- include arch/x86/include)
git -C "$SRC_TREE" -c tar.umask=0022 archive HEAD arch/x86/kvm virt/kvm "${hdrs[@]}" |
	tar -x -C "$src" --exclude=.gitignore
# The series' uAPI for libnestkit-dev, as "make headers" installs it.
uapi=$stage/uapi
mkdir -p "$uapi/linux" "$uapi/asm" "$stage/scripts"
gcc -O2 -o "$stage/scripts/unifdef" "$SRC_TREE/scripts/unifdef.c" || die "cannot build unifdef"
# linux/bits.h: asm/kvm.h needs it, and Debian 12's linux-libc-dev (6.1)
# has none.
for h in include/uapi/linux/kvm.h arch/x86/include/uapi/asm/kvm.h include/uapi/linux/bits.h; do
	(cd "$stage" && "$SRC_TREE/scripts/headers_install.sh" "$SRC_TREE/$h" \
		"$uapi/${h#*uapi/}") || die "headers_install $h failed"
done
release_lock
cp "$pk/dkms/Makefile" "$src/"
kbuild=$(sed -e 's|\$(srctree)/arch/x86/kvm|$(NESTKIT_SRC)/arch/x86/kvm|' \
	-e 's|\$(srctree)/virt/kvm|$(NESTKIT_SRC)/virt/kvm|' "$src/arch/x86/kvm/Makefile")
! grep -q 'srctree' <<<"$kbuild" || die "arch/x86/kvm/Makefile has a \$(srctree) path deb.sh does not map"
{ cat "$pk/dkms/Kbuild.head"; echo "$kbuild"; cat "$pk/dkms/Kbuild.tail"; } >"$src/arch/x86/kvm/Kbuild"
# arch/x86/kvm/trace.h includes itself as "../../arch/x86/kvm/trace.h",
# found through an include directory two levels below the tree's root
# (Kbuild.head): it must exist whatever headers the series changes.
mkdir -p "$src/include/uapi"
for d in . vmx svm; do
	subst "$pk/dkms/nestkit_version.c.in" >"$src/arch/x86/kvm/$d/nestkit_version.c"
done
printf 'SUPPORTED_RELEASE := %s\nSUPPORTED_TEXT := %s\nSUPPORTED_PACKAGE := Debian %s\n' \
	"$release_re" "$supported" "$BASE_VERSION" >"$src/SUPPORTED"
subst "$pk/dkms/dkms.conf.in" >"$src/dkms.conf"
# DKMS builds for new kernels only through this hook (dkms.conf has no
# AUTOINSTALL: with BUILD_EXCLUSIVE_KERNEL, dkms 3.0.10's autoinstall fails
# the headers' installation for every kernel it skips).
hook=$stage/nestkit-dkms/etc/kernel/header_postinst.d/nestkit-dkms
mkdir -p "$(dirname "$hook")" "$stage/nestkit-dkms/DEBIAN"
subst "$pk/dkms/header_postinst.in" >"$hook"
chmod 755 "$hook"
echo "/etc/kernel/header_postinst.d/nestkit-dkms" >"$stage/nestkit-dkms/DEBIAN/conffiles"
for s in postinst prerm; do
	subst "$pk/dkms/$s.in" >"$stage/nestkit-dkms/DEBIAN/$s"
	chmod 755 "$stage/nestkit-dkms/DEBIAN/$s"
done
docs nestkit-dkms
breaks=
for f in $flavours; do
	for img in "linux-image-$BASE_ABI-$f" "linux-image-$BASE_ABI-$f-unsigned"; do
		breaks="${breaks:+$breaks,\n }$img (>> $BASE_VERSION)"
	done
done
hdr_alts=
for f in $flavours; do hdr_alts="${hdr_alts:+$hdr_alts\n | }linux-headers-$BASE_ABI-$f"; done
control nestkit-dkms all \
	"Depends: dkms (>= 3.0.10-8)\nRecommends: $hdr_alts\nBreaks: $breaks\nSection: kernel\n" \
	"nestkit KVM modules (DKMS): nested Hyper-V relay, VMware, Remote Read" \
	"The kvm, kvm-intel and kvm-amd modules of Debian's $BASE_VERSION" \
	"kernel with the nestkit series applied, built by DKMS against the" \
	"installed kernel headers. They replace the stock KVM modules and add" \
	"KVM_CAP_HYPERV_NESTED_RELAY, KVM_CAP_X86_VMWARE," \
	"KVM_CAP_X86_APIC_REMOTE_READ and KVM_CAP_MEMORY_FAULT_PERM." \
	"" "Only $BASE_ABI-* kernels built from Debian's $BASE_VERSION" \
	"sources are supported; on any other kernel the package builds nothing" \
	"and the stock modules stay in use."
build_deb nestkit-dkms all
[ "$what" = dkms ] && exit 0

# --- libnestkit-dev and nestkit -----------------------------------------------
ub=$NESTKIT_ROOT/out/deb/userspace
rm -rf "$ub"   # the objects depend on KHDR's headers, which make does not track
# Built against the series' uAPI, as a VMM using the library will be; the
# command with Debian's hardening flags.
logged "$out/userspace.log" make -s -C "$NESTKIT_ROOT/userspace" O="$ub" KHDR="$uapi" \
	CFLAGS="$(dpkg-buildflags --get CFLAGS)" LDFLAGS="$(dpkg-buildflags --get LDFLAGS)" \
	"$ub/libnestkit.a" "$ub/nestkit" || die "userspace build failed (see $out/userspace.log)"
arch=$(dpkg --print-architecture)
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
glibc=$(dpkg-query -W -f='${source:Package} (= ${source:Version})' libc6)
d=$stage/libnestkit-dev
mkdir -p "$d/usr/include/nestkit/uapi" "$d/usr/lib/$triplet/pkgconfig"
cp "$NESTKIT_ROOT"/userspace/include/nestkit/*.h "$d/usr/include/nestkit/"
cp -r "$uapi/." "$d/usr/include/nestkit/uapi/"
cp "$ub/libnestkit.a" "$d/usr/lib/$triplet/"
sed -e "s|@LIBDIR@|/usr/lib/$triplet|" -e "s|@VERSION@|$NESTKIT_VERSION|" "$pk/nestkit.pc.in" \
	>"$d/usr/lib/$triplet/pkgconfig/nestkit.pc"
docs libnestkit-dev
control libnestkit-dev "$arch" \
	"Depends: linux-libc-dev\nSection: libdevel\nMulti-Arch: same\n" \
	"nestkit userspace library for VMMs (static library and headers)" \
	"libnestkit: capability probing, the vmbus endpoint for relayed nested" \
	"Hyper-V messages, the VMware backdoor responder, the APIC Remote Read" \
	"helpers and the lazy snapshot engine (KVM memory-fault exits and" \
	"userfaultfd-wp), with the nestkit series' KVM uAPI headers, which" \
	"\"pkg-config --cflags nestkit\" puts before the system's."
build_deb libnestkit-dev "$arch"

d=$stage/nestkit
mkdir -p "$d/usr/bin"
install -m 755 "$ub/nestkit" "$d/usr/bin/nestkit"
docs nestkit
# Static: glibc is in the binary.
control nestkit "$arch" "Built-Using: $glibc\nSection: admin\n" \
	"which nestkit KVM capabilities the running kernel offers" \
	"\"nestkit probe\" opens /dev/kvm and prints each nestkit capability" \
	"with its value, the version of the loaded KVM modules, and related" \
	"upstream capabilities."
build_deb nestkit "$arch"
