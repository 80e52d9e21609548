#!/usr/bin/env bash
# Debian's own kernel for the "-debian" targets: the signed image package of
# the base (kernel/base.env), unmodified, with the DKMS-built KVM modules.
#   stock.sh image
#       fetch linux-image-$BASE_ABI-$BASE_FLAVOUR with apt (its hash is checked
#       against the signed archive index), unpack it into the cache; prints
#       the directory: vmlinuz, and stock/*.ko, the stock KVM modules and
#       what they depend on (decompressed: busybox insmod takes plain .ko)
#   stock.sh initrd INITRD DKMS_DIR OUT
#       OUT = INITRD + a second cpio archive with /lib/modules/stock/*.ko and
#       /lib/modules/dkms/*.ko (the modules rig/dkms-test.sh took from the
#       installed package), each with a load order (the kernel unpacks
#       concatenated archives in order)
. "$(dirname "$0")/common.sh"

release=$BASE_ABI-$BASE_FLAVOUR
pkg=linux-image-$release
dir=$NESTKIT_CACHE/debian/$release

# A module and what it depends on, dependencies first, each once.
closure() {
	local m=$1 f d
	f=$(find "$dir/root/lib/modules/$release/kernel" -name "$m.ko.xz" | head -n 1)
	[ -n "$f" ] || die "$pkg has no module $m"
	for d in $(modinfo -F depends "$f" | tr ',' ' '); do closure "$d"; done
	echo "$m"
}

case "${1:-}" in
image)
	if [ ! -f "$dir/done" ]; then
		# Progress to stderr: stdout is the directory, for the caller.
		step "fetching Debian's $pkg ($BASE_VERSION) with apt" >&2
		rm -rf "$dir"; mkdir -p "$dir/stock"
		# The package lists may be older than the machine's last update.
		(cd "$dir" && apt-get download "$pkg=$BASE_VERSION" >"$dir/apt.log" 2>&1) || {
			logged "$dir/apt-update.log" apt-get update -q &&
				(cd "$dir" && logged "$dir/apt.log" apt-get download "$pkg=$BASE_VERSION")
		} || die "cannot download $pkg $BASE_VERSION (see $dir/apt.log)"
		dpkg-deb -x "$dir"/"${pkg}"_*.deb "$dir/root"
		cp "$dir/root/boot/vmlinuz-$release" "$dir/vmlinuz"
		# Both vendor modules and their dependencies (ccp for SEV).
		mapfile -t mods < <({ closure kvm-intel; closure kvm-amd; } | awk '!seen[$0]++')
		for m in "${mods[@]}"; do
			xz -dc "$(find "$dir/root/lib/modules/$release/kernel" -name "$m.ko.xz")" >"$dir/stock/$m.ko"
		done
		printf '%s\n' "${mods[@]}" >"$dir/stock/order"
		rm -rf "$dir/root" "$dir"/*.deb
		touch "$dir/done"
		info "$pkg: vmlinuz $(du -k "$dir/vmlinuz" | cut -f1) KiB, modules: ${mods[*]}" >&2
	fi
	echo "$dir"
	;;
initrd)
	initrd=$2 dkms=$3 outf=$4
	[ -f "$dir/done" ] || die "run 'stock.sh image' first"
	root=$(mktemp -d)
	trap 'rm -rf "$root"' EXIT
	mkdir -p "$root/lib/modules/stock" "$root/lib/modules/dkms"
	cp "$dir"/stock/* "$root/lib/modules/stock/"
	# The DKMS set: our three, and the stock modules they depend on.
	for f in "$dkms"/*.ko; do cp "$f" "$root/lib/modules/dkms/"; done
	grep -v -x -E 'kvm|kvm-intel|kvm-amd' "$dir/stock/order" | while read -r m; do
		ln -s "../stock/$m.ko" "$root/lib/modules/dkms/$m.ko"
	done
	cp "$dir/stock/order" "$root/lib/modules/dkms/order"
	{ cat "$initrd"
	  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible) | gzip -1
	} >"$outf"
	;;
*) die "usage: stock.sh image | initrd INITRD DKMS_DIR OUT" ;;
esac
