#!/usr/bin/env bash
# The patch queue's shape, checked before anything is applied: kernel/series
# names each topic once, with a comment; every topic folder is listed, holds a
# cover letter and patches numbered 0001..N with nothing else beside them; the
# cover letter is "[PATCH... 0/N]" for those N patches, names what it
# applies on top of ("Depends-on:", topics earlier in the series, or "none")
# and has a "Changes since" section for the next round.
# Prints one ERROR line per problem; the last line sums up the series.
. "$(dirname "$0")/common.sh"

errors=0
err() { echo "ERROR: $*"; errors=$((errors + 1)); }

declare -A seen=()
earlier=()
total=0
while read -r topic rest; do
	[ -z "${seen[$topic]:-}" ] || err "kernel/series lists $topic twice"
	seen[$topic]=1
	case "$rest" in '#'?*) ;; *) err "kernel/series: $topic has no '# comment' saying what it is" ;; esac
	dir=$KERNEL_DIR/patches/$topic
	cover=$dir/$COVER_LETTER
	if [ ! -d "$dir" ]; then
		err "kernel/series lists $topic, but kernel/patches/$topic/ does not exist"
		continue
	fi
	n=0
	for f in "$dir"/*; do
		name=$(basename "$f")
		[ "$name" = "$COVER_LETTER" ] && continue
		n=$((n + 1))
		case "$name" in
		"$(printf '%04d' "$n")"-*.patch) ;;
		*) err "$topic/$name: expected patch $(printf '%04d' "$n")-*.patch (numbered from 0001, nothing else in the folder)" ;;
		esac
	done
	[ "$n" -gt 0 ] || err "$topic has no patches"
	total=$((total + n))
	if [ ! -f "$cover" ]; then
		err "$topic has no $COVER_LETTER"
	else
		grep -Eq "^Subject: \[PATCH( v[0-9]+)? 0/$n\] [^*]" "$cover" ||
			err "$topic/$COVER_LETTER: subject is not '[PATCH 0/$n] <title>' ($n patches)"
		grep -q '^Depends-on: ' "$cover" ||
			err "$topic/$COVER_LETTER: no 'Depends-on: <topics>|none' line"
		for d in $(topic_depends "$topic"); do
			case " ${earlier[*]} " in
			*" $d "*) ;;
			*) err "$topic depends on '$d', which is not a topic earlier in kernel/series" ;;
			esac
		done
		grep -q '^Changes since v' "$cover" ||
			err "$topic/$COVER_LETTER: no 'Changes since v<N>' section"
	fi
	earlier+=("$topic")
done < <(series_entries)

for f in "$KERNEL_DIR"/patches/*; do
	[ -e "$f" ] || continue
	name=$(basename "$f")
	if [ ! -d "$f" ]; then
		err "kernel/patches/$name: patches live in topic folders"
	elif [ -z "${seen[$name]:-}" ]; then
		err "kernel/patches/$name/ is not listed in kernel/series"
	fi
done

[ "$errors" = 0 ] || exit 1
echo "${#earlier[@]} topics, $total patches: ${earlier[*]}"
