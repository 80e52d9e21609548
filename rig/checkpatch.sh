#!/usr/bin/env bash
# checkpatch.pl --strict on one patch of the series, run in the prepared
# source tree (rig/prepare.sh) so that every file the series adds exists.
# checkpatch asks "does MAINTAINERS need updating?" for every added file;
# instead of silencing it, answer it: each added file must already be
# covered by a MAINTAINERS entry (scripts/get_maintainer.pl).
# Usage: checkpatch.sh PATCH
. "$(dirname "$0")/common.sh"

patch=$(realpath "$1")
with_lock
cd "$SRC_TREE"
# Debian's python3 (with python3-ply, python3-git) runs spdxcheck.py.
# The base tree is Debian's source tarball, without upstream history, so
# checkpatch cannot look up the commit of a "Fixes:" tag (UNKNOWN_COMMIT_ID);
# it still checks the tag's form (GIT_COMMIT_ID).
rc=0
PATH=/usr/bin:/bin ./scripts/checkpatch.pl --strict -q --ignore FILE_PATH_CHANGES,UNKNOWN_COMMIT_ID \
	"$patch" || rc=1
for f in $(awk '/^diff --git/ { file = substr($4, 3) } /^new file mode/ { print file }' "$patch"); do
	if ! PATH=/usr/bin:/bin ./scripts/get_maintainer.pl --no-git --no-git-fallback \
		--no-rolestats -f "$f" 2>/dev/null | grep -q .; then
		echo "WARNING: $f is added but no MAINTAINERS entry covers it"
		rc=1
	fi
done
exit $rc
