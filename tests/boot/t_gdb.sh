#!/bin/sh
# Debian's gdb on Debian's kernel under corral run --gdb (emu, two vCPUs).
# Debian's System.map is a placeholder (the real one is in the -dbg
# package), so a first boot reads the addresses of a few symbols from the
# guest's /proc/kallsyms; a second boot waits for gdb, which breaks on
# start_kernel, reads linux_banner by its virtual address, steps, watches
# jiffies_64 until the timer writes it, breaks on start_secondary (hit by
# the second vCPU: thread 2), reads both threads' registers, and lets the
# guest finish. corral enters the 64-bit kernel directly, so there is no
# decompressor to randomize its place (no KASLR); the breakpoints hitting
# at the first boot's addresses show it. Last line: "N passed, N failed".
NAME=t_gdb
. "$(dirname "$0")/../boot/lib.sh"

command -v gdb >/dev/null 2>&1 || skip "gdb is not installed (apt-get install gdb)"
need_kit

work=$(mktemp -d "${TMPDIR:-/tmp}/t_gdb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

ov=$work/overlay
mkdir -p "$ov"
cat >"$ov/t_gdb.sh" <<'EOF'
grep -E ' (start_kernel|start_secondary|linux_banner|jiffies_64)$' /proc/kallsyms | sed 's/^/T_GDB sym /'
echo "T_GDB done"
EOF
(cd "$ov" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip >"$work/overlay.img"
cat "$GUEST_DIR/initrd.img" "$work/overlay.img" >"$work/initrd.img"
APPEND="console=ttyS0 quiet -- sh /t_gdb.sh"

timeout "$TIMEOUT" "$CORRAL" run --kernel "$GUEST_DIR/vmlinuz" --initrd "$work/initrd.img" --append "$APPEND" \
	--mem 256M --cpus 2 --engine emu </dev/null >"$work/out1" 2>&1
sym() { tr -d '\r' <"$work/out1" | awk -v s="$1" '$1 == "T_GDB" && $5 == s { print "0x" $3 }'; }
start_kernel=$(sym start_kernel)
start_secondary=$(sym start_secondary)
banner=$(sym linux_banner)
jiffies=$(sym jiffies_64)
if [ -z "$start_kernel" ] || [ -z "$start_secondary" ] || [ -z "$banner" ] || [ -z "$jiffies" ]; then
	fail "the first boot did not list the symbols"
	tail -n 20 "$work/out1" | sed 's/^/  | /'
	report
	exit 1
fi
ok "symbols: start_kernel $start_kernel, start_secondary $start_secondary"

cat >"$work/script.gdb" <<EOF
set pagination off
set confirm off
target remote $work/sock
break *$start_kernel
continue
p/x \$pc
x/s $banner
stepi
p/x \$pc
monitor info registers
delete
watch *(long *)$jiffies
continue
delete
break *$start_secondary
continue
info threads
p/x \$pc
p/x \$cs
thread 1
p/x \$cs
delete
continue
EOF
t0=$(date +%s)
timeout "$TIMEOUT" "$CORRAL" run --kernel "$GUEST_DIR/vmlinuz" --initrd "$work/initrd.img" --append "$APPEND" \
	--mem 256M --cpus 2 --engine emu --serial "file:$work/out2" --gdb "unix:$work/sock" --gdb-wait \
	</dev/null 2>"$work/err" &
pid=$!
n=0
while [ ! -S "$work/sock" ] && [ $n -lt 100 ]; do
	sleep 0.1
	n=$((n + 1))
done
timeout "$TIMEOUT" gdb -batch -nx -x "$work/script.gdb" >"$work/gdb.out" 2>&1
wait $pid
rc=$?
echo "  second boot under gdb: $(($(date +%s) - t0)) s"

check() { # description, extended regex in gdb's output
	if grep -Eq -- "$2" "$work/gdb.out"; then ok "$1"; else fail "$1 (no '$2')"; fi
}
check "breakpoint on start_kernel" "^\\\$1 = $start_kernel\$"
check "linux_banner by virtual address" '"Linux version [0-9]'
check "stepi leaves start_kernel's first instruction" '^\$2 = 0xffffffff8[0-9a-f]{7}$'
grep -q "^\\\$2 = $start_kernel\$" "$work/gdb.out" && fail "stepi did not move"
check "monitor info registers: kernel page tables" '^CR0=8005003[0-9a-f] CR2=[0-9a-f]+ CR3=0'
check "jiffies_64 watched until the timer writes it" '^New value = '
check "start_secondary hit by the second vCPU" 'Thread 2 .*hit Breakpoint|Switching to Thread 2'
check "info threads: two vCPUs" '^[* ] 2 +Thread 2 \(vCPU 1\)'
check "thread 2 at start_secondary" "^\\\$3 = $start_secondary\$"
check "thread 2 in the kernel's code segment" '^\$4 = 0x10$'
check "thread 1 in the kernel's code segment" '^\$5 = 0x10$'
check "the guest ran to its end under gdb" 'exited normally'
[ "$rc" -eq 0 ] && ok "corral exits 0" || fail "corral exit $rc"
tr -d '\r' <"$work/out2" | grep -q "T_GDB done" && ok "the guest's script finished" || fail "the guest's script did not finish"
if [ "$failed" -ne 0 ]; then
	echo "  --- gdb (last 40 lines) ---"
	tail -n 40 "$work/gdb.out" | sed 's/^/  | /'
	echo "  --- corral ---"
	tail -n 5 "$work/err" | sed 's/^/  | /'
fi
report
