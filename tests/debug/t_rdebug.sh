#!/bin/sh
# Reverse debugging: Debian's gdb drives corral's GDB stub on a replay
# (corral run --replay FILE --gdb): the tiny guest tests/guests/rdebug.S
# (a timer interrupting a loop that draws random bytes) is recorded, then
# replayed under gdb: stepi N times and reverse-stepi N times give the
# same registers at each step, in both orders and across an interrupt's
# delivery; reverse-continue stops at the last breakpoint hit and at the
# last write to a watched variable; reverse-next steps back over a call;
# going back from the recording's start
# says so (replaylog:begin), and going forward past the recording's end
# too (replaylog:end); after all that the replay runs to its end
# identical to the recording, its output shown once. Two vCPUs too.
NAME=t_rdebug
. "$(dirname "$0")/lib.sh"

# record GUEST NAME [options]: a recording in $tmp/NAME.rr, its output in $tmp/NAME.out
record() {
	guest=$1
	name=$2
	shift 2
	timeout -k 5 60 "$CORRAL" run --flat "$G/$guest.bin" --mem 16M --no-reboot --engine emu \
		--serial "file:$tmp/$name.out" --record "$tmp/$name.rr" "$@" </dev/null 2>"$tmp/err"
	if [ $? -eq 0 ] && [ -s "$tmp/$name.rr" ]; then ok; else bad "recording $name"; fi
}

# session GUEST NAME SCRIPT [options]: the recording NAME replayed under
# gdb, which runs SCRIPT in batch mode; rc is corral's exit status.
session() {
	guest=$1
	name=$2
	script=$3
	shift 3
	rm -f "$tmp/sock" "$tmp/out" "$tmp/err" "$tmp/gdb.out"
	timeout -k 5 300 "$CORRAL" run --flat "$G/$guest.bin" --mem 16M --no-reboot --engine emu \
		--serial "file:$tmp/out" --replay "$tmp/$name.rr" --gdb "unix:$tmp/sock" --gdb-wait "$@" \
		</dev/null 2>"$tmp/err" &
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
	timeout -k 5 300 gdb -batch -nx -x "$tmp/script.gdb" >"$tmp/gdb.out" 2>&1
	wait $pid
	rc=$?
	touch "$tmp/out"
}

# The registers and the guest's two variables as one line, tagged.
regs() {
	printf '%s\n' "printf \"$1 %lx %lx %lx %lx %lx %lx %lx %lx %lx %lx %lx\\n\", \$pc, \$rax, \$rbx, \$rcx, \$rdx, \$rsp, \$r12, \$r13, \$r14, \$eflags, *(long *)0x20100 + *(long *)0x20200 * 0x10000"
}

# same TAG_A TAG_B N NAME: lines "TAG_A k ..." and "TAG_B k ..." agree for k = 0..N-1
same() {
	k=0
	while [ $k -lt "$3" ]; do
		a=$(grep "^$1 $k " "$tmp/gdb.out" | cut -d' ' -f3-)
		b=$(grep "^$2 $k " "$tmp/gdb.out" | cut -d' ' -f3-)
		if [ -z "$a" ] || [ "$a" != "$b" ]; then
			bad "$4: step $k: '$a' forward, '$b' backward"
			return
		fi
		k=$((k + 1))
	done
	ok
}

# the replay's end: as recorded, and its output shown once
replay_end() {
	check "$1: the replay ran to its end identical to the recording" 'identical to the recording' "$tmp/err"
	if cmp -s "$tmp/out" "$tmp/$2.out"; then ok; else bad "$1: the replay's output differs from the recording's (shown twice?)"; fi
	if [ "$rc" -eq 0 ]; then ok; else bad "$1: corral's exit status $rc"; fi
}

record rdebug rd

# ---- stepi N times forward, then reverse-stepi N times: the same
# registers at each step ----
N=40
{
	echo "break *$(addr rdebug work)"
	echo "continue"
	echo "continue"
	echo "delete"
	regs "F 0"
	k=1
	while [ $k -le $N ]; do
		echo "stepi"
		regs "F $k"
		k=$((k + 1))
	done
	k=$((N - 1))
	while [ $k -ge 0 ]; do
		echo "reverse-stepi"
		regs "B $k"
		k=$((k - 1))
	done
	echo "continue"
} >"$tmp/s1"
session rdebug rd "$tmp/s1"
same F B $N "stepi then reverse-stepi"
check "the steps went through work's return" "^F 2 $(printf %x $(($(addr rdebug after_store) + 5))) "
replay_end "stepi/reverse-stepi" rd

# ---- across an interrupt: from the timer handler's second instruction
# back over the interrupt's delivery into the interrupted loop, then
# forward into the handler again (a step stops after the instruction,
# before an interrupt is taken; the next one takes it) ----
N=30
{
	echo "break *$(addr rdebug tick)"
	echo "continue"
	echo "continue"
	echo "delete"
	echo "stepi"
	regs "B 0"
	k=1
	while [ $k -le $N ]; do
		echo "reverse-stepi"
		regs "B $k"
		k=$((k + 1))
	done
	k=$((N - 1))
	while [ $k -ge 0 ]; do
		echo "stepi"
		regs "F $k"
		k=$((k - 1))
	done
	echo "continue"
} >"$tmp/s2"
session rdebug rd "$tmp/s2"
regs_loop=$(grep "^B 1 " "$tmp/gdb.out" | cut -d' ' -f3)
same F B $N "reverse-stepi across an interrupt, then stepi"
check "in the handler after its first instruction" "^B 0 $(printf %x $(($(addr rdebug tick) + 8))) "
if [ -n "$regs_loop" ] && [ "$((0x$regs_loop))" -lt "$(($(addr rdebug work)))" ]; then
	ok
else
	bad "reverse-stepi from the handler lands in the interrupted loop (at '$regs_loop')"
fi
replay_end "across an interrupt" rd

# ---- reverse-continue: breakpoints and a watchpoint, then the start ----
cat >"$tmp/s3" <<EOF
reverse-stepi
p/x \$pc
break *$(addr rdebug after_store)
continue
continue
continue
continue
continue
p \$r12
delete
break *$(addr rdebug work)
reverse-continue
p \$r12
p/x \$pc
reverse-continue
p \$r12
p/x \$pc
delete
watch *(long *)0x20100
reverse-continue
p/x \$pc
p \$r12
reverse-continue
p/x \$pc
p \$r12
delete
reverse-continue
p/x \$pc
reverse-stepi
p/x \$pc
continue
EOF
session rdebug rd "$tmp/s3"
check "reverse-stepi at the start: no history" '^No more reverse-execution history\.'
check "reverse-stepi at the start stays there" '^\$1 = 0x100000$'
check "forward to round 4's store" '^\$2 = 4$'
check "reverse-continue: the last call of work (round 3)" '^\$3 = 3$'
check "reverse-continue: stopped at work" "^\\\$4 = $(addr rdebug work)\$"
check "reverse-continue again: round 2" '^\$5 = 2$'
check "reverse-continue: the breakpoint reported" '^Breakpoint [0-9]+, '
check "reverse watchpoint: before the store" "^\\\$7 = $(addr rdebug store)\$"
check "reverse watchpoint: round 2's store" '^\$8 = 2$'
check "reverse watchpoint: reported" '^Hardware watchpoint [0-9]+: \*\(long \*\)0x20100'
check "reverse watchpoint again: round 1's store" '^\$10 = 1$'
check "reverse-continue with no breakpoints: the start" "^\\\$11 = 0x100000\$"
check "reverse-stepi at the start again" '^\$12 = 0x100000$'
n=$(grep -A1 '^No more reverse-execution history\.' "$tmp/gdb.out" | grep -c '^0x0*100000 in ')
if [ "$n" -eq 3 ]; then ok; else bad "3 stops at the recording's start, not $n"; fi
replay_end "reverse-continue" rd
cp "$tmp/gdb.out" "$tmp/gdb.s3"

# ---- going back from snapshots (--replay-snapshots): a step back
# replays from the nearest snapshot before its target, not from the
# start; the same registers at every step, the same stops, the replay's
# end identical ----
N=30
{
	echo "break *$(addr rdebug work)"
	k=0
	while [ $k -lt 8 ]; do
		echo "continue"
		k=$((k + 1))
	done
	echo "delete"
	regs "F 0"
	k=1
	while [ $k -le $N ]; do
		echo "stepi"
		regs "F $k"
		k=$((k + 1))
	done
	k=$((N - 1))
	while [ $k -ge 0 ]; do
		echo "reverse-stepi"
		regs "B $k"
		k=$((k - 1))
	done
	echo "continue"
} >"$tmp/s8"
session rdebug rd "$tmp/s8" --replay-snapshots 1000,3
same F B $N "from snapshots: stepi then reverse-stepi"
restored=$(sed -n 's/.*snapshots taken, \([0-9]*\) restored.*/\1/p' "$tmp/err")
if [ "${restored:-0}" -ge $N ]; then ok; else bad "every step back from a snapshot (restored '$restored', $N steps)"; fi
# the snapshots hold the pages written since the one before, not all of RAM
held=$(sed -n 's/.*kept hold \([0-9.]*\) MiB of RAM pages (whole copies: \([0-9.]*\) MiB).*/\1 \2/p' "$tmp/err")
if [ -n "$held" ] && awk -v h="${held% *}" -v w="${held#* }" 'BEGIN { exit !(h > 0 && h * 2 < w) }'; then ok; else
	bad "snapshots of the written pages only (held, whole: '$held')"
fi
replay_end "from snapshots" rd
# the reverse-continue session again, from snapshots: gdb sees the same
sed "s|$tmp/sock|SOCK|g" "$tmp/gdb.s3" >"$tmp/gdb.s3.start"
session rdebug rd "$tmp/s3" --replay-snapshots 1000,3
sed "s|$tmp/sock|SOCK|g" "$tmp/gdb.out" >"$tmp/gdb.s3.snap"
if cmp -s "$tmp/gdb.s3.start" "$tmp/gdb.s3.snap"; then ok; else bad "reverse-continue from snapshots differs: $(diff "$tmp/gdb.s3.start" "$tmp/gdb.s3.snap" | head -5)"; fi
replay_end "reverse-continue from snapshots" rd

# ---- reverse-continue's first pass from snapshots: the last hit
# before here is sought from the newest snapshot back, part by part, not
# from the start; far back (the guest's first puts, many snapshots
# earlier), near (this round's store), a watchpoint, and no hit at all
# (the start): the same stops and registers as the scan from the start
# (--replay-snapshots off) ----
{
	echo "break *$(addr rdebug work)"
	k=0
	while [ $k -lt 15 ]; do
		echo "continue"
		k=$((k + 1))
	done
	echo "delete"
	regs "R 0"
	echo "break *$(addr rdebug store)"
	echo "reverse-continue"
	regs "R 1"
	echo "delete"
	echo "watch *(long *)0x20100"
	echo "reverse-continue"
	regs "R 2"
	echo "delete"
	echo "break *$(addr rdebug puts)"
	echo "reverse-continue"
	regs "R 3"
	echo "delete"
	echo "reverse-continue"
	regs "R 4"
	echo "continue"
} >"$tmp/s9"
session rdebug rd "$tmp/s9" --replay-snapshots off
grep '^R ' "$tmp/gdb.out" >"$tmp/s9.slow"
replay_end "reverse-continue scanning from the start" rd
session rdebug rd "$tmp/s9" --replay-snapshots 1000,8
grep '^R ' "$tmp/gdb.out" >"$tmp/s9.fast"
if [ "$(wc -l <"$tmp/s9.slow")" -eq 5 ] && cmp -s "$tmp/s9.slow" "$tmp/s9.fast"; then ok; else
	bad "reverse-continue from snapshots: other stops than from the start: $(diff "$tmp/s9.slow" "$tmp/s9.fast" | head -6)"
fi
check "reverse-continue far back: in puts" "^R 3 $(printf %x $(($(addr rdebug puts)))) " "$tmp/s9.fast"
check "reverse-continue with nothing to hit: the start" "^R 4 100000 " "$tmp/s9.fast"
restored=$(sed -n 's/.*snapshots taken, \([0-9]*\) restored.*/\1/p' "$tmp/err")
if [ "${restored:-0}" -ge 6 ]; then ok; else bad "the scans ran from snapshots (restored '$restored')"; fi
replay_end "reverse-continue scanning from snapshots" rd

# ---- forward past the recording's end: the replay stands there
# (replaylog:end), however often it is told to go on, and goes back from
# there; it ends as recorded once gdb detaches ----
cat >"$tmp/s7" <<EOF
continue
p/x \$pc
continue
stepi
p/x \$pc
reverse-stepi
p/x \$pc
reverse-stepi
stepi
stepi
p/x \$pc
continue
p/x \$pc
EOF
session rdebug rd "$tmp/s7"
end_pc=$(sed -n 's/^\$1 = \(0x[0-9a-f]*\)$/\1/p' "$tmp/gdb.out")
n=$(grep -c '^No more reverse-execution history\.' "$tmp/gdb.out")
if [ "$n" -eq 4 ]; then ok; else bad "4 stops at the recording's end (continue, continue, stepi, continue), not $n"; fi
if [ -n "$end_pc" ] && grep -q "^\\\$2 = $end_pc\$" "$tmp/gdb.out" && grep -q "^\\\$5 = $end_pc\$" "$tmp/gdb.out"; then
	ok
else
	bad "continue and stepi at the end stay at the end ('$end_pc')"
fi
if [ -n "$end_pc" ] && grep -q '^\$3 = 0x' "$tmp/gdb.out" && ! grep -q "^\\\$3 = $end_pc\$" "$tmp/gdb.out"; then
	ok
else
	bad "reverse-stepi from the end goes back"
fi
check "stepi twice from two back: the end again" "^\\\$4 = $end_pc\$"
check "gdb detached at its end, the VM not killed" 'detached'
replay_end "the recording's end" rd

# ---- reverse-next and reverse-step, as GDB builds them from bs and bc
# with its own breakpoints: the guest with line numbers (its assembler
# source) and symbols, as an ELF file for gdb ----
if as --64 -g -o "$tmp/rdebug.o" "$G/rdebug.s" 2>"$tmp/as.err" &&
	ld -m elf_x86_64 -Ttext 0x100000 -e _start -o "$tmp/rdebug.elf" "$tmp/rdebug.o" 2>>"$tmp/as.err"; then
	cat >"$tmp/s6" <<EOF
file $tmp/rdebug.elf
break work
continue
continue
delete
stepi
stepi
p/x \$pc
next
p/x \$pc
reverse-next
p/x \$pc
reverse-next
p/x \$pc
p \$r14
reverse-step
p/x \$pc
continue
EOF
	session rdebug rd "$tmp/s6"
	check "two steps out of work: after the call" "^\\\$1 = $(printf 0x%x $(($(addr rdebug after_store) + 5)))\$"
	check "next: the following line" "^\\\$2 = $(printf 0x%x $(($(addr rdebug after_store) + 8)))\$"
	check "reverse-next: back a line" "^\\\$3 = $(printf 0x%x $(($(addr rdebug after_store) + 5)))\$"
	check "reverse-next: back over the call of work" "^\\\$4 = $(addr rdebug after_store)\$"
	check "reverse-next: work's call undone" '^\$5 = 1$'
	check "reverse-step: the store's line" "^\\\$6 = $(addr rdebug store)\$"
	replay_end "reverse-next/reverse-step" rd
else
	skipped=$((skipped + 1))
	echo "t_rdebug: reverse-next skipped: cannot link the guest as an ELF file: $(head -n 1 "$tmp/as.err")"
fi

# ---- a replay refuses writes (gdb goes on after each -ex); a live VM
# offers no reverse execution ----
rm -f "$tmp/sock"
timeout -k 5 60 "$CORRAL" run --flat "$G/rdebug.bin" --mem 16M --no-reboot --engine emu --serial "file:$tmp/out" \
	--replay "$tmp/rd.rr" --gdb "unix:$tmp/sock" --gdb-wait </dev/null 2>"$tmp/err" &
pid=$!
n=0
while [ ! -S "$tmp/sock" ] && [ $n -lt 100 ]; do
	sleep 0.1
	n=$((n + 1))
done
timeout -k 5 60 gdb -batch -nx -ex "target remote $tmp/sock" -ex 'set $rax = 1' -ex 'set *(long *)0x20100 = 1' \
	-ex 'p/x $rax' -ex continue >"$tmp/gdb.out" 2>&1
wait $pid
rc=$?
check "a register write refused" 'Could not write register "rax"; remote failure reply .E01.'
check "a memory write refused" 'Cannot access memory at address 0x20100|E01'
check "the register as it was" '^\$1 = 0x0$'
replay_end "writes refused" rd
rm -f "$tmp/sock"
timeout -k 5 60 "$CORRAL" run --flat "$G/rdebug.bin" --mem 16M --no-reboot --engine emu --serial none \
	--gdb "unix:$tmp/sock" --gdb-wait </dev/null 2>"$tmp/err" &
pid=$!
n=0
while [ ! -S "$tmp/sock" ] && [ $n -lt 100 ]; do
	sleep 0.1
	n=$((n + 1))
done
timeout -k 5 60 gdb -batch -nx -ex "target remote $tmp/sock" -ex 'stepi' -ex 'reverse-stepi' -ex 'continue' \
	>"$tmp/gdb.out" 2>&1
wait $pid
check "no reverse execution without a replay" 'Target .* does not support this command|not support'

# ---- two vCPUs: the AP's steps backwards and forwards ----
record smp_stress smp --cpus 2
N=20
{
	echo "break *$(addr smp_stress atomics)"
	echo "continue"
	echo "delete"
	echo "thread 2"
	regs "F 0"
	k=1
	while [ $k -le $N ]; do
		echo "stepi"
		regs "F $k"
		k=$((k + 1))
	done
	k=$((N - 1))
	while [ $k -ge 0 ]; do
		echo "reverse-stepi"
		regs "B $k"
		k=$((k - 1))
	done
	echo "continue"
} >"$tmp/s5"
session smp_stress smp "$tmp/s5" --cpus 2
same F B $N "two vCPUs: stepi then reverse-stepi"
replay_end "two vCPUs" smp

# ---- a breakpoint inside a block moves neither inputs nor interrupts ----
# The first RDRAND (loop_top) runs in the middle of a block when nothing
# stops there; a breakpoint on it makes it start one. Its random bytes
# must still be taken at the recorded position.
cat >"$tmp/s6" <<EOF
break *$(addr rdebug loop_top)
continue
continue
continue
reverse-continue
delete
continue
EOF
session rdebug rd "$tmp/s6"
check "a breakpoint on RDRAND: stopped there" "^Breakpoint 1, 0x0*$(addr rdebug loop_top | cut -c3-) in "
replay_end "a breakpoint on RDRAND" rd
# An interrupt pending at STI comes right after the instruction in its
# shadow, as on hardware, and so at the same place whether or not a
# breakpoint splits the code after it.
record rshadow sh
check "the interrupt came after STI's shadow" '^shadow ok$' "$tmp/sh.out"
cat >"$tmp/s7" <<EOF
break *$(addr rshadow shadow3)
continue
p/x \$pc
delete
continue
EOF
session rshadow sh "$tmp/s7"
check "a breakpoint after the shadow: reached" "^\\\$1 = $(addr rshadow shadow3)\$"
replay_end "a breakpoint after STI's shadow" sh

# ---- --gdb is refused with --record ----
"$CORRAL" run --flat "$G/hello.bin" --engine emu --serial none --record "$tmp/x.rr" --gdb "unix:$tmp/s" \
	</dev/null >"$tmp/out" 2>"$tmp/err"
if [ $? -ne 0 ] && grep -q -- "--record cannot be combined with --gdb" "$tmp/err"; then ok; else bad "--record with --gdb"; fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
