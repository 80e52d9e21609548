#!/usr/bin/env bash
# Stage 5: boot the kernel + initramfs on an emulated machine and capture the
# serial console. Never needs host virtualization.
#   svm: AMD SVM+NPT under QEMU TCG (single-threaded: MTTCG oopses once KVM
#        patches kernel text)
#   vmx: Intel VMX+EPT under Bochs 2.7 (corei7_skylake_x, or $BOCHS_MODEL),
#        "term" display in a pty, so no window and no network port
# Usage: boot.sh VENDOR KERNEL_IMAGE INITRD OUTDIR TIMEOUT_S [cmdline words...]
# $BOOT_CPUS: QEMU's CPU count (2 by default; Bochs always emulates one).
# A watchdog stops the emulator on a guest panic (Bochs would reboot and run
# the plan again) or after TIMEOUT_S; rig/collect.sh then reads the log.
# Exit status: 0 if the guest powered off (or halted: acpi=off), 1 on guest
# panic, 124 on timeout.
. "$(dirname "$0")/common.sh"

vendor=$1 kernel=$2 initrd=$3 outdir=$4 limit=$5
shift 5
cmdline="console=ttyS0 panic=-1 oops=panic $*"
mkdir -p "$outdir"
console=$outdir/console.log
: >"$console"

# "make bench": QEMU counts instructions, one per nanosecond of guest time,
# and has room for 1 GiB of bench guest memory three times (memory,
# reference copy, snapshot image, the latter in the initramfs tmpfs).
icount= svm_mem=2G
# sleep=off: an idle vCPU does not let real time into the guest clock.
case " $* " in *" nestkit.bench="*) icount="-icount shift=0,sleep=off" svm_mem=6G ;; esac

case $vendor in
svm)
	# shellcheck disable=SC2086
	qemu-system-x86_64 $icount \
		-accel tcg,thread=single -cpu max -smp "${BOOT_CPUS:-2}" -m $svm_mem -machine q35 \
		-display none -monitor none -serial "file:$console" -nic none \
		-no-reboot -kernel "$kernel" -initrd "$initrd" \
		-append "$cmdline" >"$outdir/emulator.log" 2>&1 </dev/null &
	;;
vmx)
	iso=$outdir/iso
	rm -rf "$iso"; mkdir -p "$iso"
	cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$iso/"
	cp "$kernel" "$iso/bzimage"
	cp "$initrd" "$iso/initrd.gz"
	printf 'DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL /bzimage\n  APPEND initrd=/initrd.gz %s\n' \
		"$cmdline" >"$iso/isolinux.cfg"
	genisoimage -quiet -o "$outdir/boot.iso" -b isolinux.bin -c boot.cat \
		-no-emul-boot -boot-load-size 4 -boot-info-table -R -J "$iso"
	cat >"$outdir/bochsrc" <<EOT
megs: 1024
cpu: model=${BOCHS_MODEL:-corei7_skylake_x}, count=1, ips=200000000
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
ata0-master: type=cdrom, path=$outdir/boot.iso, status=inserted
boot: cdrom
pci: enabled=1, chipset=i440fx
clock: sync=none, time0=local
com1: enabled=1, mode=file, dev=$console
display_library: term
speaker: enabled=0
sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy
log: $outdir/bochs.log
# Bochs logs every nested EPT violation at "error" level: megabytes per test.
error: action=ignore
info: action=ignore
EOT
	echo c >"$outdir/bochs.rc"   # Debian builds the debugger in: just continue
	setsid script -qfec \
		"TERM=xterm exec bochs-bin -q -f $outdir/bochsrc -rc $outdir/bochs.rc" /dev/null \
		>"$outdir/emulator.log" 2>&1 </dev/null &
	;;
*) die "unknown vendor '$vendor' (svm or vmx)" ;;
esac

pid=$!
start=$(date +%s)
rc=0
# Bochs' term display draws the VGA screen into a pty of its own ("Bochs
# connected to screen /dev/pts/N"). Nobody reads that pty, so once its
# buffer is full Bochs blocks in write() and the guest stops. A kernel with
# a VGA console (Debian's) fills it in minutes: read it away.
drain=
# OUTDIR/timeline: the host second at which each test started and ended,
# kmemleak's scan and the end were seen (to within the 1 s poll), for
# timings: Bochs' guest clock counts instructions, not host time.
marks='^# nestkit: (run |kmemleak|done)|^(not )?ok [0-9]'
: >"$outdir/timeline"
started=0
# The console's complete lines: the guest may be in the middle of one.
lines() { if [ -n "$(tail -c 1 "$console")" ]; then sed '$d' "$console"; else cat "$console"; fi; }
screen() { sed -n 's|^Bochs connected to screen "\{0,1\}\(/dev/pts/[0-9]*\).*|\1|p' "$outdir/emulator.log" 2>/dev/null; }
while kill -0 "$pid" 2>/dev/null; do
	if [ "$vendor" = vmx ] && [ -z "$drain" ] && [ -n "$(screen)" ]; then
		cat "$(screen)" >/dev/null 2>&1 &
		drain=$!
	fi
	# One read of the console per poll; grep exits 1 on no match.
	lines | grep -a -E "$marks" | tr -d '\r' >"$outdir/marks" || true
	n=$(wc -l <"$outdir/marks")
	if [ "$n" -gt "$started" ]; then
		tail -n +$((started + 1)) "$outdir/marks" |
			sed "s/^/$(($(date +%s) - start)) /" >>"$outdir/timeline"
		started=$n
	fi
	if grep -q 'Kernel panic - not syncing' "$console"; then
		sleep 2; rc=1; break
	fi
	# With acpi=off (the Bochs debug plans) the kernel cannot power the
	# machine off and halts it instead: that is the end of the run.
	if grep -q -E '(^|\] )reboot: Power off not available: System halted instead' "$console"; then
		break
	fi
	if [ $(($(date +%s) - start)) -ge "$limit" ]; then
		rc=124; break
	fi
	sleep 1
done
# Bochs runs under script(1) in its own session: take the whole group down.
pkill -P "$pid" 2>/dev/null || true
kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
[ -z "$drain" ] || kill "$drain" 2>/dev/null || true
echo "$(($(date +%s) - start))" >"$outdir/seconds"
exit $rc
