#!/usr/bin/env bash
# Stage 1 of the pipeline: make sure the pristine base tree exists.
# Extracts Debian's linux-source tarball into a git repository whose only
# commit is tagged "base"; every later stage starts from that tag.
. "$(dirname "$0")/common.sh"

installed=$(dpkg-query -W -f='${Version}' "$BASE_PACKAGE" 2>/dev/null) ||
	die "$BASE_PACKAGE is not installed: run 'make deps'"
[ -r "$BASE_TARBALL" ] || die "$BASE_TARBALL missing although $BASE_PACKAGE is installed"

if [ "$installed" != "$BASE_VERSION" ]; then
	warn "base mismatch: installed $BASE_PACKAGE $installed, series pinned to $BASE_VERSION"
	warn "the series will be applied to $installed; 'make series-check' tells whether it still applies"
fi

with_lock
stamp=$SRC_TREE/.git/nestkit-base
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$installed" ]; then
	info "base tree $installed ready ($SRC_TREE)"
	exit 0
fi

step "extracting $BASE_PACKAGE $installed (about 2 min, once per base version)"
if [ "$installed" = "$BASE_VERSION" ]; then
	sum=$(sha256sum "$BASE_TARBALL" | cut -d' ' -f1)
	[ "$sum" = "$BASE_TARBALL_SHA256" ] ||
		die "$BASE_TARBALL checksum $sum differs from the pinned one although the version matches"
fi
rm -rf "$SRC_TREE" "$SRC_TREE.tmp"
mkdir -p "$SRC_TREE.tmp"
tar -xJf "$BASE_TARBALL" -C "$SRC_TREE.tmp" --strip-components=1
info "committing base tree to git"
(
	cd "$SRC_TREE.tmp"
	git init -q -b base-branch
	git config gc.auto 0
	export GIT_AUTHOR_DATE=2000-01-01T00:00:00Z GIT_COMMITTER_DATE=2000-01-01T00:00:00Z
	git_kernel add -A -f .
	git_kernel commit -q -m "$BASE_PACKAGE $installed (pristine)"
	git tag base
)
echo "$installed" >"$SRC_TREE.tmp/.git/nestkit-base"
mv "$SRC_TREE.tmp" "$SRC_TREE"
info "base tree ready: $(git -C "$SRC_TREE" rev-parse --short base)"
