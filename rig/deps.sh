#!/usr/bin/env bash
# Installs the Debian packages the rig needs, only those missing.
#   linux-source-6.12            the base kernel of the series
#   build-essential flex bison bc libelf-dev libssl-dev cpio   kernel build
#   ccache                       warm rebuilds
#   busybox-static               the guest's userland
#   qemu-system-x86              AMD SVM guest (TCG)
#   bochs bochs-term bochsbios vgabios   Intel VMX guest
#   isolinux syslinux-common genisoimage  Bochs boots a CD image
#   bsdutils (script), util-linux (flock, setsid), procps (pkill), file,
#   xz-utils, gzip, git, perl                                   rig glue
#   python3 python3-ply python3-git    checkpatch.pl runs scripts/spdxcheck.py
#   dkms, linux-headers-$BASE_ABI-$BASE_FLAVOUR, kmod, pkg-config, openssl
#                                the packages' install test (rig/dkms-test.sh):
#                                DKMS builds nestkit-dkms for Debian's kernel
#                                (the headers pull in its image, as for a user)
#   clang-14 libclang-rt-14-dev  libFuzzer targets of the userspace parsers
#                                (userspace/fuzz/libfuzzer/), with ASan + UBSan
. "$(dirname "$0")/common.sh"

pkgs=(linux-source-6.12 build-essential flex bison bc libelf-dev libssl-dev cpio
      ccache busybox-static qemu-system-x86 bochs bochs-term bochsbios vgabios
      isolinux syslinux-common genisoimage bsdutils util-linux procps file xz-utils gzip git perl
      python3 python3-ply python3-git
      dkms "linux-headers-$BASE_ABI-$BASE_FLAVOUR" kmod pkg-config openssl
      clang-14 libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} = 0 ]; then
	info "Debian dependencies present"
	exit 0
fi
[ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]} (run 'sudo make deps')"
step "installing ${#missing[@]} Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$NESTKIT_CACHE/apt.log
logged "$log" apt-get update -q || die "apt-get update failed"
logged "$log" apt-get install -y -q --no-install-recommends "${missing[@]}" ||
	die "apt-get install failed (see $log)"
info "installed: ${missing[*]}"
