#!/usr/bin/env bash
# The packages on this machine, as a user installs them (root; make check
# runs it): nestkit-dkms with dpkg -i builds the modules for Debian's
# $BASE_ABI-$BASE_FLAVOUR kernel (its headers come from "make deps"), they
# replace the stock modules in depmod's order; a kernel of another version
# gets the package's one message and nothing built; libnestkit-dev builds a
# VMM with pkg-config; apt-get remove leaves the stock modules again.
# Usage: dkms-test.sh DEB_DIR MODULES_OUT RESULTS_TSV
#   Copies the DKMS-built kvm, kvm-intel, kvm-amd .ko to MODULES_OUT (for the
#   "-debian" targets). Appends one result line per check to RESULTS_TSV
#   ("host", check, PASS|FAIL, detail), stops at the first failure.
. "$(dirname "$0")/common.sh"
. "$NESTKIT_ROOT/packaging/package.env"

debs=$1 mods=$2 results=$3
check="nestkit-dkms install (dpkg -i)"
fail() { printf 'host\t%s\tFAIL\t%s\n' "$check" "$*" >>"$results"; echo "dkms-test: FAIL: $check: $*"; exit 1; }
ok() { printf 'host\t%s\tPASS\t%s\n' "$check" "$*" >>"$results"; echo "dkms-test: $check: $*"; }
[ "$(id -u)" = 0 ] || fail "installs packages: run as root"
release=$BASE_ABI-$BASE_FLAVOUR
version=$NESTKIT_VERSION-$DEB_REVISION
export DEBIAN_FRONTEND=noninteractive
dkms_status() { dkms status nestkit 2>/dev/null || true; }
[ -e "/lib/modules/$release/build" ] || fail "no headers for $release (make deps installs linux-headers-$release)"

# A leftover from an interrupted run would hide what this install does.
if dpkg-query -W -f='${Status}' nestkit-dkms 2>/dev/null | grep -q installed; then
	apt-get remove -y -q nestkit-dkms >/dev/null || fail "cannot remove a leftover nestkit-dkms"
fi

# A second kernel with "headers", of a version the package does not support,
# as on a machine that also has an older kernel installed: the install must
# name it, build nothing for it, and still succeed for Debian's.
other=6.1.0-99-amd64
[ ! -e "/lib/modules/$other" ] || fail "/lib/modules/$other exists: not ours to use"
fakehdr=$(mktemp -d)
trap 'rm -rf "$fakehdr" "/lib/modules/$other"' EXIT
mkdir -p "$fakehdr/include/generated" "/lib/modules/$other"
echo "#define UTS_RELEASE \"$other\"" >"$fakehdr/include/generated/utsrelease.h"
ln -s "$fakehdr" "/lib/modules/$other/build"

# 1. Install: DKMS builds for every kernel with headers (here: Debian's).
t=$(date +%s)
log=$(dpkg -i "$debs/nestkit-dkms_${version}_all.deb" 2>&1) || { echo "$log"; fail "dpkg -i nestkit-dkms"; }
echo "$log" | sed 's/^/  | /'
secs=$(($(date +%s) - t))
st=$(dkms_status)
echo "  dkms status: $st"
grep -q "^nestkit/$version, $release, x86_64: installed" <<<"$st" ||
	fail "dkms status does not show nestkit/$version installed for $release"
for m in kvm kvm-intel kvm-amd; do
	f=$(modinfo -k "$release" -F filename "$m") || fail "modinfo -k $release $m"
	case $f in */updates/dkms/*) ;; *) fail "modprobe would load $f for $m, not the DKMS module" ;; esac
	[ "$(modinfo -F vermagic "$f" | cut -d' ' -f1)" = "$release" ] || fail "$f: wrong vermagic"
done
# DKMS signed them with the machine owner key, for Secure Boot.
serial=$(openssl x509 -inform DER -in /var/lib/dkms/mok.pub -noout -serial | cut -d= -f2)
for m in kvm kvm-intel kvm-amd; do
	f=$(modinfo -k "$release" -F filename "$m")
	key=$(modinfo -F sig_key "$f" | tr -d ':\n')
	[ -n "$key" ] && [ "${key^^}" = "${serial^^}" ] ||
		fail "$f is not signed with /var/lib/dkms/mok.pub (sig_key '$key', MOK serial $serial)"
done
ok "kvm, kvm-intel, kvm-amd built for $release in $secs s (dpkg -i, DKMS build included), signed with the DKMS MOK, first in modprobe's order"

rm -rf "$mods"; mkdir -p "$mods"
for m in kvm kvm-intel kvm-amd; do
	f=$(modinfo -k "$release" -F filename "$m")
	case $f in
	*.xz) xz -dc "$f" >"$mods/$m.ko" ;;
	*.zst) zstd -qdc "$f" >"$mods/$m.ko" ;;
	*) cp "$f" "$mods/$m.ko" ;;
	esac
done

# 2. A kernel the package does not support: one clear message, nothing built.
check="nestkit-dkms refuses other kernels"
grep -q "^nestkit-dkms: not building for kernel $other: nestkit supports only $BASE_ABI-" <<<"$log" ||
	fail "dpkg -i did not name kernel $other as unsupported"
grep -q "$other" <<<"$(dkms_status)" && fail "dkms status lists $other: $(dkms_status)"
[ ! -e "/lib/modules/$other/updates" ] || fail "modules were installed for $other"
msg=$(make -s -C "/usr/src/nestkit-$version" KDIR="/lib/modules/$other/build" 2>&1) &&
	fail "the package Makefile accepted kernel $other"
grep -q "supports only $BASE_ABI-" <<<"$msg" || fail "no clear message for an unsupported kernel: $msg"
ok "$other: named by dpkg -i, nothing built or installed; the Makefile says: $(grep "^nestkit:" <<<"$msg" | tr "\n" " ")"
grep -q '^BUILD_EXCLUSIVE_KERNEL="\^6' "/usr/src/nestkit-$version/dkms.conf" ||
	fail "dkms.conf does not restrict the kernel"

# 3. libnestkit-dev and nestkit: a VMM builds with pkg-config, the probe runs.
check="libnestkit-dev, nestkit install"
dpkg -i "$debs/libnestkit-dev_${version}_amd64.deb" "$debs/nestkit_${version}_amd64.deb" >/dev/null ||
	fail "dpkg -i libnestkit-dev nestkit"
src=$(mktemp -d)
cat >"$src/vmm.c" <<'C'
#include <stdio.h>
#include <nestkit/nestkit.h>
int main(void)
{
	struct nk_kvm kvm;
	char err[128];

	if (nk_kvm_open(&kvm, "/nonexistent", err, sizeof(err)) >= 0)
		return 1;
	printf("%s, %zu capabilities known\n", err, nk_ncaps);
	return 0;
}
C
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags nestkit) "$src/vmm.c" \
	$(pkg-config --libs nestkit) -o "$src/vmm" || fail "a VMM does not build against libnestkit-dev"
"$src/vmm" >/dev/null || fail "the VMM built against libnestkit-dev does not run"
rm -rf "$src"
[ "$(nestkit version)" = "nestkit $NESTKIT_VERSION" ] || fail "nestkit version: $(nestkit version)"
ok "a VMM builds with pkg-config nestkit ($(pkg-config --modversion nestkit)); nestkit $(nestkit version | cut -d' ' -f2) installed"

# 4. Remove: nothing of ours left, the stock modules are modprobe's again.
check="packages remove (apt-get remove)"
apt-get remove -y -q nestkit-dkms libnestkit-dev nestkit >/dev/null 2>&1 || fail "apt-get remove"
[ -z "$(dkms_status)" ] || fail "dkms status after remove: $(dkms_status)"
[ ! -e "/usr/src/nestkit-$version" ] || fail "/usr/src/nestkit-$version left behind"
ls /lib/modules/"$release"/updates/dkms/kvm*.ko* >/dev/null 2>&1 && fail "DKMS modules left behind"
for m in kvm kvm-intel kvm-amd; do
	f=$(modinfo -k "$release" -F filename "$m")
	case $f in */kernel/arch/x86/kvm/*) ;; *) fail "after remove, $m is $f" ;; esac
done
[ ! -e /usr/bin/nestkit ] && [ ! -e /usr/include/nestkit ] || fail "files of nestkit or libnestkit-dev left behind"
ok "dkms status empty, nothing left, the stock kvm modules in modprobe's order again"
