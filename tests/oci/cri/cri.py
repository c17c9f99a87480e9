#!/usr/bin/python3
"""A small CRI client for tests/oci/t_cri.sh: the calls the kubelet makes to
containerd's CRI plugin (runtime.v1 over gRPC on containerd's socket), one
command per run. The message modules (api_pb2, api_pb2_grpc) are compiled
from tests/oci/cri/api.proto into a directory on PYTHONPATH by the test.

usage: cri.py SOCKET COMMAND ARGS...
  version                          runtime name and CRI API version
  image REF                        the image's id, or an error if not present
  runpod HANDLER NAME LOGDIR CGROUP  RunPodSandbox (host network), prints its id
  podinfo POD                      "HANDLER PID STATE" from PodSandboxStatus
  pods                             every sandbox id, one a line
  create POD PODNAME LOGDIR CGROUP NAME IMAGE CMD...
                                   CreateContainer in the pod runpod made (its log:
                                   LOGDIR/NAME.log), prints its id
  start ID                         StartContainer
  pid ID                           the container's host pid (verbose ContainerStatus)
  wait ID SECONDS                  waits until it exits; prints "exited CODE REASON"
  stop ID SECONDS                  StopContainer with that grace period
  rmpod POD                        StopPodSandbox and RemovePodSandbox
  log FILE                         a CRI log file as "STREAM TEXT" lines (partial lines joined)
Exit status 1 with one line on stderr when a call fails.
"""
import json
import sys
import time

import grpc

import api_pb2 as api
import api_pb2_grpc as rpc


def pod_config(name, logdir, cgroup):
    # What the kubelet sends for a hostNetwork pod: the node's network
    # namespace, so no CNI plugin is needed, and no hostname (the node's).
    ns = api.NamespaceOption(network=api.NODE, pid=api.CONTAINER, ipc=api.POD)
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, uid="uid-" + name, namespace="default", attempt=0),
        log_directory=logdir,
        labels={"app": name},
        linux=api.LinuxPodSandboxConfig(
            cgroup_parent=cgroup,
            security_context=api.LinuxSandboxSecurityContext(namespace_options=ns)))


def container_status(rt, cid, verbose=False):
    return rt.ContainerStatus(api.ContainerStatusRequest(container_id=cid, verbose=verbose), timeout=60)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    sock, cmd, args = argv[1], argv[2], argv[3:]
    if cmd == "log":
        # CRI log format: "TIMESTAMP STREAM TAG TEXT", TAG F (full) or P
        # (partial). The shim copies the two streams independently, so the
        # lines are printed stream by stream, each in its own order.
        lines = {"stdout": [], "stderr": []}
        part = {}
        with open(args[0], encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(" ", 3)
                if len(fields) < 3 or fields[1] not in lines or fields[2] not in ("F", "P"):
                    print("cri: malformed log line: %r" % line, file=sys.stderr)
                    return 1
                part[fields[1]] = part.get(fields[1], "") + (fields[3] if len(fields) == 4 else "")
                if fields[2] == "F":
                    lines[fields[1]].append(part.pop(fields[1]))
        for stream, text in part.items():
            lines[stream].append(text + " (partial)")
        for stream in ("stdout", "stderr"):
            for text in lines[stream]:
                print(stream, text)
        return 0
    ch = grpc.insecure_channel("unix://" + sock)
    rt = rpc.RuntimeServiceStub(ch)
    im = rpc.ImageServiceStub(ch)
    if cmd == "version":
        r = rt.Version(api.VersionRequest(version="v1"), timeout=60)
        print(r.runtime_name, r.runtime_api_version)
    elif cmd == "image":
        r = im.ImageStatus(api.ImageStatusRequest(image=api.ImageSpec(image=args[0])), timeout=60)
        if not r.image.id:
            print("cri: image %s: not present" % args[0], file=sys.stderr)
            return 1
        print(r.image.id)
    elif cmd == "runpod":
        handler, name, logdir, cgroup = args
        r = rt.RunPodSandbox(api.RunPodSandboxRequest(config=pod_config(name, logdir, cgroup),
                                                      runtime_handler=handler), timeout=120)
        print(r.pod_sandbox_id)
    elif cmd == "podinfo":
        r = rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=args[0], verbose=True), timeout=60)
        info = json.loads(r.info.get("info", "{}"))
        print(info.get("runtimeHandler", "-"), info.get("pid", 0), api.PodSandboxState.Name(r.status.state))
    elif cmd == "pods":
        for p in rt.ListPodSandbox(api.ListPodSandboxRequest(), timeout=60).items:
            print(p.id)
    elif cmd == "create":
        pod, podname, logdir, cgroup, name, image = args[:6]
        conf = api.ContainerConfig(metadata=api.ContainerMetadata(name=name, attempt=0),
                                   image=api.ImageSpec(image=image), command=args[6:],
                                   envs=[api.KeyValue(key="GREETING", value="hello from " + name)],
                                   log_path=name + ".log")
        r = rt.CreateContainer(api.CreateContainerRequest(pod_sandbox_id=pod, config=conf,
                                                          sandbox_config=pod_config(podname, logdir, cgroup)),
                               timeout=120)
        print(r.container_id)
    elif cmd == "start":
        rt.StartContainer(api.StartContainerRequest(container_id=args[0]), timeout=120)
    elif cmd == "pid":
        r = container_status(rt, args[0], True)
        print(json.loads(r.info.get("info", "{}")).get("pid", 0))
    elif cmd == "wait":
        end = time.monotonic() + float(args[1])
        while True:
            s = container_status(rt, args[0]).status
            if s.state == api.CONTAINER_EXITED:
                print("exited", s.exit_code, s.reason)
                break
            if time.monotonic() > end:
                print("cri: %s still %s after %s s" % (args[0], api.ContainerState.Name(s.state), args[1]),
                      file=sys.stderr)
                return 1
            time.sleep(0.2)
    elif cmd == "stop":
        rt.StopContainer(api.StopContainerRequest(container_id=args[0], timeout=int(args[1])),
                         timeout=int(args[1]) + 60)
    elif cmd == "rmpod":
        rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=args[0]), timeout=120)
        rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=args[0]), timeout=120)
    else:
        print("cri: unknown command %s" % cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except grpc.RpcError as e:
        print("cri: %s: %s: %s" % (sys.argv[2], e.code().name, e.details()), file=sys.stderr)
        sys.exit(1)
