#!/bin/sh
# Installing corral: `make install DESTDIR=... PREFIX=/usr` lays out the
# programs, man pages and bash completion; the installed corral runs a process
# VM; each man page renders without warnings and lists exactly the options its
# command's --help lists; the completion completes; `make uninstall` removes
# every file. Last line: "N passed, N failed".
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
passed=0
failed=0
skipped=0

ok() {
	passed=$((passed + 1))
	echo "ok   $*"
}

fail() {
	failed=$((failed + 1))
	echo "FAIL $*"
}

for tool in make groff scdoc bash; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "t_install: '$tool' is needed (tools/setup.sh installs it)"
		echo "0 passed, 1 failed"
		exit 1
	fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/t_install.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
dest=$work/dest

# corral is linked statically with corral-dyn beside it, but in the
# sanitizer builds (make STATIC=, see the Makefile).
if [ -n "${CORRAL_SANITIZED:-}" ]; then
	static=
else
	static=1
fi

# The make that runs this test is not ours to share jobs with.
submake() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$ROOT" BUILD="$BUILD" STATIC="$static" \
		DESTDIR="$dest" PREFIX=/usr "$@"
}

# ---- make install ----
if submake install >"$work/install.log" 2>&1; then
	ok "make install DESTDIR=... PREFIX=/usr"
else
	fail "make install DESTDIR=... PREFIX=/usr"
	sed 's/^/    /' "$work/install.log" | tail -n 20
fi

# name:command pairs: each man page and the command whose --help it documents
# (corral-mkguest and corral-mkrootfs are scripts without --help).
PAGES="corral: corral-run:run corral-exec:exec corral-info:info corral-image:image
corral-image-create:image_create corral-image-info:image_info corral-image-check:image_check
corral-image-convert:image_convert corral-image-commit:image_commit corral-runc:oci corral-snapshot:snapshot corral-migrate:migrate corral-restore:restore
corral-checkpoint:checkpoint corral-restore-exec:restore-exec
corral-mkguest:- corral-mkrootfs:- corral-vm:vm corrald:@corrald"

expected="usr/bin/corral ${static:+usr/bin/corral-dyn }usr/bin/corral-runc usr/bin/corrald usr/bin/corral-mkguest usr/bin/corral-mkrootfs usr/share/bash-completion/completions/corral
usr/lib/systemd/system/corrald.service usr/lib/systemd/system/corrald.socket"
for p in $PAGES; do
	expected="$expected usr/share/man/man1/${p%%:*}.1"
done
for f in $expected; do
	case $f in
	usr/bin/*) want=755 ;;
	*) want=644 ;;
	esac
	if [ -f "$dest/$f" ] && [ "$(stat -c %a "$dest/$f")" = "$want" ]; then
		ok "installed /$f (mode $want)"
	else
		fail "installed /$f (mode $want): $(stat -c %a "$dest/$f" 2>&1)"
	fi
done
n=$(find "$dest" -type f | wc -l)
nwant=$(echo $expected | wc -w)
if [ "$n" -eq "$nwant" ]; then
	ok "nothing else installed ($n files)"
else
	fail "installed $n files, expected $nwant:"
	(cd "$dest" && find . -type f | sort | sed 's/^/    /')
fi
if cmp -s "$dest/usr/bin/corral-mkguest" "$ROOT/tools/mkguest.sh" &&
	cmp -s "$dest/usr/bin/corral-mkrootfs" "$ROOT/tools/mkrootfs.sh"; then
	ok "corral-mkguest and corral-mkrootfs are the guest kit's scripts"
else
	fail "corral-mkguest and corral-mkrootfs differ from tools/mkguest.sh and tools/mkrootfs.sh"
fi

# ---- the installed corral ----
C=$dest/usr/bin/corral
out=$(cd / && env PATH=/usr/bin:/bin "$C" exec /bin/busybox echo hi 2>&1)
if [ "$out" = hi ]; then
	ok "installed corral runs a process VM"
else
	fail "installed corral exec /bin/busybox echo hi: '$out'"
fi
deb=$(sed -n '1s/^corral (\([^)]*\)).*/\1/p' "$ROOT/debian/changelog")
ver=$("$C" --version 2>&1)
if [ "$ver" = "corral $deb" ]; then
	ok "corral --version matches debian/changelog ($deb)"
else
	fail "corral --version says '$ver', debian/changelog '$deb'"
fi

# A static corral hands a VM with a control API to the corral-dyn installed
# beside it (and the API answers); it restores a snapshot without one itself.
G=$BUILD/tests/guests/tick.bin
if [ -z "$static" ]; then
	echo "skip static corral and corral-dyn: a sanitizer build links corral dynamically"
	skipped=$((skipped + 1))
elif ! command -v curl >/dev/null 2>&1 || [ ! -f "$G" ]; then
	echo "skip static corral and corral-dyn: no curl, or $G not built"
	skipped=$((skipped + 1))
else
	if readelf -l "$C" 2>/dev/null | grep -q INTERP; then
		fail "installed corral names a dynamic loader: not linked statically"
	else
		ok "installed corral is linked statically"
	fi
	S=$work/api.sock
	"$C" run --flat "$G" --mem 16M --engine emu --serial none --api-sock "$S" </dev/null 2>"$work/vm.err" &
	vm=$!
	i=0
	while [ ! -S "$S" ] && [ $i -lt 200 ] && kill -0 $vm 2>/dev/null; do
		sleep 0.05
		i=$((i + 1))
	done
	exe=$(readlink "/proc/$vm/exe")
	if [ "$exe" = "$dest/usr/bin/corral-dyn" ]; then
		ok "corral run --api-sock runs as the installed corral-dyn"
	else
		fail "corral run --api-sock runs as '$exe', not $dest/usr/bin/corral-dyn: $(cat "$work/vm.err")"
	fi
	state=$(curl -s -m 20 --unix-socket "$S" http://localhost/)
	case $state in
	*'"state":"Running"'*) ok "its API answers: $state" ;;
	*) fail "its API: '$state'" ;;
	esac
	if "$C" snapshot "$S" "$work/snap" --stop >"$work/snap.err" 2>&1 && wait $vm; then
		ok "corral snapshot --stop through corral-dyn's API"
	else
		fail "corral snapshot --stop: $(cat "$work/snap.err")"
	fi
	"$C" restore "$work/snap" --serial "file:$work/restored" </dev/null 2>"$work/restore.err" &
	vm=$!
	i=0
	while [ ! -s "$work/restored" ] && [ $i -lt 200 ] && kill -0 $vm 2>/dev/null; do
		sleep 0.05
		i=$((i + 1))
	done
	exe=$(readlink "/proc/$vm/exe")
	kill $vm 2>/dev/null
	wait $vm 2>/dev/null
	if [ "$exe" = "$dest/usr/bin/corral" ] && [ -s "$work/restored" ]; then
		ok "corral restore of a snapshot without API or user network runs in the static corral"
	else
		fail "corral restore ran as '$exe' (want $dest/usr/bin/corral), guest output $(cat "$work/restored" 2>/dev/null | wc -c) bytes: $(cat "$work/restore.err")"
	fi
fi

# ---- man pages ----
# The options a text names: -x and --long-name words after a space, bracket,
# bar, comma, parenthesis or quote.
options() {
	sed 's/\xe2\x80\x90/-/g; s/\xe2\x88\x92/-/g' |
		grep -oE '(^|[][ (|,"'"'"'])--?[A-Za-z][A-Za-z0-9-]*' | sed 's/^[^-]*//' | sort -u
}

for p in $PAGES; do
	page=${p%%:*}
	cmd=$(echo "${p#*:}" | tr _ ' ')
	src=$dest/usr/share/man/man1/$page.1
	[ -f "$src" ] || continue
	if groff -man -Tutf8 -ww -rLL=250n -P-cbou "$src" >"$work/$page.txt" 2>"$work/$page.err" &&
		[ ! -s "$work/$page.err" ] && grep -q "^NAME" "$work/$page.txt"; then
		ok "man page $page(1) renders without warnings"
	else
		fail "man page $page(1) renders with warnings:"
		sed 's/^/    /' "$work/$page.err" | head -n 5
	fi
	[ "$cmd" = - ] && continue
	# Options named in EXAMPLES are the guest programs' as often as corral's.
	awk '/^EXAMPLES/ { skip = 1; next } /^[A-Z]/ { skip = 0 } !skip' "$work/$page.txt" | options >"$work/$page.man"
	# shellcheck disable=SC2086
	case $cmd in
	@*) "$dest/usr/bin/${cmd#@}" --help 2>&1 | options >"$work/$page.help" ;;
	*) "$C" $cmd --help 2>&1 | options >"$work/$page.help" ;;
	esac
	if [ -s "$work/$page.help" ] && cmp -s "$work/$page.help" "$work/$page.man"; then
		ok "$page(1) lists the options of 'corral${cmd:+ $cmd} --help': $(tr '\n' ' ' <"$work/$page.help")"
	else
		fail "$page(1) and 'corral${cmd:+ $cmd} --help' list different options (< help only, > man page only):"
		diff "$work/$page.help" "$work/$page.man" | grep '^[<>]' | sed 's/^/    /'
	fi
done

# ---- bash completion ----
comp=$dest/usr/share/bash-completion/completions/corral
# complete WORDS...: what the completion offers for the last word.
complete_words() {
	bash -c '. "$1" || exit 1; shift
		COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _corral
		echo "${COMPREPLY[*]}"' sh "$comp" "$@" 2>&1
}
if out=$(bash -c '. "$1" && complete -p corral' sh "$comp" 2>&1) && [ "$out" = "complete -F _corral corral" ]; then
	ok "completion loads in bash and completes corral"
else
	fail "completion does not load: $out"
fi
check_completion() {
	want=$1
	shift
	got=$(complete_words "$@")
	if [ "$got" = "$want" ]; then
		ok "completion: '$*' -> '$want'"
	else
		fail "completion: '$*' -> '$got', wanted '$want'"
	fi
}
check_completion image corral im
check_completion "start stop" corral vm st
check_completion "--count" corral vm clone x --co
check_completion --kernel corral run --ker
check_completion "create check convert commit" corral image c
check_completion qcow2 corral image convert -O q
check_completion "-p" corral image convert -p
check_completion "--leave-running" corral checkpoint s d --le
check_completion "--checkpoint-signal --checkpoint-dir" corral exec --checkpoint-
check_completion "restore-exec restore" corral resto
: >"$work/vmlinuz-test"
check_completion "$work/vmlinuz-test" corral run --kernel "$work/vmlinuz-t"
check_completion "$work/vmlinuz-test,readonly" corral run --disk "$work/vmlinuz-test,read"

# ---- make uninstall ----
if submake uninstall >"$work/uninstall.log" 2>&1; then
	ok "make uninstall DESTDIR=... PREFIX=/usr"
else
	fail "make uninstall"
	sed 's/^/    /' "$work/uninstall.log" | tail -n 20
fi
left=$(find "$dest" ! -type d | wc -l)
if [ "$left" -eq 0 ]; then
	ok "make uninstall leaves no files"
else
	fail "make uninstall left $left files:"
	find "$dest" ! -type d | sed 's/^/    /'
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
