# Waiting helpers of the migration tests (sourced by tests/migrate/t_*.sh).
lines() { cat "$1" 2>/dev/null | wc -l; }
wait_lines() { # FILE N
	i=0
	while [ "$(lines "$1")" -lt "$2" ] && [ $i -lt 600 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ "$(lines "$1")" -ge "$2" ]
}
wait_sock() { # PATH: up to 10 s
	i=0
	while [ ! -S "$1" ] && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
}
wait_pid() { # PID SECONDS; sets rc (124: still running)
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt $(($2 * 20)) ]; do
		sleep 0.05
		i=$((i + 1))
	done
	if kill -0 "$1" 2>/dev/null; then rc=124; else wait "$1"; rc=$?; fi
}
# the source keeps running its guest: its output grows
still_runs() { # FILE
	n=$(lines "$1")
	wait_lines "$1" $((n + 3))
}
