#!/usr/bin/env bash
# Stage 3: build bzImage from pristine base + series + config fragment.
# Output: $ARTIFACTS/kernel-<key>/{bzImage,config}; prints that directory last.
# The key covers base version, series, patches and config, so an unchanged
# input is never rebuilt; a changed one rebuilds incrementally in the shared
# O= directory, with ccache underneath.
# Usage: build-kernel.sh [N] [extra-fragment]   (first N patches; extra config)
. "$(dirname "$0")/common.sh"

n=${1:-all}
extra=${2:-}
installed=$(dpkg-query -W -f='${Version}' "$BASE_PACKAGE")
key=$( {
	echo "$installed $n $(gcc -dumpfullversion)"
	cat "$KERNEL_DIR/series" "$KERNEL_DIR/config/nestkit.config"
	[ -z "$extra" ] || cat "$extra"
	series_patches | xargs -r cat
} | sha256sum | cut -c1-16)
out=$ARTIFACTS/kernel-$key
if [ -f "$out/bzImage" ]; then
	info "kernel for this base+series+config is cached ($key)" >&2
	echo "$out"
	exit 0
fi

"$NESTKIT_ROOT/rig/prepare.sh" "${1:-}" >&2
with_lock
export CCACHE_DIR=$NESTKIT_CACHE/ccache CCACHE_MAXSIZE=5G
export KBUILD_BUILD_TIMESTAMP="2000-01-01" KBUILD_BUILD_USER=nestkit KBUILD_BUILD_HOST=rig
kmake() { make -C "$SRC_TREE" O="$BUILD_DIR" CC="ccache gcc" "$@"; }
mkdir -p "$BUILD_DIR" "$out.tmp"
log=$out.tmp/build.log

step "configuring kernel (tinyconfig + kernel/config/nestkit.config${extra:+ + $extra})" >&2
frags=("$KERNEL_DIR/config/nestkit.config")
[ -z "$extra" ] || frags+=("$extra")
logged "$log" kmake tinyconfig
logged "$log" "$SRC_TREE/scripts/kconfig/merge_config.sh" -m -O "$BUILD_DIR" \
	"$BUILD_DIR/.config" "${frags[@]}"
logged "$log" kmake olddefconfig
# merge_config only warns when Kconfig drops a request: make it fatal.
bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) want=$line ;;
	'# CONFIG_'*' is not set') want=${line#\# }; want="${want%% *}=n" ;;
	*) continue ;;
	esac
	opt=${want%%=*}
	have=$(grep -E "^$opt=|^# $opt is not set" "$BUILD_DIR/.config" || true)
	case "$want" in
	*=n) [[ -z "$have" || "$have" == "# $opt is not set" ]] && continue ;;
	*) [ "$have" = "$want" ] && continue ;;
	esac
	warn "config: asked for $want, got '${have:-unset}' (missing dependency?)"
	bad=1
done < <(cat "${frags[@]}")
[ "$bad" = 0 ] || die "kernel config does not honour the fragment"

step "building bzImage on $(nproc) cores (first build about 7 min, later ones incremental)" >&2
t=$(date +%s)
logged "$log" kmake -j"$(($(nproc) + 1))" bzImage ||
	die "kernel build failed (full log: $log)"
cp "$BUILD_DIR/arch/x86/boot/bzImage" "$BUILD_DIR/.config" "$out.tmp/"
rm -rf "$out"; mv "$out.tmp" "$out"
info "bzImage built in $(( $(date +%s) - t )) s, $(du -k "$out/bzImage" | cut -f1) KiB" >&2
echo "$out"
