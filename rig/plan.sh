#!/usr/bin/env bash
# Reads the test plans in tests/plans/<vendor>.list.
# A plan line is "selftest [args...]"; '#' starts a comment.
#   plan.sh --all-binaries   every selftest named by any plan, once
#   plan.sh VENDOR           the plan's lines, normalized
. "$(dirname "$0")/common.sh"

plans=$NESTKIT_ROOT/tests/plans
strip() { sed -e 's/#.*//' -e 's/[[:space:]]\+/ /g' -e 's/^ //' -e 's/ $//' -e '/^$/d' "$@"; }
case "${1:-}" in
--all-binaries) strip "$plans"/*.list | cut -d' ' -f1 | sort -u ;;
'') die "usage: plan.sh --all-binaries | VENDOR" ;;
*) [ -f "$plans/$1.list" ] || die "no test plan tests/plans/$1.list"
   strip "$plans/$1.list" ;;
esac
