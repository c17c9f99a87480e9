#!/bin/bash
# What the GDB stub's hooks cost when no debugger uses them: Debian's kernel
# booted to the guest kit's init marker by this corral, by this corral
# with --gdb listening (no debugger attached) and by a corral built without
# the stub (BASE), alternating, on the emu engine.
#
# Usage: BASE=path/to/old/corral bench/gdb.sh [ROUNDS]   (default 3)
# e.g. git worktree add /tmp/base <commit before the stub> && make -C /tmp/base
# Prints each time (wall time to the init marker; CPU time of the whole
# run), the medians and the ratios to BASE.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CORRAL=${CORRAL:-$ROOT/build/corral}
BASE=${BASE:?set BASE to a corral built without the GDB stub}
ROUNDS=${1:-3}
GUEST_DIR=${CORRAL_GUEST_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/corral/guest}
MARKER="corral-guest: init started"
APPEND="console=ttyS0 quiet -- true"
LIMIT=${BOOT_BENCH_TIMEOUT:-300}

sh "$ROOT/tools/mkguest.sh" >/dev/null || exit 1
K=$GUEST_DIR/vmlinuz
I=$GUEST_DIR/initrd.img
work=$(mktemp -d "${TMPDIR:-/tmp}/gdbbench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ms from start until the marker appears on the console ("" if it never does).
time_to_marker() {
	local fifo=$work/fifo t0 t="" line pid
	rm -f "$fifo"
	mkfifo "$fifo"
	t0=$(date +%s%N)
	setsid timeout "$LIMIT" "$@" </dev/null >"$fifo" 2>&1 &
	pid=$!
	while IFS= read -r line; do
		case "$line" in
		*"$MARKER"*)
			t=$((($(date +%s%N) - t0) / 1000000))
			break
			;;
		esac
	done <"$fifo"
	kill -- -"$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	echo "$t"
}

# CPU seconds (user + system) of a whole run to the guest's power-off: the
# guest's work is the same each time (instruction-driven virtual time), so
# this varies less than wall time on a loaded machine.
cpu_secs() {
	local TIMEFORMAT='%U %S'
	{ time "$@" </dev/null >/dev/null 2>&1; } 2>&1 | awk '{ printf "%.2f", $1 + $2 }'
}

median() {
	printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

declare -a n_t g_t b_t cn_t cg_t cb_t
echo "boot to '$MARKER', $ROUNDS rounds, kernel $(cat "$GUEST_DIR/version"), 512 MiB, 1 CPU, emu"
for r in $(seq 1 "$ROUNDS"); do
	b=$(time_to_marker "$BASE" run --kernel "$K" --initrd "$I" --append "$APPEND" --mem 512M --engine emu)
	n=$(time_to_marker "$CORRAL" run --kernel "$K" --initrd "$I" --append "$APPEND" --mem 512M --engine emu)
	g=$(time_to_marker "$CORRAL" run --kernel "$K" --initrd "$I" --append "$APPEND" --mem 512M --engine emu \
		--gdb "unix:$work/sock")
	printf 'round %d: to the marker: base %s ms, corral %s ms, corral --gdb (no debugger) %s ms\n' "$r" \
		"${b:-FAILED}" "${n:-FAILED}" "${g:-FAILED}"
	[ -n "$b" ] && b_t+=("$b")
	[ -n "$n" ] && n_t+=("$n")
	[ -n "$g" ] && g_t+=("$g")
	cb=$(cpu_secs "$BASE" run --kernel "$K" --initrd "$I" --append "$APPEND" --mem 512M --engine emu)
	cn=$(cpu_secs "$CORRAL" run --kernel "$K" --initrd "$I" --append "$APPEND" --mem 512M --engine emu)
	cg=$(cpu_secs "$CORRAL" run --kernel "$K" --initrd "$I" --append "$APPEND" --mem 512M --engine emu \
		--gdb "unix:$work/sock")
	printf 'round %d: CPU to power-off: base %s s, corral %s s, corral --gdb %s s\n' "$r" "$cb" "$cn" "$cg"
	cb_t+=("$cb")
	cn_t+=("$cn")
	cg_t+=("$cg")
done
mb=$(median "${b_t[@]}")
mn=$(median "${n_t[@]}")
mg=$(median "${g_t[@]}")
echo "median: base $mb ms, corral $mn ms, corral --gdb $mg ms"
if [ -n "$mb" ] && [ -n "$mn" ] && [ -n "$mg" ]; then
	awk -v b="$mb" -v n="$mn" -v g="$mg" 'BEGIN { printf "ratio: corral/base %.3f, corral --gdb/base %.3f\n", n / b, g / b }'
fi
cb=$(median "${cb_t[@]}")
cn=$(median "${cn_t[@]}")
cg=$(median "${cg_t[@]}")
echo "median CPU: base $cb s, corral $cn s, corral --gdb $cg s"
awk -v b="$cb" -v n="$cn" -v g="$cg" 'BEGIN { if (b > 0) printf "ratio CPU: corral/base %.3f, corral --gdb/base %.3f\n", n / b, g / b }'
