#!/bin/sh
# --root DIR: attempts to reach a file outside DIR through "..", absolute
# and relative symlinks, dirfds, rename/link targets and exec all fail,
# while the files inside DIR stay usable.
. "$(dirname "$0")/lib.sh"
P=$BUILD/tests/progs/pvm_test
ROOT=$TMP/root
mkdir -p "$ROOT/dir" "$ROOT/bin"
echo TOPSECRET >"$TMP/secret.txt"
chmod 755 "$TMP/secret.txt"
echo inside >"$ROOT/inside.txt"
ln -s "$TMP/secret.txt" "$ROOT/abs_link"
ln -s ../secret.txt "$ROOT/rel_link"
ln -s "$TMP" "$ROOT/dir_link"
cp "$P" "$ROOT/pvm_test"
cp /bin/busybox "$ROOT/bin/busybox"

out=$TMP/out.txt
(cd "$ROOT/dir" && "$CORRAL" exec --root "$ROOT" /pvm_test root "$TMP/secret.txt") >"$out" 2>&1
if grep -q TOPSECRET "$out"; then bad "secret read through an escape"; grep TOPSECRET "$out"; else ok; fi
if grep -q "inside file: read 'inside'" "$out"; then ok; else bad "file inside the root not readable"; fi
if grep -q "cwd after chdir ..: /$" "$out"; then ok; else bad "chdir .. left the root"; grep cwd "$out"; fi
if grep -q "rename out: done" "$out" && [ -f "$ROOT/moved.txt" ] && [ ! -e "$TMP/moved.txt" ]; then ok; else bad "rename target"; fi
if [ ! -e "$TMP/linked.txt" ] && [ ! -e "$TMP/../linked.txt" ] && [ ! -e "$TMP/made" ] && [ ! -e "$TMP/l2" ]; then ok; else bad "link/mkdir outside the root"; fi
if grep -q "readlink: $TMP/secret.txt" "$out"; then ok; else bad "readlink of a symlink"; fi
if grep -q "exec outside: No such file" "$out"; then ok; else bad "exec outside"; grep exec "$out"; fi
n=$(grep -c "No such file or directory" "$out")
if [ "$n" -ge 8 ]; then ok; else bad "escape attempts not refused ($n)"; cat "$out"; fi

# A shell inside the root.
"$CORRAL" exec --root "$ROOT" /bin/busybox sh -c "cat ../../secret.txt $TMP/secret.txt /abs_link /rel_link /dir_link/secret.txt; cd /../..; pwd; ls /; echo *" >"$TMP/sh.txt" 2>&1
if grep -q TOPSECRET "$TMP/sh.txt"; then bad "shell read the secret"; else ok; fi
if grep -q "^pvm_test$" "$TMP/sh.txt" && grep -q "^/$" "$TMP/sh.txt"; then ok; else bad "shell view of the root"; cat "$TMP/sh.txt"; fi
# The ELF interpreter is looked up inside the root too.
cp /bin/true "$ROOT/dyn"
status "interpreter outside the root" 127 "$CORRAL" exec --root "$ROOT" /dyn
report
