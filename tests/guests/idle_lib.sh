# Shared by t_idle.sh and t_idle_mt.sh (sourced after they define tmp,
# pid, SLOW, ok and bad): what an idle VM process does, seen from outside.

# the voluntary context switches (sleeps that ended) of every thread of $pid
sleeps() {
	n=0
	for t in /proc/"$pid"/task/*/status; do
		v=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "$t" 2>/dev/null)
		n=$((n + ${v:-0}))
	done
	echo "$n"
}

# the guest's console lines so far ($tmp/out)
lines() { wc -l <"$tmp/out"; }

# idle_lead TAG: waits until idle_tick.S has run 300 s of guest time (a
# line every 100 ms of it, 3000 lines) while $pid lives; lead=1 if so
idle_lead() {
	lead=0
	i=0
	while [ $i -lt $((600 * SLOW)) ]; do
		[ -s "$tmp/out" ] && [ "$(lines)" -ge 3000 ] && lead=1 && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	if [ $lead = 1 ]; then
		ok
	else
		bad "$1" "the guest did not reach 300 s of idle time in $((60 * SLOW)) s ($(lines) lines)"
	fi
}

# idle_window: after a second, 4 s of watching: s0/s1 the wake-ups and
# l0/l1 the lines at its ends, ms its wall time
idle_window() {
	sleep 1
	s0=$(sleeps)
	l0=$(lines)
	t0=$(date +%s%N)
	sleep 4
	s1=$(sleeps)
	l1=$(lines)
	ms=$((($(date +%s%N) - t0) / 1000000))
}

# idle_pace TAG: the window's wall time in lines of guest time (100 ms
# each), give or take the batch (10 lines) and a loaded host's delays
idle_pace() {
	d=$((l1 - l0))
	max=$((ms / 100 + 15))
	if [ $d -ge 10 ] && [ $d -le $max ]; then
		ok
	else
		bad "$1" "the guest's clock advanced $d lines (100 ms each) in $ms ms of wall time (10-$max wanted)"
	fi
}
