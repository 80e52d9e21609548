#!/usr/bin/env bash
# Patch-queue workflow. kernel/series + kernel/patches/<topic>/ are the only
# source of truth; a working tree is a throwaway view of them.
#   pq.sh edit [DIR]     create DIR (default work/linux): a git tree at the
#                        pristine base (tag "base") with the series applied by
#                        "git am", one commit per patch. Each topic starts with
#                        an empty marker commit "nestkit-topic: <topic>": keep
#                        it in front of its topic's commits when you rebase; a
#                        new marker makes a new topic.
#   pq.sh export [DIR]   write DIR's commits base..HEAD back into the topic
#                        folders (git format-patch, stable names) and
#                        kernel/series (topics in marker order, comments kept).
#                        Cover letters keep their subject title and text; their
#                        "0/N", shortlog and diffstat are regenerated. A new
#                        topic gets a template cover letter to fill in.
. "$(dirname "$0")/common.sh"

cmd=${1:-}
dir=$(realpath -m "${2:-$NESTKIT_ROOT/work/linux}")
marker="nestkit-topic:"

# export_cover TOPIC FIRST LAST N: (re)write TOPIC's cover letter for its N
# commits FIRST..LAST (FIRST is the topic's marker commit).
export_cover() {
	local topic=$1 first=$2 last=$3 n=$4 cover full gen keep
	cover=$KERNEL_DIR/patches/$topic/$COVER_LETTER
	full=$(git -C "$dir" format-patch -N --no-signature --cover-letter --stdout "$first..$last")
	# The generated part: shortlog and diffstat, after git's blurb placeholder.
	gen=$(awk '/^\*\*\* BLURB HERE \*\*\*$/ { on = 1; getline; next }
		   on && /^From [0-9a-f]+ Mon Sep 17 00:00:00 2001$/ { on = 0 } on' <<<"$full")
	if [ -f "$cover" ]; then
		# Header and text up to the generated part, which starts at the
		# shortlog's "Author Name (N):" line.
		keep=$(awk '/^[^ ].* \([0-9]+\):$/ { exit } { print }' "$cover" |
			sed -E "s|^(Subject: \[PATCH( v[0-9]+)?) [0-9]+/[0-9]+\]|\1 0/$n]|")
	else
		keep=$(awk '/^\*\*\* BLURB HERE \*\*\*$/ { done = 1 } !done' <<<"$full" |
			sed "s|^Subject: \[PATCH\] \*\*\* SUBJECT HERE \*\*\*|Subject: [PATCH 0/$n] *** SUBJECT HERE ***|")
		keep+=$'\n'"*** What this series solves and for whom, the uAPI it adds, how it was tested,"
		keep+=$'\n'"what it does not cover. ***"$'\n\n'"Dependencies"$'\n'"------------"$'\n'
		keep+="Depends-on: none"$'\n\n'"Changes since v1"$'\n'"----------------"$'\n'"- (none yet)"$'\n'
		warn "$topic: new topic; write its cover letter ($cover) and its line in kernel/series"
	fi
	printf '%s\n\n%s\n' "$keep" "$gen" >"$cover"
}

case $cmd in
edit)
	if [ -d "$dir/.git" ]; then
		ahead=$(git -C "$dir" log --oneline base..HEAD 2>/dev/null | wc -l)
		[ "${FORCE:-0}" = 1 ] ||
			die "$dir exists ($ahead commits on base); export it first, or FORCE=1 to recreate"
	fi
	"$NESTKIT_ROOT/rig/check-layout.sh" >/dev/null || die "fix the series layout first (rig/check-layout.sh)"
	"$NESTKIT_ROOT/rig/base.sh"
	rm -rf "$dir"
	step "cloning the base tree into $dir"
	git_kernel clone -q --no-checkout "$SRC_TREE" "$dir"
	git -C "$dir" config gc.auto 0
	git_kernel -C "$dir" checkout -q -b nestkit base
	total=0
	for topic in $(series_topics); do
		git_kernel -C "$dir" commit -q --allow-empty -m "$marker $topic" \
			-m "Marker for 'make pq-export': the commits after it, up to the next marker, are kernel/patches/$topic/."
		mapfile -t patches < <(topic_patches "$topic")
		git_kernel -C "$dir" am -q "${patches[@]}" ||
			die "topic $topic does not apply: fix it in $dir ('git am --show-current-patch')"
		total=$((total + ${#patches[@]}))
	done
	info "$dir: branch nestkit = base + $total patches in $(series_topics | wc -l) topics; 'make pq-export' writes it back"
	;;
export)
	[ -d "$dir/.git" ] || die "$dir is not a patch-queue tree (make pq-edit first)"
	git -C "$dir" diff --quiet HEAD && git -C "$dir" diff --cached --quiet ||
		die "$dir has uncommitted changes: commit them first"
	# Split base..HEAD at the markers: "TOPIC FIRST LAST" per topic.
	mapfile -t commits < <(git -C "$dir" rev-list --reverse base..HEAD)
	ranges=()
	topic= first= last=
	for c in "${commits[@]}"; do
		subject=$(git -C "$dir" log -1 --format=%s "$c")
		if [[ $subject == "$marker "* ]]; then
			[ -z "$topic" ] || ranges+=("$topic $first $last")
			topic=${subject#"$marker "} first=$c last=$c
			[[ $topic =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "marker $c: bad topic name '$topic'"
		else
			[ -n "$topic" ] || die "commit $c ($subject) comes before any '$marker' marker"
			last=$c
		fi
	done
	[ -z "$topic" ] || ranges+=("$topic $first $last")
	[ ${#ranges[@]} -gt 0 ] || die "no topics in $dir (base..HEAD has no '$marker' marker)"

	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# Keep each topic's comment line from the old series.
	declare -A comment=()
	while read -r t rest; do comment[$t]=$rest; done < <(series_entries)
	{
		echo "# nestkit kernel series: topic series applied in this order onto $BASE_PACKAGE $BASE_VERSION."
		echo "# Each topic is kernel/patches/<topic>/: $COVER_LETTER, then its patches from"
		echo "# 0001. Generated by 'make pq-export' (comments kept); edit through 'make pq-edit'."
	} >"$tmp/series"
	n=0
	declare -A exported=()
	for r in "${ranges[@]}"; do
		read -r topic first last <<<"$r"
		[ "$first" != "$last" ] || die "topic $topic has no commits after its marker"
		[ -z "${exported[$topic]:-}" ] || die "topic $topic has two markers"
		exported[$topic]=1
		tdir=$KERNEL_DIR/patches/$topic
		mkdir -p "$tdir"
		find "$tdir" -maxdepth 1 -name '*.patch' ! -name "$COVER_LETTER" -delete
		# -N, --zero-commit and --no-signature keep unchanged patches
		# byte-identical when others are added or removed.
		git -C "$dir" format-patch -q -N --zero-commit --no-signature --no-stat \
			-o "$tdir" "$first..$last"
		count=$(git -C "$dir" rev-list --count "$first..$last")
		export_cover "$topic" "$first" "$last" "$count"
		printf '%-14s %s\n' "$topic" "${comment[$topic]:-# TODO: one line on what this topic is}" >>"$tmp/series"
		n=$((n + count))
	done
	# Topics without a marker any more are gone.
	for d in "$KERNEL_DIR"/patches/*/; do
		t=$(basename "$d")
		[ -n "${exported[$t]:-}" ] || { warn "topic $t has no marker in $dir: removing kernel/patches/$t/"; rm -rf "$d"; }
	done
	cp "$tmp/series" "$KERNEL_DIR/series"
	info "exported $n patches in ${#ranges[@]} topics to kernel/patches/ and kernel/series"
	git -C "$NESTKIT_ROOT" status --short -- kernel/ | sed 's/^/    /'
	;;
*) die "usage: pq.sh edit|export [DIR]" ;;
esac
