#!/bin/sh
# Clones of the Debian guest kit under emu: boot with a writable raw disk,
# write a marker to it from the guest, start a loop printing numbers read
# from /dev/urandom, and snapshot with `corral snapshot --stop`. Then:
# - the snapshot holds the disk as it was (DIR/disk0.raw), and the disk's
#   own name became an overlay on it;
# - three restores run at once: each reads the marker back from the disk
#   (after dropping the guest's caches), writes its own data, and each
#   writes only its own overlay (DIR.restore-N), never the snapshot;
# - each clone gets a new VM generation ID: the guest's vmgenid driver
#   reseeds its RNG ("crng reseeded due to virtual machine fork") and the
#   three clones' random numbers differ;
# - two restores with --keep-vmgenid (the guest not told) print the same
#   random numbers: what the test above would see without the device.
NAME=t_clones
. "$(dirname "$0")/lib.sh"

need_kit
command -v curl >/dev/null 2>&1 || skip "no curl"
work=$(mktemp -d "${TMPDIR:-/tmp}/t_clones.XXXXXX")
pids=
trap 'for p in $pids; do kill $p 2>/dev/null; done; rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
S=$work/api.sock
N=12 # random lines compared per clone

until_seen() { # FILE PATTERN SECONDS
	i=0
	while ! tr -d '\r' 2>/dev/null <"$1" | grep -qE "$2"; do
		i=$((i + 1))
		[ $i -gt $(($3 * 10)) ] && return 1
		sleep 0.1
	done
}

# the random lines a guest printed: "rnd" and 16 hex digits
rnd_lines() { # FILE
	[ -f "$1" ] && tr -d '\r' <"$1" | grep -E '^rnd [0-9a-f]{16}$'
}

truncate -s 16M "$work/disk.raw"
mkfifo "$work/in0"
timeout "$TIMEOUT" "$CORRAL" run --engine emu --mem 256M --serial stdio --api-sock "$S" \
	--disk "$work/disk.raw" <"$work/in0" >"$work/out0" 2>"$work/err0" &
vm=$!
pids="$vm"
exec 9>"$work/in0"
if until_seen "$work/out0" '^/ # ' 600; then ok "booted to the initramfs shell"; else
	fail "no shell prompt"
	tail -n 20 "$work/out0" "$work/err0" | sed 's/^/    /'
	report
	exit 1
fi
echo 'echo snapshot-marker >/tmp/m; dd if=/tmp/m of=/dev/vda bs=512 count=1 conv=sync 2>/dev/null; sync; echo wrote-$((6*7))' >&9
until_seen "$work/out0" '^wrote-42$' 120 && ok "the guest wrote its disk" || fail "the guest did not write its disk"
echo '(while :; do echo "rnd $(od -An -N8 -tx1 /dev/urandom | tr -d " ")"; done) &' >&9
i=0
while [ "$(rnd_lines "$work/out0" | wc -l)" -lt 5 ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
if "$CORRAL" snapshot "$S" "$work/snap" --stop 2>"$work/snaperr"; then ok "corral snapshot --stop"; else
	fail "corral snapshot: $(cat "$work/snaperr")"
fi
wait "$vm"
pids=
exec 9>&-
tr -d '\r' <"$work/out0" | grep -q "crng reseeded due to virtual machine fork" &&
	fail "the first VM saw a fork" || true

# the snapshot holds the disk as it was; the disk's name is an overlay now
if [ -f "$work/snap/disk0.raw" ] && head -c 15 "$work/snap/disk0.raw" | grep -q snapshot-marker; then
	ok "the snapshot holds the disk (disk0.raw, with the marker)"
else
	fail "the snapshot has no disk0.raw with the marker: $(ls "$work/snap")"
fi
if [ "$(head -c 3 "$work/disk.raw")" = "QFI" ]; then ok "the VM's disk became a qcow2 overlay"; else
	fail "the VM's disk is not an overlay"
fi
cp "$work/snap/disk0.raw" "$work/frozen.copy"

# clone K: restore in the background, console input from a FIFO on fd 3+K
start_clone() { # K [options]
	k=$1
	shift
	mkfifo "$work/in$k"
	timeout 600 "$CORRAL" restore "$work/snap" --serial stdio "$@" \
		<"$work/in$k" >"$work/out$k" 2>"$work/err$k" &
	pids="$pids $!"
	eval "exec $((3 + k))>\"\$work/in\$k\""
}

wait_rnd() { # K
	i=0
	while [ "$(rnd_lines "$work/out$1" | wc -l)" -lt $N ] && [ $i -lt 3000 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(rnd_lines "$work/out$1" | wc -l)" -ge $N ]
}

for k in 1 2 3; do start_clone $k; done
for k in 1 2 3; do
	if wait_rnd $k; then ok "clone $k runs on (its loop prints)"; else
		fail "clone $k printed fewer than $N random lines"
		tail -n 5 "$work/out$k" "$work/err$k" | sed 's/^/    /'
	fi
done
for k in 1 2 3; do
	echo "echo 3 >/proc/sys/vm/drop_caches; echo \"disk-\$(head -c 15 /dev/vda)\"; echo clone-$k-data >/tmp/m; dd if=/tmp/m of=/dev/vda bs=512 count=1 conv=sync 2>/dev/null; sync; echo done-$k" >&$((3 + k))
done
for k in 1 2 3; do
	until_seen "$work/out$k" "^done-$k\$" 300 || fail "clone $k did not finish its disk commands"
	if tr -d '\r' <"$work/out$k" | grep -q '^disk-snapshot-marker$'; then
		ok "clone $k reads the disk as it was at the snapshot"
	else
		fail "clone $k does not read the marker: $(tr -d '\r' <"$work/out$k" | grep '^disk-' | head -n 1)"
	fi
	if tr -d '\r' <"$work/out$k" | grep -q "crng reseeded due to virtual machine fork"; then
		ok "clone $k: the guest reseeded its RNG for the new VM generation ID"
	else
		fail "clone $k: no 'crng reseeded due to virtual machine fork'"
	fi
done
for k in 1 2 3; do rnd_lines "$work/out$k" | sed -n "${N}p" >"$work/last$k"; done
if [ -s "$work/last1" ] && ! cmp -s "$work/last1" "$work/last2" && ! cmp -s "$work/last1" "$work/last3" &&
	! cmp -s "$work/last2" "$work/last3"; then
	ok "the three clones draw different random numbers ($(cat "$work/last1" "$work/last2" "$work/last3" | tr '\n' ' '))"
else
	fail "clones drew the same random numbers: $(cat "$work/last1" "$work/last2" "$work/last3" | tr '\n' ' ')"
fi
for k in 1 2 3; do eval "exec $((3 + k))>&-"; done
for p in $pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
pids=

# each clone wrote its own overlay (the clones started together, so which
# DIR.restore-N each took is theirs to race for): the three overlays hold
# the three clones' writes, one each; the snapshot's disk is as it was
found=
for k in 1 2 3; do
	o=$work/snap.restore-$k/disk0.qcow2
	if "$CORRAL" image convert -O raw "$o" "$work/c$k.raw" 2>"$work/cerr"; then
		found="$found $(head -c 12 "$work/c$k.raw" | tr -cd 'a-z0-9-')"
	else
		found="$found unreadable:$(cat "$work/cerr")"
	fi
done
if [ "$(echo $found | tr ' ' '\n' | sort | tr '\n' ' ')" = "clone-1-data clone-2-data clone-3-data " ]; then
	ok "each clone's writes are in an overlay of its own (snap.restore-1..3:$found)"
else
	fail "the clones' overlays hold:$found"
fi
if cmp -s "$work/snap/disk0.raw" "$work/frozen.copy"; then ok "the snapshot's disk is unchanged"; else
	fail "the snapshot's disk changed"
fi

# without a new generation ID, clones draw the same numbers
for k in 4 5; do start_clone $k --keep-vmgenid; done
for k in 4 5; do wait_rnd $k || fail "clone $k (--keep-vmgenid) printed fewer than $N random lines"; done
for k in 4 5; do eval "exec $((3 + k))>&-"; done
for p in $pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
pids=
rnd_lines "$work/out4" | head -n $N >"$work/keep4"
rnd_lines "$work/out5" | head -n $N >"$work/keep5"
if [ -s "$work/keep4" ] && cmp -s "$work/keep4" "$work/keep5"; then
	ok "with --keep-vmgenid two clones draw the same $N random numbers (what VMGenID prevents)"
else
	fail "with --keep-vmgenid the clones differ: $(head -n 2 "$work/keep4" | tr '\n' ' ') / $(head -n 2 "$work/keep5" | tr '\n' ' ')"
fi
tr -d '\r' <"$work/out4" | grep -q "virtual machine fork" && fail "clone 4 was told of a fork" ||
	ok "with --keep-vmgenid the guest is not told"
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
