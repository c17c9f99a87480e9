#!/bin/sh
# corral-runc driven directly, as Podman or containerd would: the life of a
# container (create, state, start, kill, delete), what config.json asks of
# its process (exit status, env, cwd, user, hostname, read-only root,
# mounts, rlimits, hooks, seccomp, terminal), exec, pause and resume, and
# that the program runs on corral's CPU, not natively.
. "$(dirname "$0")/lib.sh"
need_root 55
need_static 55 || { report; exit $?; }
R() { "$RUNC" --root "$STATE" "$@"; }

# ---- lifecycle ----
B=$(bundle life 'c["process"]["args"] = ["sh", "-c", "echo started; sleep 30"]')
R create --bundle "$B" life >"$TMP/o" 2>&1
expect "create status" 0 $?
expect "state after create" created "$(state_of life)"
pid=$(R state life | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
# the waiting process is corral (the static corral-runc), not busybox
case "$(readlink /proc/"$pid"/exe)" in
*corral-runc*) ok ;;
*) bad "the container's process is $(readlink /proc/"$pid"/exe), not corral" ;;
esac
R start life >>"$TMP/o" 2>&1
expect "start status" 0 $?
expect "state after start" running "$(state_of life)"
R start life >/dev/null 2>&1
expect "second start fails" 1 $?
sleep 1
grep -q started "$TMP/o" && ok || bad "no output from the container: $(cat "$TMP/o")"
# still corral after the guest's execve of sleep
case "$(readlink /proc/"$pid"/exe)" in
*corral-runc*) ok ;;
*) bad "after execve the process is $(readlink /proc/"$pid"/exe)" ;;
esac
R delete life >"$TMP/e" 2>&1
expect "delete of a running container" 1 $?
grep -q "not stopped" "$TMP/e" && ok || bad "delete message: $(cat "$TMP/e")"
R kill life KILL
expect "kill KILL" 0 $?
for i in 1 2 3 4 5 6 7 8 9 10; do [ "$(state_of life)" = stopped ] && break; sleep 0.2; done
expect "state after kill" stopped "$(state_of life)"
R kill life TERM >"$TMP/e" 2>&1
expect "kill of a stopped container" 1 $?
grep -q "not running" "$TMP/e" && ok || bad "kill message: $(cat "$TMP/e")"
R delete life
expect "delete" 0 $?
nothing_left life
R state life >"$TMP/e" 2>&1
expect "state of a deleted container" 1 $?
grep -q "does not exist" "$TMP/e" && ok || bad "state message: $(cat "$TMP/e")"
R delete --force life
expect "delete --force of nothing" 0 $?

# ---- the process as config.json says ----
B=$(bundle proc 'c["process"]["args"] = ["sh", "-c", "exit 7"]')
expect "exit status" "exit 7" "$(run "$B" p1)"
R delete p1
# (the container's first process is PID 1: as under runc, only a child can
# die of a signal it sends itself)
B=$(bundle proc 'c["process"]["args"] = ["sh", "-c", "sh -c \"kill -USR1 \\$\\$\"; echo $?"]')
expect "death by signal inside" "138
exit 0" "$(run "$B" p2)"
R delete p2
B=$(bundle proc 'c["process"]["args"] = ["sh", "-c", "echo $FOO:$HOME; pwd; id -u; id -g; id -G; hostname"]' \
	'c["process"]["env"].append("FOO=bar baz")' 'c["process"]["env"].append("HOME=/home/user")' \
	'c["process"]["cwd"] = "/home/user"' 'c["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 7]}' \
	'c["hostname"] = "box1"')
expect "env, cwd, user, hostname" "bar baz:/home/user
/home/user
1000
1001
1001 5 7
box1
exit 0" "$(run "$B" p3)"
R delete p3
B=$(bundle proc 'c["process"]["args"] = ["sh", "-c", "touch /x 2>/dev/null && echo writable; touch /tmp/y 2>/dev/null && echo tmp-writable; echo done"]' \
	'c["root"]["readonly"] = True' \
	'c["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]})')
expect "read-only root, tmpfs on /tmp" "tmp-writable
done
exit 0" "$(run "$B" p4)"
R delete p4
mkdir -p "$TMP/hostdir"
echo from-host >"$TMP/hostdir/f"
echo secret >"$TMP/proc/rootfs/etc/secret"
B=$(bundle proc 'c["process"]["args"] = ["sh", "-c", "cat /mnt/h/f; echo x >/mnt/h/g 2>/dev/null || echo ro; cat /proc/self/limits | grep -c \"open files *1024\"; cat /etc/secret | wc -c; touch /home/user/x 2>/dev/null || echo ro-path"]' \
	"c['mounts'].append({'destination': '/mnt/h', 'type': 'bind', 'source': '$TMP/hostdir', 'options': ['rbind', 'ro']})" \
	'c["linux"]["maskedPaths"].append("/etc/secret")' 'c["linux"]["readonlyPaths"].append("/home/user")')
expect "bind mount (read-only), rlimits, masked and read-only paths" "from-host
ro
1
0
ro-path
exit 0" "$(run "$B" p5)"
R delete p5
[ -e "$TMP/hostdir/g" ] && bad "a read-only bind mount was written" || ok
B=$(bundle proc 'c["process"]["args"] = ["sh", "-c", "mkdir /tmp/d && echo made; echo after"]' \
	'c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}')
expect "seccomp profile" "after
exit 0" "$(run "$B" p6 2>/dev/null)"
R delete p6
B=$(bundle proc 'c["process"]["args"] = ["sh", "-c", "test -t 0 && test -t 1 && echo tty; readlink /proc/self/fd/1; stty size"]' \
	'c["process"]["terminal"] = True' 'c["process"]["consoleSize"] = {"height": 33, "width": 101}')
out=$(run "$B" p7 --console)
case "$out" in
"exit 0
tty
/dev/pts/0
33 101"*) ok ;;
*) bad "terminal of consoleSize 33x101 through the console socket: $out" ;;
esac
R delete p7

# ---- linux.devices: nodes of their type, numbers, mode and owner; the
# devices cgroup lets the allowed ones be opened, not /dev/kmsg's ----
B=$(bundle dev 'c["process"]["args"] = ["sh", "-c", "stat -c \"%F %t:%T %a %u:%g\" /dev/mynull /dev/sub/myzero /dev/pipe; echo x >/dev/sub/myzero && echo wrote; head -c 4 /dev/sub/myzero | wc -c; head -c 4 /dev/mykmsg 2>/dev/null | wc -c"]' \
	'c["linux"]["devices"] = [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o620, "uid": 5, "gid": 6}, {"path": "/dev/sub/myzero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o20666}, {"path": "/dev/mykmsg", "type": "c", "major": 1, "minor": 11}, {"path": "/dev/pipe", "type": "p", "fileMode": 0o600}]' \
	'c["linux"]["resources"]["devices"] += [{"allow": True, "type": "c", "major": 1, "minor": m, "access": "rwm"} for m in (3, 5)]')
expect "linux.devices" "character special file 1:3 620 5:6
character special file 1:5 666 0:0
fifo 0:0 600 0:0
wrote
4
0
exit 0" "$(run "$B" d1)"
R delete d1

# ---- hooks: state on stdin, in order, a failing one stops create ----
cat >"$TMP/hook.sh" <<EOS
#!/bin/sh
echo "\$1 \$(cat)" >>"$TMP/hooks.log"
EOS
chmod +x "$TMP/hook.sh"
B=$(bundle hooks 'c["process"]["args"] = ["true"]' \
	"c['hooks'] = {k: [{'path': '$TMP/hook.sh', 'args': ['hook.sh', k]}] for k in ('prestart', 'createRuntime', 'createContainer', 'poststart', 'poststop')}")
expect "with hooks" "exit 0" "$(run "$B" h1)"
R delete h1
expect "hooks in order" "prestart createRuntime createContainer poststart poststop" \
	"$(cut -d' ' -f1 "$TMP/hooks.log" | tr '\n' ' ' | sed 's/ $//')"
grep -q '"id":"h1"' "$TMP/hooks.log" && ok || bad "hooks got no state: $(head -c 300 "$TMP/hooks.log")"
# startContainer hooks are programs of the image, run in the container
# (on corral's CPU) after start and before the process
B=$(bundle hooks 'c["process"]["args"] = ["cat", "/tmp/hooked"]' \
	'c["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo in $(hostname) >/tmp/hooked"]}]}')
expect "startContainer hook" "exit 0
in corral" "$(run "$B" h3 | sort)"
R delete h3
B=$(bundle hooks 'c["process"]["args"] = ["true"]' 'c["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}')
R create --bundle "$B" h2 >"$TMP/e" 2>&1
expect "failing createRuntime hook" 1 $?
nothing_left h2

# ---- exec, ps, list, pause, resume ----
B=$(bundle ex 'c["process"]["args"] = ["sleep", "30"]' 'c["hostname"] = "exhost"')
R create --bundle "$B" ex && R start ex
expect "exec output" "exhost 4" "$(R exec ex sh -c 'echo $(hostname) $((2+2))')"
R exec ex sh -c 'exit 5'
expect "exec exit status" 5 $?
expect "exec --env --cwd --user" "1:/tmp:42" "$(R exec --env A=1 --cwd /tmp --user 42 ex sh -c 'echo $A:$(pwd):$(id -u)')"
R exec ex /nonexistent >"$TMP/e" 2>&1
expect "exec of nothing (runc's status)" 255 $?
grep -q 'exec failed: .*/nonexistent.*No such file' "$TMP/e" && ok || bad "exec of nothing: $(cat "$TMP/e")"
R ps --format json ex | grep -q '^\[[0-9]' && ok || bad "ps --format json: $(R ps --format json ex)"
R list -q | grep -qx ex && ok || bad "list: $(R list)"
R pause ex
expect "pause" paused "$(state_of ex)"
R resume ex
expect "resume" running "$(state_of ex)"
R kill ex 9
sleep 0.5
R delete ex
nothing_left ex

# ---- signals by name and number, kill --all ----
B=$(bundle sig 'c["process"]["args"] = ["sh", "-c", "trap \"exit 3\" TERM; sleep 30 & wait"]')
R create --bundle "$B" s1 && R start s1
sleep 1
R kill s1 NOSUCHSIG >"$TMP/e" 2>&1
expect "unknown signal" 1 $?
R kill --all s1 SIGTERM
expect "kill --all SIGTERM" 0 $?
for i in 1 2 3 4 5 6 7 8 9 10; do [ "$(state_of s1)" = stopped ] && break; sleep 0.3; done
expect "TERM with a handler stops it" stopped "$(state_of s1)"
R delete s1
nothing_left s1

# ---- a user namespace, and joining another container's namespaces ----
B=$(bundle userns 'c["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; touch /tmp/made"]' \
	'c["linux"]["namespaces"].append({"type": "user"})' \
	'c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]' \
	'c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]')
chmod 755 "$TMP"
chown -R 100000:100000 "$B/rootfs"
expect "user namespace" "0
         0     100000      65536
exit 0" "$(run "$B" u1)"
R delete u1
expect "owner of a file made in it" 100000 "$(stat -c %u "$B/rootfs/tmp/made" 2>&1)"
B=$(bundle share 'c["process"]["args"] = ["sleep", "30"]' 'c["hostname"] = "shared"')
R create --bundle "$B" sh1 && R start sh1
pid=$(R state sh1 | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
B2=$(bundle share2 'c["process"]["args"] = ["hostname"]' 'c["hostname"] = None' \
	"c['linux']['namespaces'] = [n if n['type'] not in ('uts', 'network') else dict(n, path='/proc/$pid/ns/' + ('net' if n['type'] == 'network' else 'uts')) for n in c['linux']['namespaces']]")
expect "joined uts namespace" "shared
exit 0" "$(run "$B2" sh2)"
R delete sh2
R delete --force sh1
nothing_left sh1

# features: JSON that says what create honours (seccomp is)
# capabilities and noNewPrivileges: the container's process holds exactly
# the sets asked for (CAP_NET_BIND_SERVICE is bit 10, CAP_KILL bit 5) and
# cannot gain privileges (as the kernel reports them for the process VM)
B=$(bundle caps 'c["process"]["args"] = ["sh", "-c", "grep -E \"^(CapPrm|CapEff|CapBnd|NoNewPrivs)\" /proc/self/status"]' \
	'c["process"]["capabilities"] = {k: ["CAP_NET_BIND_SERVICE", "CAP_KILL"] for k in ("bounding", "effective", "permitted")}' \
	'c["process"]["noNewPrivileges"] = True')
expect "capabilities and noNewPrivileges" "CapPrm:	0000000000000420
CapEff:	0000000000000420
CapBnd:	0000000000000420
NoNewPrivs:	1
exit 0" "$(run "$B" c1)"
R delete c1
B=$(bundle caps 'c["process"]["args"] = ["sh", "-c", "grep -E \"^(CapEff|NoNewPrivs)\" /proc/self/status"]' \
	'c["process"]["capabilities"] = {k: [] for k in ("bounding", "effective", "permitted")}' \
	'c["process"]["noNewPrivileges"] = False')
expect "no capabilities, privileges may be gained" "CapEff:	0000000000000000
NoNewPrivs:	0
exit 0" "$(run "$B" c2)"
R delete c2

# annotations: kept, and given back in state
B=$(bundle ann 'c["process"]["args"] = ["true"]' 'c["annotations"] = {"org.example.k": "v 1"}')
R create --bundle "$B" a1
R state a1 | python3 -c 'import json, sys; assert json.load(sys.stdin)["annotations"] == {"org.example.k": "v 1"}' &&
	ok || bad "annotations: $(R state a1)"
R delete --force a1
nothing_left a1

R features | python3 -c 'import json, sys
f = json.load(sys.stdin)
assert f["linux"]["seccomp"]["enabled"] and "SCMP_ACT_ERRNO" in f["linux"]["seccomp"]["actions"], f["linux"]["seccomp"]
assert "poststop" in f["hooks"] and "user" in f["linux"]["namespaces"]' && ok || bad "features: $(R features)"
report
