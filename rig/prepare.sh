#!/usr/bin/env bash
# Stage 2: reset the source tree to the pristine base and apply the series,
# topic by topic in kernel/series order, with "git am" (no fuzz). Used by the
# build, by checkpatch and by "make check-series".
# Usage: prepare.sh [N]   apply only the first N patches of the series.
# NESTKIT_TOPICS="a b" applies only those topics (rig/common.sh).
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
	if ! git_kernel am -q --keep-cr "$p" >"$NESTKIT_CACHE/am.log" 2>&1; then
		git am --abort >/dev/null 2>&1 || true
		cat "$NESTKIT_CACHE/am.log" >&2
		die "patch $i/${#patches[@]} $(patch_name "$p") does not apply cleanly to $BASE_PACKAGE $(cat .git/nestkit-base)"
	fi
done
info "applied $i/${#patches[@]} patches of ${NESTKIT_TOPICS:-all topics} onto base $(git rev-parse --short base)"
