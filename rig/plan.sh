#!/usr/bin/env bash
# Reads the test plans tests/plans/TARGET.list. A target is a vendor (svm,
# vmx), optionally with a variant after a dash (vmx-noapicv) that boots the
# same vendor with other kernel parameters, given in the plan as
#   #! cmdline: kvm_intel.enable_apicv=0
# A plan line is "selftest [args...]"; '#' starts a comment.
#   plan.sh --targets         every target, in order
#   plan.sh --all-binaries    every selftest named by any plan, once (not $DEMO_TESTS,
#                             $NESTED_TESTS, $FUZZ_TESTS, $SCRIPT_TESTS)
#   plan.sh --cmdline TARGET  the target's extra kernel parameters
#   plan.sh --cpus TARGET     the emulated machine's CPU count: 2 on svm, 1 on
#                             vmx (Bochs emulates one), or a "#! cpus: N" line
#   plan.sh --kernel TARGET   "rig" (the series' own kernel, the default),
#                             "debian" (Debian's image + the DKMS modules) or
#                             "debug" (the rig kernel with kernel/config/debug.config),
#                             from a "#! kernel: ..." line
# A plan may run another plan's tests first: "#! include: svm".
#   plan.sh TARGET            the target's test lines, normalized
. "$(dirname "$0")/common.sh"

plans=$NESTKIT_ROOT/tests/plans
strip() { sed -e 's/#.*//' -e 's/[[:space:]]\+/ /g' -e 's/^ //' -e 's/ $//' -e '/^$/d' "$@"; }
file() { [ -f "$plans/$1.list" ] || die "no test plan tests/plans/$1.list"; echo "$plans/$1.list"; }
case "${1:-}" in
--targets) for p in "$plans"/*.list; do basename "$p" .list; done ;;
--all-binaries) strip "$plans"/*.list | cut -d' ' -f1 | sort -u | grep -vxF -f <(printf '%s\n' $DEMO_TESTS $NESTED_TESTS $FUZZ_TESTS $SCRIPT_TESTS) ;;
--cmdline) sed -n 's/^#! *cmdline: *//p' "$(file "$2")" | tr '\n' ' ' ;;
--cpus) n=$(sed -n 's/^#! *cpus: *//p' "$(file "$2")" | head -n 1 | tr -d '[:space:]')
	case ${2%%-*}:${n:-default} in
	svm:default) echo 2 ;; vmx:default|vmx:1) echo 1 ;;
	svm:[1-9]) echo "$n" ;;
	*) die "plan $2: cannot boot '$n' CPUs (QEMU: 1-9; Bochs: 1)" ;;
	esac ;;
--kernel) k=$(sed -n 's/^#! *kernel: *//p' "$(file "$2")" | head -n 1)
	case ${k:-rig} in rig|debian|debug) echo "${k:-rig}" ;; *) die "plan $2: unknown kernel '$k'" ;; esac ;;
''|-*) die "usage: plan.sh --targets | --all-binaries | --cmdline TARGET | --cpus TARGET | --kernel TARGET | TARGET" ;;
*) f=$(file "$1")
	# A plan that includes itself, directly or not, would never end.
	case " ${PLAN_INCLUDED:-} " in *" $1 "*) die "plan $1 includes itself (${PLAN_INCLUDED# })" ;; esac
	for inc in $(sed -n 's/^#! *include: *//p' "$f"); do
		PLAN_INCLUDED="${PLAN_INCLUDED:-} $1" "$0" "$inc" || exit
	done
	strip "$f" ;;
esac
