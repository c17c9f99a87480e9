# Bash completion for corral: commands, subcommands, options, and the files
# that options take (kernels, initramfs, disk images). Installed as
# share/bash-completion/completions/corral.

_corral_files()
{
	compopt -o filenames 2>/dev/null
	COMPREPLY=($(compgen -f -- "$1"))
}

_corral_dirs()
{
	compopt -o filenames 2>/dev/null
	COMPREPLY=($(compgen -d -- "$1"))
}

_corral_run()
{
	local cur=$1 prev=$2
	case $prev in
	--kernel | --initrd) _corral_files "$cur"; return ;;
	--disk)
		# PATH first; after the first comma, the disk's options.
		if [[ $cur == *,* ]]; then
			local base=${cur%,*}
			COMPREPLY=($(compgen -P "$base," -W "format=raw format=qcow2 readonly serial= cache=writeback cache=none bw= ops=" -- "${cur##*,}"))
			compopt -o nospace 2>/dev/null
		else
			_corral_files "$cur"
		fi
		return
		;;
	--net) COMPREPLY=($(compgen -W "user user,hostfwd=tcp: user,restrict=on user,rx_bw= user,tx_bw= user,rx_ops= user,tx_ops= tap,ifname=" -- "$cur")); compopt -o nospace 2>/dev/null; return ;;
	--engine) COMPREPLY=($(compgen -W "emu kvm auto" -- "$cur")); return ;;
	--device) COMPREPLY=($(compgen -W "isa-debug-exit isa-debug-exit,iobase=0xf4,iosize=4" -- "$cur")); return ;;
	--cpu-model) COMPREPLY=($(compgen -W "corral host" -- "$cur")); return ;;
	--accel-threads) COMPREPLY=($(compgen -W "single multi" -- "$cur")); return ;;
	--serial)
		if [[ $cur == file:* ]]; then
			compopt -o filenames 2>/dev/null
			COMPREPLY=($(compgen -P file: -f -- "${cur#file:}"))
		else
			COMPREPLY=($(compgen -W "stdio file: none" -- "$cur"))
			compopt -o nospace 2>/dev/null
		fi
		return
		;;
	--gdb) COMPREPLY=($(compgen -W "tcp::1234 tcp: unix:" -- "$cur")); compopt -o nospace 2>/dev/null; return ;;
	--record | --replay) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--replay-snapshots) COMPREPLY=($(compgen -W "off 20000000 1000000,64" -- "$cur")); return ;;
	--append | --mem | --cpus) return ;;
	--balloon) COMPREPLY=($(compgen -W "on amount= deflate_on_oom=on stats= free_page_reporting=on" -- "$cur")); compopt -o nospace 2>/dev/null; return ;;
	--incoming) COMPREPLY=($(compgen -W "tcp: unix: defer" -- "$cur")); compopt -o nospace 2>/dev/null; return ;;
	esac
	COMPREPLY=($(compgen -W "--kernel --initrd --append --mem --cpus --engine --cpu-model --accel-threads --serial
		--disk --net --rng --balloon --virtio-console --device --no-reboot --api-sock --incoming --gdb --gdb-wait
		--record --replay --replay-snapshots --help" -- "$cur"))
}

_corral_exec()
{
	local cur=$1 prev=$2 k
	case $prev in
	--root) _corral_dirs "$cur"; return ;;
	--argv0 | --mem) return ;;
	--net) COMPREPLY=($(compgen -W "none host user" -- "$cur")); return ;;
	--control) _corral_files "$cur"; return ;;
	--checkpoint-dir) _corral_dirs "$cur"; return ;;
	--checkpoint-signal) COMPREPLY=($(compgen -W "TERM USR1 USR2 HUP INT XCPU" -- "$cur")); return ;;
	esac
	# After the program, its own arguments: files.
	for ((k = 2; k < COMP_CWORD; k++)); do
		case ${COMP_WORDS[k]} in
		--root | --argv0 | --mem | --net | --control | --checkpoint-signal | --checkpoint-dir) ((k++)) ;;
		-*) ;;
		*) _corral_files "$cur"; return ;;
		esac
	done
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "--root --sandbox --no-sandbox --net --mem --argv0 --control --checkpoint-signal
			--checkpoint-dir --trace --help" -- "$cur"))
	else
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -c -- "$cur") $(compgen -f -- "$cur"))
	fi
}

_corral_image()
{
	local cur=$1 prev=$2 sub=${COMP_WORDS[2]}
	if ((COMP_CWORD == 2)); then
		COMPREPLY=($(compgen -W "create info check convert commit --help" -- "$cur"))
		return
	fi
	case $prev in
	-f | -F | -O) COMPREPLY=($(compgen -W "raw qcow2" -- "$cur")); return ;;
	-b) _corral_files "$cur"; return ;;
	-r) COMPREPLY=($(compgen -W "leaks" -- "$cur")); return ;;
	--output) COMPREPLY=($(compgen -W "human json" -- "$cur")); return ;;
	-o)
		COMPREPLY=($(compgen -W "cluster_size= backing_file= backing_fmt=" -- "$cur"))
		compopt -o nospace 2>/dev/null
		return
		;;
	esac
	if [[ $cur == -* ]]; then
		local opts
		case $sub in
		create) opts="-f -b -F -u -o -q --help" ;;
		info) opts="-f --output --help" ;;
		check) opts="-f -r --help" ;;
		convert) opts="-f -O -o -p --help" ;;
		commit) opts="-f -d -p -q --help" ;;
		esac
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	else
		_corral_files "$cur"
	fi
}

_corral_vm()
{
	local cur=$1 prev=$2 k=2 sub
	while [[ ${COMP_WORDS[k]} == --socket ]]; do ((k += 2)); done
	if ((COMP_CWORD <= k)); then
		if [[ $prev == --socket ]]; then
			_corral_files "$cur"
		else
			COMPREPLY=($(compgen -W "create set ls start stop pause resume reboot rm logs console snapshot
				restore clone migrate top --socket --help" -- "$cur"))
		fi
		return
	fi
	sub=${COMP_WORDS[k]}
	if [[ $sub == create ]] && ((COMP_CWORD > k + 1)); then
		if [[ $cur == -* && $prev != --* ]] || [[ $cur == -* ]]; then
			_corral_run "$cur" "$prev"
			COMPREPLY+=($(compgen -W "--no-start --json --cpu-weight --cpu-max --cpuset --memory-max
				--pids-max --nofile" -- "$cur"))
		else
			_corral_run "$cur" "$prev"
		fi
		return
	fi
	if [[ $cur == -* ]]; then
		local opts
		case $sub in
		ls | top) opts="--json" ;;
		stop) opts="--timeout --force" ;;
		rm) opts="--force" ;;
		clone) opts="--count --prefix" ;;
		migrate) opts="--downtime --json" ;;
		set) opts="--json --cpu-weight --cpu-max --cpuset --memory-max --pids-max --nofile --disk-rate
			--net-rate" ;;
		esac
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	elif ((COMP_CWORD == k + 1)) && [[ $sub != create && $sub != ls && $sub != top ]]; then
		# the VM names corrald knows, if it answers
		local names
		names=$(corral vm ls --json 2>/dev/null | grep -o '"name":"[^"]*"' | cut -d'"' -f4)
		COMPREPLY=($(compgen -W "$names" -- "$cur"))
	fi
}

_corral()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	COMPREPLY=()
	if ((COMP_CWORD == 1)); then
		COMPREPLY=($(compgen -W "exec checkpoint restore-exec run snapshot migrate restore vm info image oci help --version --help" -- "$cur"))
		return
	fi
	case ${COMP_WORDS[1]} in
	run) _corral_run "$cur" "$prev" ;;
	vm) _corral_vm "$cur" "$prev" ;;
	exec) _corral_exec "$cur" "$prev" ;;
	image) _corral_image "$cur" "$prev" ;;
	info) COMPREPLY=($(compgen -W "--help" -- "$cur")) ;;
	oci)
		if ((COMP_CWORD == 2)) || [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "create start state kill delete exec ps list pause resume features
				--root --log --log-format --systemd-cgroup --version" -- "$cur"))
		fi
		;;
	snapshot)
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--stop --help" -- "$cur"))
		else
			_corral_files "$cur"
		fi
		;;
	migrate)
		case $prev in
		--downtime-limit) return ;;
		*)
			if [[ $cur == -* ]]; then
				COMPREPLY=($(compgen -W "--downtime-limit --no-auto-converge --copy-disks --compress --quiet --help" -- "$cur"))
			elif ((COMP_CWORD == 3)); then
				COMPREPLY=($(compgen -W "tcp: unix:" -- "$cur"))
				compopt -o nospace 2>/dev/null
			else
				_corral_files "$cur"
			fi
			;;
		esac
		;;
	checkpoint)
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "--leave-running --help" -- "$cur"))
		else
			_corral_files "$cur"
		fi
		;;
	restore-exec)
		case $prev in
		--control) _corral_files "$cur" ;;
		--checkpoint-dir) _corral_dirs "$cur" ;;
		--checkpoint-signal) COMPREPLY=($(compgen -W "TERM USR1 USR2 HUP INT XCPU" -- "$cur")) ;;
		*)
			if [[ $cur == -* ]]; then
				COMPREPLY=($(compgen -W "--control --checkpoint-signal --checkpoint-dir --trace --help" -- "$cur"))
			else
				_corral_dirs "$cur"
			fi
			;;
		esac
		;;
	restore)
		case $prev in
		--serial) COMPREPLY=($(compgen -W "stdio none file:" -- "$cur")) ;;
		--engine) COMPREPLY=($(compgen -W "emu kvm auto" -- "$cur")) ;;
		*)
			if [[ $cur == -* ]]; then
				COMPREPLY=($(compgen -W "--engine --serial --paused --api-sock --disk-dir --keep-vmgenid --keep-mac --net --gdb --gdb-wait --record --replay --replay-snapshots --help" -- "$cur"))
			else
				_corral_files "$cur"
			fi
			;;
		esac
		;;
	esac
}

complete -F _corral corral
