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
# The paths that use no nestkit capability: run on both kernels.
base_cases=ipi,base-vmcall,base-gp,base-pf

out=$NESTKIT_ROOT/out/bench
# BENCH_TABLES_ONLY=1: write the tables again from the logs of the last run.
if [ -z "${BENCH_TABLES_ONLY:-}" ]; then
	"$NESTKIT_ROOT/rig/deps.sh"
	after=$("$NESTKIT_ROOT/rig/build.sh")
	before=$("$NESTKIT_ROOT/rig/build.sh" -k -n 0)
	rm -rf "$out"
	step "patched kernel: snapshot bench and every cost case ($iterations iterations each)"
	BENCH_COST=$iterations "$NESTKIT_ROOT/rig/run-guests.sh" "$after" "$out/patched" bench svm vmx
	step "pristine $BASE_PACKAGE: the cost cases without a capability"
	BENCH_PAGES=none BENCH_COST=$iterations:$base_cases NESTED_DEMOS=$after/demo \
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

# "# cost CASE: n N min A median B max C exits/op E userspace-exits/op U; check"
# -> "KERNEL VENDOR CASE MIN MEDIAN MAX EXITS UEXITS"
for k in patched pristine; do
	for v in svm vmx; do
		grep -a '^# cost [a-z0-9-]*: n ' "$out/$k/$v/console.log" | tr -d '\r' |
			awk -v k="$k" -v v="$v" '{ sub(/:$/, "", $3); sub(/;$/, "", $15); print k, v, $3, $7, $9, $11, $13, $15 }'
	done
done >"$out/costs.txt"

fig() { awk -v k="$1" -v v="$2" -v c="$3" -v f="$4" '$1 == k && $2 == v && $3 == c { print $f }' "$out/costs.txt"; }
# ratio VENDOR "A-kernel A-case" "B-kernel B-case" GOAL(or -) LABEL
ratio() {
	local v=$1 a b r met
	a=$(fig ${2% *} "$v" ${2#* } 5) b=$(fig ${3% *} "$v" ${3#* } 5)
	if [ -z "$a" ] || [ -z "$b" ] || [ "$b" = 0 ]; then
		echo "| $v | $5 | - | ${4/-/no goal} | no figure (case unavailable or failed) |"
		return
	fi
	r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
	if [ "$4" = - ]; then met=-
	else met=$(awk -v r="$r" -v g="$4" 'BEGIN { print (r <= g) ? "met" : sprintf("missed by %.1f%%", (r / g - 1) * 100) }')
	fi
	echo "| $v | $5 | $r ($a / $b) | $4 | $met |"
}

{
	echo "# What nestkit costs (\`make bench\`, $(date -u +%Y-%m-%d))"
	echo
	echo "Written by rig/bench.sh from one run of"
	echo "\`nestkit-cost-bench-demo --iterations $iterations\` (userspace/demo/nested/cost_bench.c)"
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
	echo "Every case checked its own outcome (the last column) or printed no figure."
	echo "\"exits/op\": KVM's \"exits\" vCPU statistic per operation; \"userspace\": KVM_RUN"
	echo "returns per operation (mf-* include the ucall that write-protects the page again)."
	echo
	echo "## Ratios (medians)"
	echo
	echo "| vendor | comparison | ratio | goal | |"
	echo "|---|---|---|---|---|"
	for v in svm vmx; do
		ratio "$v" "patched relay-l2" "patched relay-l1" 1.10 "F1: relayed L2 post / the same post from L1"
		ratio "$v" "patched relay-l2" "patched relay-reflect" 0.5 "F1: relayed L2 post / L1 forwarding it"
		ratio "$v" "patched vmw-l2" "patched vmw-l1" 1.2 "F2: L2 CPL3 backdoor IN in L0 / the same IN from L1 CPL3"
		ratio "$v" "patched vmw-l2" "patched vmw-reflect" - "F2: L2 backdoor IN in L0 / L1 handling the #GP"
		ratio "$v" "patched rrr" "patched ipi" - "F3: Remote Read round trip / fixed IPI"
		ratio "$v" "patched mf-exit" "patched mf-uffd" - "F4: memory-fault exit / userfaultfd-wp fault"
		for c in ${base_cases//,/ }; do
			ratio "$v" "patched $c" "pristine $c" 1.005 "everyone: $c, patched / pristine"
		done
	done
	echo
	echo "## Every case"
	echo
	echo "| kernel | vendor | case | min | median | max | exits/op | userspace/op |"
	echo "|---|---|---|---|---|---|---|---|"
	awk '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$out/costs.txt"
	echo
	echo "## What each case checked"
	echo
	for k in patched pristine; do
		for v in svm vmx; do
			grep -a -E '^# cost ' "$out/$k/$v/console.log" | tr -d '\r' |
				sed -e "s/^# cost /- $k $v /" -e 's/: n [0-9]* min .* userspace-exits\/op [0-9.]*; /: /'
		done
	done
} >"$out/costs.md"
cat "$out/snapshot.md"
echo
cat "$out/costs.md"
[ "$ok" = 1 ] || die "a bench run failed (logs in $out/)"
mkdir -p "$NESTKIT_ROOT/docs/bench"
cp "$out/costs.md" "$NESTKIT_ROOT/docs/bench/costs.md"
step "bench done: out/bench/, docs/bench/costs.md"
