#!/usr/bin/env bash
# Stage 2: reset the source tree to the pristine base and apply the series
# with "git am" (no fuzz). Used by the build and by "make series-check".
# Usage: prepare.sh [N]   apply only the first N patches of the series.
. "$(dirname "$0")/common.sh"

"$NESTKIT_ROOT/rig/base.sh"
with_lock
mapfile -t patches < <(series_patches)
n=${1:-${#patches[@]}}

cd "$SRC_TREE"
git am --abort >/dev/null 2>&1 || true
git_kernel checkout -q --detach base
git reset -q --hard base
git clean -q -fdx
i=0
for p in "${patches[@]:0:$n}"; do
	i=$((i + 1))
	[ -f "$p" ] || die "series lists $(basename "$p"), which is not in kernel/patches/"
	if ! git_kernel am -q --keep-cr "$p" >"$NESTKIT_CACHE/am.log" 2>&1; then
		git am --abort >/dev/null 2>&1 || true
		cat "$NESTKIT_CACHE/am.log" >&2
		die "patch $i/${#patches[@]} $(basename "$p") does not apply cleanly to $BASE_PACKAGE $(cat .git/nestkit-base)"
	fi
done
info "applied $i/${#patches[@]} patches onto base $(git rev-parse --short base)"
