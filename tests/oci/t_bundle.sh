#!/bin/sh
# Hostile and broken bundles: each is refused by create with one clear line
# and exit status 1, and leaves nothing behind (no state, no cgroup, no
# process, no mount on the host).
. "$(dirname "$0")/lib.sh"
need_root 103
# RUNAS: a command that runs corral-runc with fewer privileges (setpriv)
RUNAS=""
R() { $RUNAS "$RUNC" --root "$STATE" "$@"; }

# refused ID MESSAGE-PATTERN BUNDLE: create fails with one line matching it
refused() {
	id=$1
	pat=$2
	R create --bundle "$3" "$id" >"$TMP/e" 2>&1
	rc=$?
	if [ "$rc" != 1 ]; then
		bad "$id: create exited $rc: $(head -c 300 "$TMP/e")"
	elif [ "$(wc -l <"$TMP/e")" != 1 ]; then
		bad "$id: not one line: $(cat "$TMP/e")"
	elif ! grep -q -- "$pat" "$TMP/e"; then
		bad "$id: message '$(cat "$TMP/e")' lacks '$pat'"
	else
		ok
	fi
	nothing_left "$id"
}

B=$(bundle base 'c["process"]["args"] = ["true"]')

mkdir -p "$TMP/empty"
refused noconf "config.json: No such file" "$TMP/empty"
mkdir -p "$TMP/bad1" && echo '{"ociVersion": "1.0.2", "root": ' >"$TMP/bad1/config.json"
refused malformed "config.json: line" "$TMP/bad1"
mkdir -p "$TMP/bad2" && echo '[1, 2]' >"$TMP/bad2/config.json"
refused notobject "not a JSON object" "$TMP/bad2"
mkdir -p "$TMP/bad3" && printf '{"ociVersion": "1.0.2", "ociVersion": "1.0.2"}' >"$TMP/bad3/config.json"
refused duplicate "duplicate" "$TMP/bad3"
mkdir -p "$TMP/big" && python3 -c 'print("{\"x\": \"" + "a" * (5 << 20) + "\"}")' >"$TMP/big/config.json"
refused huge "at most" "$TMP/big"
mkdir -p "$TMP/fifo" && mkfifo "$TMP/fifo/config.json"
refused fifo "not a regular file" "$TMP/fifo"

# the root through symlinks and .. out of the bundle, or the host's /
b=$(bundle esc1 'c["process"]["args"] = ["true"]') && rm -rf "$b/rootfs" && ln -s / "$b/rootfs"
refused rootlink "host's root" "$b"
b=$(bundle esc2 'c["process"]["args"] = ["true"]') && mkdir -p "$TMP/outside" && rm -rf "$b/rootfs" && ln -s "$TMP/outside" "$b/rootfs"
refused rootout "leads out of the bundle" "$b"
b=$(bundle esc3 'c["process"]["args"] = ["true"]' 'c["root"]["path"] = "../base/rootfs"')
refused rootdotdot "leads out of the bundle" "$b"
b=$(bundle esc4 'c["process"]["args"] = ["true"]' 'c["root"]["path"] = "nonexistent"')
refused rootmissing "No such file" "$b"

# absurd or unsupported values
refused noargs "process.args" "$(bundle v1 'c["process"]["args"] = []')"
refused badcwd "must be an absolute path" "$(bundle v2 'c["process"]["cwd"] = "relative"')"
refused baduid "out of range" "$(bundle v3 'c["process"]["user"]["uid"] = 1 << 40')"
refused rlimit "soft limit above hard" "$(bundle v4 'c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]')"
refused rltype "unknown type" "$(bundle v5 'c["process"]["rlimits"] = [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]')"
refused pids "below 4" "$(bundle v6 'c["linux"]["resources"]["pids"] = {"limit": 1}')"
refused mem "below 4 MiB" "$(bundle v7 'c["linux"]["resources"]["memory"] = {"limit": 4096}')"
refused dotdot "'..' component" "$(bundle v8 'c["mounts"].append({"destination": "/a/../../etc", "type": "tmpfs", "source": "tmpfs"})')"
refused mtype "not supported" "$(bundle v9 'c["mounts"].append({"destination": "/x", "type": "ext4", "source": "/dev/sda"})')"
refused nstype "not supported" "$(bundle v10 'c["linux"]["namespaces"].append({"type": "time"})')"
refused nomnt "no mount namespace" "$(bundle v11 'c["linux"]["namespaces"] = [{"type": "pid"}]')"
refused longhost "longer than 64" "$(bundle v12 'c["hostname"] = "h" * 100')"
refused unknownkey "not supported" "$(bundle v13 'c["linux"]["intelRdt"] = {"closID": "x"}')"
refused caps "unknown capability" "$(bundle v14 'c["process"]["capabilities"]["bounding"] = ["CAP_EVERYTHING"]')"
refused sysctl "not namespaced" "$(bundle v15 'c["linux"]["sysctl"] = {"kernel.panic": "1"}')"
refused secact "not supported" "$(bundle v16 'c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_NOTIFY"}')"
refused systemd "systemd" "$(bundle v17 'c["linux"]["cgroupsPath"] = "system.slice:corral:x"')"
refused cgdotdot "'..' component" "$(bundle v18 'c["linux"]["cgroupsPath"] = "/a/../../b"')"
refused noproc "no proc mount" "$(bundle v19 'c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/proc"]')"
refused bigargs "entries (at most" "$(bundle v20 'c["process"]["args"] = ["x"] * 5000')"
refused noprog "executable file not found" "$(bundle v21 'c["process"]["args"] = ["nosuchprogram"]')"
refused nocwd "chdir to cwd" "$(bundle v22 'c["process"]["args"] = ["true"]' 'c["process"]["cwd"] = "/nonexistent"')"
refused consize "out of range" "$(bundle v24 'c["process"]["consoleSize"] = {"height": 70000, "width": 80}')"
refused conskey "not supported" "$(bundle v25 'c["process"]["consoleSize"] = {"rows": 24}')"
refused devrel "must be an absolute path" "$(bundle v26 'c["linux"]["devices"] = [{"path": "dev/x", "type": "c", "major": 1, "minor": 3}]')"
refused devdotdot "'..' component" "$(bundle v27 'c["linux"]["devices"] = [{"path": "/dev/../../x", "type": "c", "major": 1, "minor": 3}]')"
refused devtype "must be c, u, b or p" "$(bundle v28 'c["linux"]["devices"] = [{"path": "/dev/x", "type": "s", "major": 1, "minor": 3}]')"
refused devmajor "out of range" "$(bundle v29 'c["linux"]["devices"] = [{"path": "/dev/x", "type": "c", "major": 1 << 40, "minor": 3}]')"
refused devnominor "needs a minor" "$(bundle v30 'c["linux"]["devices"] = [{"path": "/dev/x", "type": "b", "major": 8}]')"
refused devmode "is not of type" "$(bundle v31 'c["linux"]["devices"] = [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "fileMode": 0o100666}]')"
refused devmode2 "out of range" "$(bundle v33 'c["linux"]["devices"] = [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3, "fileMode": 0o1000000}]')"
refused devdir "not a node's path" "$(bundle v32 'c["linux"]["devices"] = [{"path": "/dev", "type": "c", "major": 1, "minor": 3}]')"
refused badns "namespace /nonexistent" "$(bundle v23 'c["process"]["args"] = ["true"]' 'c["linux"]["namespaces"].append({"type": "ipc", "path": "/nonexistent"})' 'c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n.get("path") or n["type"] != "ipc"]')"

# --systemd-cgroup (Podman's cgroup_manager = "systemd"): refused at create
"$RUNC" --root "$STATE" --systemd-cgroup create --bundle "$B" sd1 >"$TMP/e" 2>&1
expect "--systemd-cgroup" 1 $?
grep -q -- "--systemd-cgroup is not supported" "$TMP/e" && ok || bad "--systemd-cgroup message: $(cat "$TMP/e")"
nothing_left sd1

# ids
R create --bundle "$B" "../x" >"$TMP/e" 2>&1
expect "id with a slash" 1 $?
grep -q "invalid container ID format" "$TMP/e" && ok || bad "id message: $(cat "$TMP/e")"
R create --bundle "$B" dup && R create --bundle "$B" dup >"$TMP/e" 2>&1
expect "the same id twice" 1 $?
grep -q "container with given ID already exists" "$TMP/e" && ok || bad "duplicate id message: $(cat "$TMP/e")"
R delete dup
nothing_left dup

# a mount destination through a symlink that points out of the root lands
# inside the root
mkdir -p "$TMP/victim"
echo keep >"$TMP/victim/file"
b=$(bundle link 'c["process"]["args"] = ["sh", "-c", "ls /evil"]' \
	'c["mounts"].append({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"})')
ln -s "$TMP/victim" "$b/rootfs/evil"
if need_static 3; then
	expect "mount through a symlink" "exit 0" "$(run "$b" link)"
	R delete link
	[ -f "$TMP/victim/file" ] && ok || bad "the host's directory was mounted over"
	[ -d "$b/rootfs$TMP/victim" ] && ok || bad "the destination was not made inside the root"
fi
b=$(bundle link2 'c["process"]["args"] = ["true"]' \
	"c['mounts'].append({'destination': '/evil2/sub', 'type': 'bind', 'source': '$TMP/hostdir-none', 'options': ['bind']})")
refused bindsrc "bind source" "$b"

# a score below the current one needs CAP_SYS_RESOURCE: without it create
# fails, as runc's init does, instead of a container that dies at start
b=$(bundle oom 'c["process"]["args"] = ["true"]' 'c["process"]["oomScoreAdj"] = -999')
RUNAS="setpriv --bounding-set -sys_resource --inh-caps -sys_resource"
refused oom "oomScoreAdj -999: Permission denied" "$b"
RUNAS=""

# nothing of the failed containers runs
pgrep -f "corral-runc --root $STATE" >/dev/null && bad "processes left: $(pgrep -af "corral-runc --root $STATE")" || ok
# and nothing of them stays mounted on the host (every bundle is under TMP)
grep -F "$TMP" /proc/self/mountinfo >"$TMP/mounts" && bad "mounts left: $(head -n 3 "$TMP/mounts")" || ok
report
