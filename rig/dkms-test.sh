#!/usr/bin/env bash
# The packages on this machine, as a user installs them (root; make check
# runs it): nestkit-dkms with dpkg -i builds the modules for Debian's
# $BASE_ABI-$BASE_FLAVOUR kernel (its headers come from "make deps"), they
# replace the stock modules in depmod's order; a kernel of another version,
# or of the same ABI name from other sources, gets the package's message and
# nothing built, and installing its headers still works; libnestkit-dev
# builds a VMM that uses the series' uAPI; apt-get remove and purge leave
# the stock modules and nothing of ours.
# Usage: dkms-test.sh DEB_DIR MODULES_OUT RESULTS_TSV
#   Copies the DKMS-built kvm, kvm-intel, kvm-amd .ko to MODULES_OUT (for the
#   "-debian" targets). Appends one result line per check to RESULTS_TSV
#   ("host", check, PASS|FAIL, detail), stops at the first failure, and
#   then purges what it installed.
. "$(dirname "$0")/common.sh"
. "$NESTKIT_ROOT/packaging/package.env"

debs=$1 mods=$2 results=$3
release=$BASE_ABI-$BASE_FLAVOUR
version=$NESTKIT_VERSION-$DEB_REVISION
pkgs="nestkit-dkms libnestkit-dev nestkit"
other=6.1.0-99-amd64     # a kernel of another version, with "headers"
marker=.nestkit-dkms-test
export DEBIAN_FRONTEND=noninteractive
check="nestkit-dkms install (dpkg -i)"
fail() { printf 'host\t%s\tFAIL\t%s\n' "$check" "$*" >>"$results"; echo "dkms-test: FAIL: $check: $*"; exit 1; }
ok() { printf 'host\t%s\tPASS\t%s\n' "$check" "$*" >>"$results"; echo "dkms-test: $check: $*"; }
dkms_status() { dkms status nestkit 2>/dev/null || true; }
# Our packages dpkg knows in any state (installed, half-configured, config-files).
ours() {
	local p st
	for p in $pkgs; do
		st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[ -z "$st" ] || [ "$st" = not-installed ] || echo "$p"
	done
}
purge_ours() {
	local l
	l=$(ours)
	# shellcheck disable=SC2086
	[ -z "$l" ] || dpkg --purge $l >/dev/null 2>&1 || true
}
cleanup() {
	rm -rf "${fakehdr:-}" "${src:-}"
	[ ! -f "/lib/modules/$other/$marker" ] || rm -rf "/lib/modules/$other"
	# After a failure nothing of ours may stay on the machine: DKMS modules
	# in updates/ would shadow the stock ones.
	[ "${passed:-0}" = 1 ] || purge_ours
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || fail "installs packages: run as root"
[ -e "/lib/modules/$release/build" ] || fail "no headers for $release (make deps installs linux-headers-$release)"
# A leftover from an interrupted run would hide what this install does.
purge_ours
[ -z "$(dkms_status)" ] || fail "DKMS still knows nestkit after purging a leftover: $(dkms_status)"
if [ -e "/lib/modules/$other" ]; then
	[ -f "/lib/modules/$other/$marker" ] || fail "/lib/modules/$other exists: not ours to use"
	rm -rf "/lib/modules/$other"
fi

# The other kernel, with the headers files DKMS and the package look at.
fakehdr=$(mktemp -d)
mkdir -p "$fakehdr/include/generated" "/lib/modules/$other"
touch "/lib/modules/$other/$marker"
echo "#define UTS_RELEASE \"$other\"" >"$fakehdr/include/generated/utsrelease.h"
echo '#define LINUX_PACKAGE_ID " Debian 6.1.158-1"' >"$fakehdr/include/generated/package.h"
ln -s "$fakehdr" "/lib/modules/$other/build"

# 1. Install: DKMS builds for the kernels with headers (here: Debian's).
t=$(date +%s)
log=$(dpkg -i "$debs/nestkit-dkms_${version}_all.deb" 2>&1) || { echo "$log"; fail "dpkg -i nestkit-dkms"; }
echo "$log" | sed 's/^/  | /'
secs=$(($(date +%s) - t))
st=$(dkms_status)
echo "  dkms status: $st"
grep -q "^nestkit/$version, $release, x86_64: installed$" <<<"$st" ||
	fail "dkms status does not show nestkit/$version installed for $release (clean): $st"
for m in kvm kvm-intel kvm-amd; do
	f=$(modinfo -k "$release" -F filename "$m") || fail "modinfo -k $release $m"
	case $f in */updates/dkms/*) ;; *) fail "modprobe would load $f for $m, not the DKMS module" ;; esac
	[ "$(modinfo -F vermagic "$f" | cut -d' ' -f1)" = "$release" ] || fail "$f: wrong vermagic"
	[ "$(modinfo -F version "$f")" = "nestkit-$version" ] || fail "$f: version is not nestkit-$version"
done
# DKMS signed them with the machine owner key, for Secure Boot.
serial=$(openssl x509 -inform DER -in /var/lib/dkms/mok.pub -noout -serial | cut -d= -f2)
for m in kvm kvm-intel kvm-amd; do
	f=$(modinfo -k "$release" -F filename "$m")
	key=$(modinfo -F sig_key "$f" | tr -d ':\n')
	[ -n "$key" ] && [ "${key^^}" = "${serial^^}" ] ||
		fail "$f is not signed with /var/lib/dkms/mok.pub (sig_key '$key', MOK serial $serial)"
done
# Built like the in-tree modules: no compiler warning against Debian's full
# config, and the series' own trace.h (found through Kbuild.head's include
# path; the stock kvm.ko has no "PVKick").
buildlog=/var/lib/dkms/nestkit/$version/$release/x86_64/log/make.log
[ -f "$buildlog" ] || fail "no DKMS build log $buildlog"
! grep -q 'warning:' "$buildlog" || fail "compiler warnings in $buildlog: $(grep -m1 'warning:' "$buildlog")"
[ "$(xz -dc "$(modinfo -k "$release" -F filename kvm)" | grep -ac PVKick)" -gt 0 ] ||
	fail "the DKMS kvm.ko lacks the series' tracepoint strings (trace.h of the headers used?)"
ok "kvm, kvm-intel, kvm-amd built for $release in $secs s (dpkg -i, DKMS build included), no warning, version nestkit-$version, signed with the DKMS MOK, first in modprobe's order"

rm -rf "$mods"; mkdir -p "$mods"
for m in kvm kvm-intel kvm-amd; do
	xz -dc "$(modinfo -k "$release" -F filename "$m")" >"$mods/$m.ko"
done

# 2. Other kernels: named, nothing built, and their headers still install
# (dkms's own hook, as installing linux-headers-<other> runs it).
check="nestkit-dkms refuses other kernels"
grep -q "^nestkit-dkms: not building for kernel $other: nestkit supports only $BASE_ABI-" <<<"$log" ||
	fail "dpkg -i did not name kernel $other as unsupported"
grep -q "$other" <<<"$(dkms_status)" && fail "dkms status lists $other: $(dkms_status)"
[ ! -e "/lib/modules/$other/updates" ] || fail "modules were installed for $other"
hooks=$(run-parts --report --exit-on-error --arg="$other" /etc/kernel/header_postinst.d 2>&1) ||
	fail "the kernel header hooks fail for $other (installing its headers would fail): $hooks"
grep -q "^nestkit-dkms: not building for kernel $other" <<<"$hooks" ||
	fail "the nestkit-dkms header hook did not name $other: $hooks"
want="BUILD_EXCLUSIVE_KERNEL=\"^$(sed -e 's/\./\\./g' -e 's/+/\\+/g' <<<"$BASE_ABI")-\""
grep -qxF "$want" "/usr/src/nestkit-$version/dkms.conf" ||
	fail "dkms.conf does not restrict the build to $BASE_ABI-* (no line $want)"
msg=$(make -s -C "/usr/src/nestkit-$version" KDIR="/lib/modules/$other/build" 2>&1) &&
	fail "the package Makefile accepted kernel $other"
grep -q "supports only $BASE_ABI-" <<<"$msg" || fail "no clear message for an unsupported kernel: $msg"
# The same ABI name from other sources (a Debian re-upload): refused too.
sed 's/^#define UTS_RELEASE .*/#define UTS_RELEASE "'"$release"'"/' -i "$fakehdr/include/generated/utsrelease.h"
echo '#define LINUX_PACKAGE_ID " Debian 6.12.117-1~deb12u9"' >"$fakehdr/include/generated/package.h"
make -s -C "/usr/src/nestkit-$version" KDIR="/lib/modules/$other/build" >/dev/null 2>&1 &&
	fail "the package Makefile accepted $release headers of Debian 6.12.117-1~deb12u9"
ok "$other: named by dpkg -i and by the header hook, nothing built, its header hooks succeed; $release of other sources refused; the Makefile says: $(grep "^nestkit:" <<<"$msg" | tr "\n" " ")"

# 3. libnestkit-dev and nestkit: a VMM that uses the series' uAPI builds
# with pkg-config (against Debian 12's older linux-libc-dev), and runs.
check="libnestkit-dev, nestkit install"
dpkg -i "$debs/libnestkit-dev_${version}_amd64.deb" "$debs/nestkit_${version}_amd64.deb" >/dev/null ||
	fail "dpkg -i libnestkit-dev nestkit"
src=$(mktemp -d)
cat >"$src/vmm.c" <<'C'
#include <stdio.h>
#include <linux/kvm.h>
#include <nestkit/nestkit.h>

int main(void)
{
	/* What a VMM needs of each feature's uAPI. */
	struct kvm_run run = { 0 };
	unsigned long long bits = KVM_X86_VMWARE_ENABLE_NESTED_BACKDOOR |
				  KVM_HV_NESTED_RELAY_POST_MESSAGE |
				  KVM_MEMORY_EXIT_FLAG_WRITE;
	struct nk_kvm kvm;
	char err[128];

	run.hyperv.u.hcall.nested_root = KVM_HYPERV_HCALL_NESTED_RELAYED;
	if (nk_kvm_open(&kvm, "/nonexistent", err, sizeof(err)) >= 0)
		return 1;
	printf("%s; caps 0x%x 0x%x; bits 0x%llx root 0x%llx\n", err,
	       KVM_CAP_HYPERV_NESTED_RELAY, KVM_CAP_MEMORY_FAULT_PERM, bits,
	       (unsigned long long)run.hyperv.u.hcall.nested_root);
	return 0;
}
C
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags nestkit) "$src/vmm.c" \
	$(pkg-config --libs nestkit) -o "$src/vmm" 2>"$src/cc.log" ||
	fail "a VMM using the series' uAPI does not build against libnestkit-dev: $(head -n 3 "$src/cc.log")"
"$src/vmm" >/dev/null || fail "the VMM built against libnestkit-dev does not run"
[ "$(nestkit version)" = "nestkit $NESTKIT_VERSION" ] || fail "nestkit version: $(nestkit version)"
ok "a VMM using the series' uAPI builds with pkg-config nestkit ($(pkg-config --modversion nestkit)) and runs; nestkit $(nestkit version | cut -d' ' -f2) installed"

# 4. Remove, then purge: the stock modules are modprobe's again, the header
# hook (a conffile) stays inert until the purge, then nothing is left.
check="packages remove and purge (apt-get)"
apt-get remove -y -q $pkgs >/dev/null 2>&1 || fail "apt-get remove"
[ -z "$(dkms_status)" ] || fail "dkms status after remove: $(dkms_status)"
[ ! -e "/usr/src/nestkit-$version" ] || fail "/usr/src/nestkit-$version left behind"
ls /lib/modules/"$release"/updates/dkms/kvm*.ko* >/dev/null 2>&1 && fail "DKMS modules left behind"
for m in kvm kvm-intel kvm-amd; do
	f=$(modinfo -k "$release" -F filename "$m")
	case $f in */kernel/arch/x86/kvm/*) ;; *) fail "after remove, $m is $f" ;; esac
done
[ ! -e /usr/bin/nestkit ] && [ ! -e /usr/include/nestkit ] || fail "files of nestkit or libnestkit-dev left behind"
hooks=$(/etc/kernel/header_postinst.d/nestkit-dkms "$release" 2>&1) && [ -z "$hooks" ] ||
	fail "the removed package's header hook is not inert: $hooks"
# shellcheck disable=SC2046
apt-get purge -y -q $(ours) >/dev/null 2>&1 || fail "apt-get purge $(ours | tr '\n' ' ')"
[ ! -e /etc/kernel/header_postinst.d/nestkit-dkms ] || fail "the header hook is left after purge"
[ -z "$(ours)" ] || fail "dpkg still knows $(ours | tr '\n' ' ')after purge"
passed=1
ok "remove: dkms status empty, modules and files gone, stock kvm modules in modprobe's order; purge: nothing left"
