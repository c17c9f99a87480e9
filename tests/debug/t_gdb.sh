#!/bin/sh
# Debian's gdb drives corral's GDB stub (corral run --gdb): the tiny guest
# tests/guests/gdb.S with a breakpoint at a label, a single step, a
# register written and seen in the guest's output, a write watchpoint, a
# read by virtual address through the guest's own page tables, monitor
# commands and the exit; two vCPUs as two threads (tests/guests/smp.S);
# a TCP connection and kill; bad options.
NAME=t_gdb
. "$(dirname "$0")/lib.sh"

# session GUEST SCRIPT [corral options]: corral waits for gdb on a unix
# socket, gdb runs SCRIPT in batch mode; rc is corral's exit status.
session() {
	guest=$1
	script=$2
	shift 2
	rm -f "$tmp/sock" "$tmp/out" "$tmp/err" "$tmp/gdb.out"
	timeout -k 5 120 "$CORRAL" run --flat "$G/$guest.bin" --mem 64M --no-reboot --engine emu \
		--serial "file:$tmp/out" --gdb "unix:$tmp/sock" --gdb-wait "$@" </dev/null 2>"$tmp/err" &
	pid=$!
	n=0
	while [ ! -S "$tmp/sock" ] && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	{
		echo "set pagination off"
		echo "set confirm off"
		echo "target remote $tmp/sock"
		cat "$script"
	} >"$tmp/script.gdb"
	timeout -k 5 120 gdb -batch -nx -x "$tmp/script.gdb" >"$tmp/gdb.out" 2>&1
	wait $pid
	rc=$?
	touch "$tmp/out"
}

# ---- one vCPU: break, step, registers, watch, memory, monitor ----
cat >"$tmp/s1" <<EOF
p/x \$pc
break *$(addr gdb bp_here)
continue
p/x \$pc
stepi
p/x \$pc
break *$(addr gdb value_set)
continue
p/x \$rax
set \$rax = 0xdeadbeef
delete
watch *(long *)0x20100
continue
p/x \$pc
x/gx 0xffff800000000000
monitor phys 0x400000 8
monitor info registers
monitor tlb flush
monitor bogus
monitor snapshot $tmp/snap
p/x \$cr3
p/x \$efer
p/x \$cs
info registers rip
delete
continue
EOF
session gdb "$tmp/s1"
check "stopped before the first instruction" '^\$1 = 0x100000$'
check "breakpoint at bp_here" "^\\\$2 = $(addr gdb bp_here)\$"
check "stepi into value" "^\\\$3 = $(addr gdb value)\$"
check "RAX read at value_set" '^\$4 = 0x1234$'
check "watchpoint: old value" '^Old value = 0$'
check "watchpoint: new value" '^New value = 42$'
check "watchpoint: stopped after the store" "^\\\$5 = $(addr gdb after_write)\$"
check "virtual read through the guest's page tables" '^0xffff800000000000:[[:space:]]+0x1122334455667788$'
check "monitor phys" '^0000000000400000: 88 77 66 55 44 33 22 11$'
check "monitor info registers" '^CR0=80050033 CR2=0000000000000000 CR3=0000000000002000'
check "monitor tlb flush" '^TLB flushed$'
check "monitor: unknown command" "^unknown command 'bogus'"
check "monitor snapshot" "^saved to $tmp/snap\$"
if [ -s "$tmp/snap/state" ] && [ -s "$tmp/snap/memory" ]; then ok; else bad "monitor snapshot: no state and memory files"; fi
check "CR3 as a register" '^\$6 = 0x2000$'
check "EFER as a register" '^\$7 = 0xd01$'
check "CS" '^\$8 = 0x8$'
check "the VM's end reaches gdb" 'exited normally'
check "RAX written by gdb, printed by the guest" '^00000000deadbeef$' "$tmp/out"
check "the guest ran to its end" '^done$' "$tmp/out"
if [ "$rc" -eq 0 ]; then ok; else bad "corral's exit status $rc"; fi

# ---- two vCPUs: two threads, each with its own registers (the AP halts
# in real mode at the start-up IPI's page, CS 0x800) ----
cat >"$tmp/s2" <<EOF
info threads
break *$(addr smp ap_up)
continue
info threads
p/x \$pc
thread 2
p/x \$cs
p/x \$eflags & 0x200
thread 1
p/x \$cs
delete
continue
EOF
session smp "$tmp/s2" --cpus 2
check "two threads" '^[* ] 2 +Thread 2 \(vCPU 1\)'
check "the BSP at its breakpoint" "^\\\$1 = $(addr smp ap_up)\$"
check "thread 2: the AP in real mode" '^\$2 = 0x800$'
check "thread 2: interrupts off" '^\$3 = 0x0$'
check "thread 1: 64-bit code" '^\$4 = 0x8$'
check "the AP started" '^ap started$' "$tmp/out"
if [ "$rc" -eq 0 ]; then ok; else bad "corral's exit status $rc (smp)"; fi

# ---- TCP on a port of the system's choosing, then kill ----
rm -f "$tmp/err"
timeout -k 5 60 "$CORRAL" run --flat "$G/spin.bin" --mem 32M --engine emu --serial none \
	--gdb tcp::0 </dev/null 2>"$tmp/err" &
pid=$!
n=0
while ! grep -qs 'listening on tcp:' "$tmp/err" && [ $n -lt 100 ]; do
	sleep 0.1
	n=$((n + 1))
done
port=$(sed -n 's/.*listening on tcp:127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/err")
timeout -k 5 60 gdb -batch -nx -ex "target remote 127.0.0.1:$port" -ex 'p/x $cr0' -ex kill >"$tmp/gdb.out" 2>&1
wait $pid
rc=$?
check "TCP: registers" '^\$1 = 0x80050033$'
if [ "$rc" -eq 0 ] && [ -n "$port" ]; then ok; else bad "TCP: kill ends corral (status $rc, port '$port')"; fi

# ---- bad options: one line each ----
for spec in "tcp:" "bogus" "tcp::70000" "unix:"; do
	"$CORRAL" run --flat "$G/hello.bin" --engine emu --serial none --gdb "$spec" </dev/null >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$rc" -ne 0 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "^corral: --gdb" "$tmp/err"; then
		ok
	else
		bad "--gdb '$spec' (status $rc)"
	fi
done
"$CORRAL" run --flat "$G/hello.bin" --engine emu --serial none --gdb-wait </dev/null >"$tmp/out" 2>"$tmp/err"
if [ $? -eq 2 ] && grep -q -- "--gdb-wait needs --gdb" "$tmp/err"; then ok; else bad "--gdb-wait alone"; fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
