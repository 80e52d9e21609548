#!/usr/bin/env bash
# Stage 6: turn a guest console log into per-test results.
# Reads the KTAP lines printed by rig/guest/init, the plan, and
# tests/known-failures.list; detects guest oops/panic/WARN/KASAN reports and
# charges them to the test that was running. Writes OUTDIR/results.tsv
# (vendor, test, PASS|FAIL|XFAIL|XPASS, detail) and prints a table. A test
# that skips itself is a failure: a plan lists only tests that must run here.
# The debug kernel's kmemleak scan at the end of the run (rig/guest/init)
# becomes the row "kernel(kmemleak)": it fails on any unreferenced object
# with a function of KVM in its backtrace (KVM_FUNCTIONS: one name a line,
# from rig/build.sh), and on a kmemleak that could not scan.
# A guest fuzzer's row gives its seed, iterations, operations and
# mismatches; it fails without that line, with a mismatch or with fewer
# than 100,000 operations.
# A test after which one of its VMs still exists fails (rig/guest/init
# compares KVM's debugfs directories before and after each test).
# EXPECT_SCAN=1 (the debug kernel): a run that finished without a scan, or
# without the list, fails too.
# Usage: collect.sh TARGET OUTDIR PLAN_FILE BOOT_STATUS [KVM_FUNCTIONS [EXPECT_SCAN]]
. "$(dirname "$0")/common.sh"

target=$1 outdir=$2 plan=$3 boot_rc=$4 kvmfn=${5:-/dev/null} expect_scan=${6:-0}
# Known failures are per vendor; results are labelled with the target.
awk -v vendor="${target%%-*}" -v target="$target" -v boot_rc="$boot_rc" \
    -v kf="$NESTKIT_ROOT/tests/known-failures.list" -v kvmfn="$kvmfn" -v expect_scan="$expect_scan" '
BEGIN {
	FS = "\n"
	while ((getline l < kvmfn) > 0) { kvm[l] = 1; nkvmfn++ }
	while ((getline l < kf) > 0) {
		if (l ~ /^[[:space:]]*(#|$)/) continue
		split(l, w, " ")
		if (w[1] != vendor) continue
		if (w[2] == "boot-warning") {
			r = l; sub(/^[^ ]+ +[^ ]+ +[^ ]+ +/, "", r); bootwarn[w[3]] = r
		} else {
			r = l; sub(/^[^ ]+ +[^ ]+ +/, "", r); known[w[2]] = r
		}
	}
	cur = "(boot)"
}
FILENAME == ARGV[1] { split($0, w, " "); n_plan++; plan[n_plan] = w[1]; next }
{ sub(/\r$/, "") }
/^# nestkit: run / { split($0, w, " "); cur = w[4]; assert_at = 0; next }
# A selftest assertion: keep its location and message for the report.
/^==== Test Assertion Failure ====/ { assert_at = 1; next }
assert_at == 1 { why[cur] = $0; sub(/^ +/, "", why[cur]); assert_at = 2; next }
assert_at == 2 && /^  / && !/^  pid=/ { m = $0; sub(/^ +/, "", m); why[cur] = why[cur] ": " m; assert_at = 0; next }
/^# nestkit: done/ { done = 1; next }
# The last line of a guest fuzzer (userspace/fuzz/kvm/fuzz.h): its row shows it.
/^nestkit-fuzz-[a-z-]+: seed [^ ]+ iterations [0-9]+ guest-ops [0-9]+ mismatches [0-9]+$/ {
	l = $0; sub(/^[^:]*: /, "", l); fuzzsum[cur] = l; next
}
# What a fuzzer attributed to the emulator instead of counting it a
# mismatch (fuzz_remote_read): shown in its row, never hidden.
/^nestkit-fuzz-[a-z-]+: the emulator.s, not counted as mismatches: / {
	l = $0; sub(/^[^:]*: /, "", l); fuzzemu[cur] = l; next
}
# A VM still alive after its test exited: a reference KVM never dropped.
/^# nestkit: VMs left by / { l = $0; sub(/^# nestkit: VMs left by /, "", l); t = l; sub(/:.*/, "", t)
	sub(/^[^:]*: */, "", l); vmleft[t] = l; next }
/^# nestkit: VM check unavailable/ { if (vmcheckoff == "") { vmcheckoff = $0; sub(/^# nestkit: /, "", vmcheckoff) }; next }
/^# nestkit: kmemleak scan: / { leakscan = 1; next }
/^# nestkit: kmemleak unavailable/ { leakoff = $0; sub(/^# nestkit: /, "", leakoff); next }
/^# kmemleak: / {
	l = $0; sub(/^# kmemleak: */, "", l)
	if (l ~ /^unreferenced object/) { nleak++; obj = l; sub(/:$/, "", obj); objkvm = 0; next }
	if (l ~ /^comm /) { comm = l; next }
	# A backtrace frame (6.12 prints "%pS"): "func+0x12/0x34", maybe with a
	# compiler suffix (func.constprop.0+...); anchored, so that the ASCII
	# column of the hex dump cannot match.
	if (!objkvm && match(l, /^[A-Za-z_][A-Za-z0-9_.]*\+0x[0-9a-f]+\/0x[0-9a-f]+/)) {
		fn = substr(l, 1, index(l, "+") - 1); sub(/\..*/, "", fn)
		if (fn in kvm) { objkvm = 1; nkvm++; if (kvmleak == "") kvmleak = obj " from " fn " (" comm ")" }
	}
	next
}
/Bail out!/ { bail = $0; sub(/.*Bail out! */, "", bail); next }
/^(not )?ok [0-9]+ / {
	line = $0; sub(/^(not )?ok [0-9]+ /, "", line)
	name = line; sub(/ .*/, "", name)
	detail = ""; if (index(line, "#")) { detail = line; sub(/^[^#]*# */, "", detail) }
	if ($0 ~ /^not ok/) { st[name] = "FAIL"; if (name in why) detail = detail " (" why[name] ")" }
	else if (detail ~ /^SKIP/) st[name] = "SKIP"
	else st[name] = "PASS"
	det[name] = detail
	cur = "(between tests)"
	next
}
# A WARNING (lockdep too) or INFO (lockdep, RCU stalls) starts
# its message; "RETBleed: WARNING: ..." is a boot notice. KFENCE reports
# are "BUG: KFENCE:".
/(Kernel panic|BUG:|Oops|(^|\] )WARNING:|(^|\] )(rcu: )?INFO: |general protection fault|KASAN:|UBSAN:|kernel BUG at)/ {
	o = $0; sub(/^\[[ 0-9.]+\] */, "", o)
	site = ""
	if (match(o, / at [^ ]+:[0-9]+/)) { site = substr(o, RSTART + 4, RLENGTH - 4); sub(/.*\//, "", site) }
	# Emulator CPU-model quirks that warn while booting, before KVM runs.
	if (cur == "(boot)" && o ~ /^WARNING:/ && (site in bootwarn)) { allowed[site] = 1; next }
	if (!(cur in oops)) oops[cur] = o
}
END {
	for (i = 1; i <= n_plan; i++) {
		t = plan[i]; s = st[t]; d = det[t]
		if (s == "") {
			s = "FAIL"
			d = bail != "" ? "not run: " bail : \
			    boot_rc == 124 ? "not run: boot timed out" : "not run: guest ended early"
		}
		if (s == "SKIP") { s = "FAIL"; d = "skipped (" d "): a plan test must run, or be listed in tests/known-failures.list" }
		# A fuzzer passes with its summary, no mismatch and at least
		# 100,000 guest operations, whatever its exit status says.
		if (t ~ /^fuzz_/ && s == "PASS") {
			if (t in fuzzsum) split(fuzzsum[t], f, " ")
			if (!(t in fuzzsum)) { s = "FAIL"; d = "no summary line (seed, iterations, guest-ops, mismatches)" }
			else if (f[8] != 0) { s = "FAIL"; d = fuzzsum[t] }
			else if (f[6] < 100000) { s = "FAIL"; d = fuzzsum[t] ": fewer than 100,000 guest operations" }
			else d = fuzzsum[t]
			if (s == "PASS" && (t in fuzzemu) && fuzzemu[t] !~ /mismatches: 0 [^,]*, 0 /) d = d "; " fuzzemu[t]
		} else if (t in fuzzsum) d = d " (" fuzzsum[t] ")"
		if (t in oops) { s = "FAIL"; d = "guest kernel: " oops[t] }
		else if (t in vmleft) { s = "FAIL"; d = "KVM did not destroy the VM(s) after the test exited (debugfs kvm/" vmleft[t] ")" }
		# Only a test that ran and failed can be a known failure; a kernel
		# splat is never one (it also silences KASAN/lockdep after it).
		if ((t in known) && st[t] != "" && !(t in oops) && !(t in vmleft)) {
			if (s == "FAIL") { s = "XFAIL"; d = "known failure: " known[t] }
			else if (s == "PASS") { s = "XPASS"; d = "passes but is in tests/known-failures.list: remove it" }
		}
		printf "%s\t%s\t%s\t%s\n", target, t, s, d
	}
	if (expect_scan && nkvmfn == 0)
		printf "%s\t%s\t%s\t%s\n", target, "kernel(kmemleak)", "FAIL", \
		    "no list of KVM functions (" kvmfn "): leaks cannot be attributed"
	else if (expect_scan && done && !leakscan && leakoff == "")
		printf "%s\t%s\t%s\t%s\n", target, "kernel(kmemleak)", "FAIL", \
		    "the debug kernel ran no kmemleak scan (no /sys/kernel/debug/kmemleak?)"
	else if (leakoff != "")
		printf "%s\t%s\t%s\t%s\n", target, "kernel(kmemleak)", "FAIL", leakoff
	else if (leakscan && nkvm)
		printf "%s\t%s\t%s\t%s\n", target, "kernel(kmemleak)", "FAIL", \
		    nkvm " of " nleak " unreferenced objects have a KVM frame, e.g. " kvmleak
	else if (leakscan)
		printf "%s\t%s\t%s\t%s\n", target, "kernel(kmemleak)", "PASS", \
		    (nleak + 0) " unreferenced objects, none with a KVM frame"
	if (vmcheckoff != "")
		printf "%s\t%s\t%s\t%s\n", target, "kernel(vm-check)", "FAIL", vmcheckoff
	for (aw in allowed)
		printf "%s\t%s\t%s\t%s\n", target, "kernel(boot) " aw, "XFAIL", "known boot warning: " bootwarn[aw]
	for (c in oops) if (c ~ /^\(/)
		printf "%s\t%s\t%s\t%s\n", target, "kernel" c, "FAIL", "guest kernel: " oops[c]
	if (!done && bail == "")
		printf "%s\t%s\t%s\t%s\n", target, "(run)", "FAIL", \
		    boot_rc == 124 ? "guest did not finish: emulator timed out" : "guest did not finish: crashed or hung"
	else if (bail != "" && n_plan == 0)
		printf "%s\t%s\t%s\t%s\n", target, "(run)", "FAIL", bail
}' "$plan" "$outdir/console.log" >"$outdir/results.tsv"

print_results "$outdir/results.tsv"
