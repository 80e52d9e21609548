#!/usr/bin/env bash
# "make bench" (not a test): what nestkit costs, measured inside the patched
# kernel (and the pristine base, for the paths every guest takes) on both
# emulators. QEMU runs with -icount shift=0, so guest time is an instruction
# count there (1 ns = 1 instruction, and the TSC counts the same); Bochs
# (clock sync=none) gives virtual time only.
#   - the lazy snapshot engine's backends against a stop-the-world copy
#     ("nestkit-demo snapshot-bench"), as before;
#   - the cost bench (userspace/demo/nested/cost_bench.c): each nestkit
#     path against the path it replaces, and the paths every guest takes
#     with every capability off, patched kernel against pristine.
# Writes out/bench/{snapshot.md,costs.md} and copies costs.md to
# docs/bench/costs.md (the committed record of the last run).
. "$(dirname "$0")/common.sh"

iterations=${BENCH_ITERATIONS:-1000}
# Each case this many times, in fresh VMs: the figure is the lowest round.
rounds=${BENCH_ROUNDS:-3}
# The paths that use no nestkit capability (the series changes the code
# under each): run on both kernels. Goal: <= 0.5% more on the patched one.
base_cases=ipi,base-vmcall,base-gp,base-pf,relay-l1,relay-reflect,io-l1,io-l2,mf-uffd

out=$NESTKIT_ROOT/out/bench
# BENCH_TABLES_ONLY=1: write the tables again from the logs of the last run.
if [ -z "${BENCH_TABLES_ONLY:-}" ]; then
	"$NESTKIT_ROOT/rig/deps.sh"
	after=$("$NESTKIT_ROOT/rig/build.sh")
	before=$("$NESTKIT_ROOT/rig/build.sh" -k -n 0)
	rm -rf "$out"
	step "patched kernel: snapshot bench and every cost case ($iterations iterations each)"
	BENCH_COST=$iterations BENCH_ROUNDS=$rounds \
		"$NESTKIT_ROOT/rig/run-guests.sh" "$after" "$out/patched" bench svm vmx
	step "pristine $BASE_PACKAGE: the cost cases without a capability"
	BENCH_PAGES=none BENCH_COST=$iterations:$base_cases BENCH_ROUNDS=$rounds NESTED_DEMOS=$after/demo \
		"$NESTKIT_ROOT/rig/run-guests.sh" "$before" "$out/pristine" bench svm vmx
fi

ok=1
for k in patched pristine; do
	for v in svm vmx; do
		log=$out/$k/$v/console.log
		grep -q '^# nestkit: cost exit 0' "$log" ||
			{ warn "$k/$v: the cost bench did not complete and check out (log: $log)"; ok=0; }
		[ "$k" = pristine ] || grep -q '^# nestkit: bench exit 0' "$log" ||
			{ warn "$k/$v: the snapshot bench failed (log: $log)"; ok=0; }
	done
done

# Snapshot backends (the table of docs/design/f4-memory-fault.md).
{
	echo "Guest time in ns: on svm (QEMU -icount shift=0) 1 ns = 1 emulated instruction;"
	echo "on vmx, Bochs virtual time (sync=none, ips=200000000), which batches string"
	echo "instructions and so is not an instruction count."
	echo
	echo "| vendor | memory | method | per write fault | snapshot total | copied on write | longest handler | guest stalled | lost/torn pages |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for v in svm vmx; do
		grep -a '^# bench ' "$out/patched/$v/console.log" | tr -d '\r' | awk -v v="$v" '
		/stop-the-world/ { mib = ($4 + 16) * 4 / 1024
			printf "| %s | %.0f MiB | stop-the-world | - | %s | - | - | %s | 0 |\n", v, mib, $8, $8 }
		/ pass / { mib = ($4 + 16) * 4 / 1024
			printf "| %s | %.0f MiB | %s | %s | %s | %s | %s | - | %s |\n", v, mib, $3, $18, $28, $30, $36, $42 }'
	done
} >"$out/snapshot.md"

# "# cost CASE: n N min A median B max C exits/op E emul/op M io/op I
#  nested-runs R pf/op P userspace-exits/op U rounds R round-min-max L H;
#  check", labels checked: a line the console mangled is refused, not misread.
# -> "KERNEL VENDOR CASE N MIN MEDIAN MAX EXITS EMUL IO NRUNS PF UEXITS ROUNDS LO HI"
for k in patched pristine; do
	for v in svm vmx; do
		grep -a '^# cost [a-z0-9-]*: n ' "$out/$k/$v/console.log" | tr -d '\r' |
			awk -v k="$k" -v v="$v" '
			{ sub(/:$/, "", $3); sub(/;$/, "", $28) }
			$4 == "n" && $6 == "min" && $8 == "median" && $10 == "max" && $12 == "exits/op" &&
			$14 == "emul/op" && $16 == "io/op" && $18 == "nested-runs" && $20 == "pf/op" &&
			$22 == "userspace-exits/op" && $24 == "rounds" && $26 == "round-min-max" &&
			($5 $7 $9 $11 $19 $25 $27 $28) ~ /^[0-9]+$/ {
				print k, v, $3, $5, $7, $9, $11, $13, $15, $17, $19, $21, $23, $25, $27, $28; next }
			{ print "bench: unreadable result line: " $0 > "/dev/stderr"; bad = 1 }
			END { exit bad }' || ok=0
	done
done >"$out/costs.txt"
for k in patched pristine; do
	for v in svm vmx; do
		! grep -a -q '^# cost .*FAILED' "$out/$k/$v/console.log" ||
			{ warn "$k/$v: $(grep -a -m1 '^# cost .*FAILED' "$out/$k/$v/console.log")"; ok=0; }
	done
done
[ "$ok" = 1 ] || die "a bench run failed or its results are unreadable (logs in $out/): no table"
iterations=$(awk 'NR == 1 { print $4 }' "$out/costs.txt")
rounds=$(awk 'NR == 1 { print $14 }' "$out/costs.txt")

# Ratios compare minimums: the undisturbed path. Under -icount the median
# is within a few instructions of it; under Bochs the medians of some cases
# fall on a second mode (a periodic interruption adds about 580 ticks to
# some iterations), which moves between runs.
fig() { awk -v k="$1" -v v="$2" -v c="$3" -v f="$4" '$1 == k && $2 == v && $3 == c { print $f }' "$out/costs.txt"; }
# ratio VENDOR "A-kernel A-case" "B-kernel B-case" GOAL(or -) LABEL
ratio() {
	local v=$1 a b r met
	a=$(fig ${2% *} "$v" ${2#* } 5) b=$(fig ${3% *} "$v" ${3#* } 5)
	if [ -z "$a" ] || [ -z "$b" ] || [ "$b" = 0 ]; then
		echo "| $v | $5 | - | $4 | no figure |"
		return
	fi
	r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
	if [ "$4" = - ]; then met=-
	else met=$(awk -v a="$a" -v b="$b" -v g="$4" 'BEGIN {
		print (a <= b * g) ? "met" : sprintf("missed by %.1f%%", (a / (b * g) - 1) * 100) }')
	fi
	echo "| $v | $5 | $r ($a / $b) | $4 | $met |"
}
# delta VENDOR CASE: patched against pristine, in percent (goal <= 0.5%),
# with each kernel's spread over its rounds: a difference inside the spread
# is the state earlier VMs left, not the code.
delta() {
	local a b
	a=$(fig patched "$1" "$2" 5) b=$(fig pristine "$1" "$2" 5)
	[ -n "$a" ] && [ -n "$b" ] || { echo "| $1 | $2 | - | - | - | no figure |"; return; }
	awk -v v="$1" -v c="$2" -v a="$a" -v b="$b" \
	    -v al="$(fig patched "$1" "$2" 15)" -v ah="$(fig patched "$1" "$2" 16)" \
	    -v bl="$(fig pristine "$1" "$2" 15)" -v bh="$(fig pristine "$1" "$2" 16)" 'BEGIN {
		d = (a - b) * 100 / b
		verdict = d <= 0.5 ? "met" : sprintf("missed by %.2f points", d - 0.5)
		if (d > 0.5 && al <= bh) verdict = verdict " (inside the rounds\x27 spread)"
		printf "| %s | %s | %d (%d-%d) | %d (%d-%d) | %+.2f%% | %s |\n", v, c, a, al, ah, b, bl, bh, d, verdict }'
}

{
	echo "# What nestkit costs (\`make bench\`, $(date -u +%Y-%m-%d))"
	echo
	echo "Written by rig/bench.sh from one run of"
	echo "\`nestkit-cost-bench-demo --iterations $iterations --rounds $rounds\` (userspace/demo/nested/cost_bench.c)"
	echo "inside the patched kernel and inside the pristine $BASE_PACKAGE $BASE_VERSION, on both"
	echo "emulated vendors. A figure is the guest's TSC around one operation minus the"
	echo "cost of the two RDTSCs (case \"empty\"), over $iterations iterations:"
	echo
	echo "- svm: QEMU TCG with \`-icount shift=0\`: the TSC counts emulated instructions, so a"
	echo "  figure is the instructions the whole stack executed for the operation (L2, L1,"
	echo "  L0's KVM, the VMM, and back). Repeatable."
	echo "- vmx: Bochs virtual time in TSC ticks (\`clock: sync=none\`); Bochs batches string"
	echo "  instructions, so this is not an instruction count, but is repeatable too."
	echo
	echo "Every case checked its own outcome (\"What each case checked\" below) and"
	echo "every case of the run passed, or the run printed no figure. Each case ran"
	echo "$rounds times, in fresh VMs; its figures are from the round with the lowest"
	echo "minimum, and the rounds' minimums are given as a range. Ratios compare"
	echo "minimums (the undisturbed path; under -icount the median is within a few"
	echo "instructions of it). Per operation, from KVM's vCPU statistics over the"
	echo "measured loop: exits, emulated instructions (\"emul\"), I/O exits; \"nested"
	echo "runs\": times L1 entered L2 in the loop (1 = only the launch);"
	echo "\"userspace\": KVM_RUN returns (mf-* include the ucall that write-protects"
	echo "the page again). docs/design/costs.md explains the figures."
	echo
	echo "## Ratios"
	echo
	echo "| vendor | comparison | ratio (min / min) | goal | |"
	echo "|---|---|---|---|---|"
	for v in svm vmx; do
		ratio "$v" "patched relay-l2" "patched relay-l1" 1.10 "F1: relayed L2 post / the same post from L1"
		ratio "$v" "patched relay-l2" "patched relay-reflect" 0.5 "F1: relayed L2 post / L1 forwarding it"
		ratio "$v" "patched vmw-l2" "patched vmw-l1" 1.2 "F2: L2 CPL3 backdoor IN in L0 / the same IN from L1 CPL3"
		ratio "$v" "patched vmw-l2" "patched vmw-reflect" - "F2: L2 backdoor IN in L0 / L1 handling the #GP"
		ratio "$v" "patched rrr" "patched ipi" - "F3: Remote Read round trip / fixed IPI to the same target"
		ratio "$v" "patched mf-exit" "patched mf-uffd" - "F4: memory-fault exit / userfaultfd-wp fault"
		ratio "$v" "patched io-l2" "patched io-l1" - "floor: any L2 exit to L0 userspace / the same from L1"
	done
	echo
	echo "## Cost for everyone else: every capability off, patched against pristine"
	echo
	echo "| vendor | path | patched: min (rounds' minimums) | pristine: min (rounds' minimums) | more | goal <= 0.5% |"
	echo "|---|---|---|---|---|---|"
	for v in svm vmx; do
		for c in ${base_cases//,/ }; do delta "$v" "$c"; done
	done
	echo
	echo "## Every case"
	echo
	echo "| kernel | vendor | case | min | median | max | rounds' minimums | exits | emul | I/O exits | nested runs | TDP faults | userspace |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	awk '{ printf "| %s | %s | %s | %s | %s | %s | %s-%s | %s | %s | %s | %s | %s | %s |\n",
	       $1, $2, $3, $5, $6, $7, $15, $16, $8, $9, $10, $11, $12, $13 }' "$out/costs.txt"
	echo
	echo "## What each case checked"
	echo
	for k in patched pristine; do
		for v in svm vmx; do
			grep -a -E '^# cost ' "$out/$k/$v/console.log" | tr -d '\r' |
				sed -e "s/^# cost /- $k $v /" -e 's/: n [0-9]* min .* round-min-max [0-9]* [0-9]*; /: /'
		done
	done
} >"$out/costs.md"
cat "$out/snapshot.md"
echo
cat "$out/costs.md"
mkdir -p "$NESTKIT_ROOT/docs/bench"
cp "$out/costs.md" "$NESTKIT_ROOT/docs/bench/costs.md"
step "bench done: out/bench/, docs/bench/costs.md"
