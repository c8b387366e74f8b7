"""A container of a rendered Kubernetes pod, started with the Docker engine as the kubelet would.

What Kubernetes would do for the pod, done here with `docker run` options: the image, its command
(the entrypoint) and args with `$(VAR)` expanded from the container's env, the env itself (downward
API fields filled in by the caller), the user and group of the security context with fsGroup as a
supplementary group, the read-only root file system, the capabilities, no_new_privs, each volume at
its mount path (emptyDirs as 0777 folders, Secrets and ConfigMaps as files with their modes and
group, a claim as a folder, /dev/fuse from a hostPath or a FUSE device plugin as a device), and the
CPU and memory limits. Host networking stands in for the pod network. Anything of the pod spec
this does not know how to reproduce fails the test, rather than being silently left out.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: resources a FUSE device plugin answers with /dev/fuse in the container
FUSE_RESOURCES = ("smarter-devices/fuse", "github.com/fuse")
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined VAR is replaced, `$$` is `$`, anything else stays."""
    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(one, text)


def _quantity_bytes(q: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * factor)
    return int(q)


def _cpus(q: str | int | float) -> str:
    s = str(q)
    return str(int(s[:-1]) / 1000) if s.endswith("m") else s


class PodContainer:
    """`docker run` options and arguments for one container of a rendered pod template."""

    def __init__(self, pod: Mapping[str, Any], container: str, *, objects: list[dict[str, Any]], workdir: Path,
                 fields: Mapping[str, str], env_overrides: Mapping[str, str] | None = None,
                 claims: Mapping[str, Path] | None = None, fuse_device: Path | None = None) -> None:
        """`fields`: downward API values by fieldPath; `env_overrides`: env values replaced (each must
        exist); `claims`: a host folder per PersistentVolumeClaim name; `fuse_device`: the host's
        /dev/fuse (or a node of it) for a hostPath or device plugin /dev/fuse."""
        self.pod_spec = pod["spec"]
        found = [c for c in self.pod_spec["containers"] if c["name"] == container]
        assert len(found) == 1, f"no container {container!r} in {self.pod_spec['containers']}"
        self.c = found[0]
        self.objects = objects
        self.workdir = workdir
        self.claims = dict(claims or {})
        self.fuse_device = fuse_device
        self.env = self._env(fields, dict(env_overrides or {}))
        self.options: list[str] = []
        self._user()
        self._security()
        self._volumes()
        self._resources()
        assert not self.c.get("envFrom"), "envFrom is not reproduced"
        assert not self.pod_spec.get("initContainers"), "init containers are not reproduced"

    def _env(self, fields: Mapping[str, str], overrides: dict[str, str]) -> dict[str, str]:
        env: dict[str, str] = {}
        for e in self.c.get("env", []):
            if "value" in e:
                env[e["name"]] = expand(str(e["value"]), env)
            else:
                ref = e["valueFrom"]
                assert set(ref) == {"fieldRef"}, f"env {e['name']}: only the downward API is reproduced: {ref}"
                path = ref["fieldRef"]["fieldPath"]
                assert path in fields, f"env {e['name']}: no value given for the field {path}"
                env[e["name"]] = fields[path]
        for name, value in overrides.items():
            assert name in env, f"override of {name}, which the container does not have"
            env[name] = value
        return env

    def argv(self) -> tuple[list[str], list[str]]:
        """(options before the image, arguments after it): the command's first word is the entrypoint."""
        command = [expand(a, self.env) for a in self.c.get("command", [])]
        args = [expand(str(a), self.env) for a in self.c.get("args", [])]
        options = list(self.options)
        if command:
            options += ["--entrypoint", command[0]]
            args = command[1:] + args
        env_file = self.workdir / "env"
        # in a file, not on the docker command line; a value with a newline cannot be passed this way
        assert not any("\n" in v for v in self.env.values())
        env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        options += ["--env-file", str(env_file)]
        return options, args

    @property
    def image(self) -> str:
        return str(self.c["image"])

    def _context(self) -> dict[str, Any]:
        pod = {k: v for k, v in self.pod_spec.get("securityContext", {}).items()}
        return {**pod, **self.c.get("securityContext", {})}

    def _user(self) -> None:
        ctx = self._context()
        uid, gid = ctx.get("runAsUser"), ctx.get("runAsGroup")
        assert uid is not None, "the tests run pods only with an explicit runAsUser"
        if ctx.get("runAsNonRoot"):
            assert uid != 0
        self.options += ["--user", f"{uid}:{gid}" if gid is not None else str(uid)]
        fs_group = self.pod_spec.get("securityContext", {}).get("fsGroup")
        if fs_group is not None:
            self.options += ["--group-add", str(fs_group)]
        self.fs_group = fs_group

    def _security(self) -> None:
        ctx = self.c.get("securityContext", {})
        assert not ctx.get("privileged"), "privileged containers are not reproduced"
        if ctx.get("readOnlyRootFilesystem"):
            self.options.append("--read-only")
        caps = ctx.get("capabilities", {})
        for cap in caps.get("drop", []):
            self.options += ["--cap-drop", cap]
        for cap in caps.get("add", []):
            self.options += ["--cap-add", cap]
        if ctx.get("allowPrivilegeEscalation") is False:
            self.options += ["--security-opt", "no-new-privileges"]
        if ctx.get("appArmorProfile", {}).get("type") == "Unconfined":
            self.options += ["--security-opt", "apparmor=unconfined"]
        seccomp = {**self.pod_spec.get("securityContext", {}), **ctx}.get("seccompProfile", {}).get("type")
        assert seccomp in (None, "RuntimeDefault"), f"seccomp profile {seccomp} is not reproduced"

    def _object(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, f"the rendered chart has no {kind} {name}"
        return found[0]

    def _files(self, folder: Path, data: Mapping[str, bytes], items: list[dict[str, Any]] | None,
               mode: int) -> None:
        folder.mkdir(parents=True)
        folder.chmod(0o755)
        chosen = [(i["key"], i["path"], i.get("mode", mode)) for i in items] if items else \
            [(k, k, mode) for k in data]
        for key, path, file_mode in chosen:
            assert key in data, f"no key {key} in the volume's source"
            f = folder / path
            f.write_bytes(data[key])
            if self.fs_group is not None:
                # the kubelet gives a Secret's files the pod's fsGroup; this needs root here
                os.chown(f, 0, int(self.fs_group))
            f.chmod(file_mode)

    def _volumes(self) -> None:
        volumes = {v["name"]: v for v in self.pod_spec.get("volumes", [])}
        for m in self.c.get("volumeMounts", []):
            assert not m.get("subPath"), "subPath mounts are not reproduced"
            v = volumes[m["name"]]
            ro = ":ro" if m.get("readOnly") else ""
            host = self.workdir / "volumes" / m["name"]
            if "emptyDir" in v:
                host.mkdir(parents=True)
                host.chmod(0o777)  # what the kubelet makes an emptyDir
            elif "secret" in v:
                src = v["secret"]
                secret = self._object("Secret", src["secretName"])
                data = {k: base64.b64decode(d) for k, d in secret.get("data", {}).items()}
                self._files(host, data, src.get("items"), src.get("defaultMode", 0o644))
            elif "configMap" in v:
                src = v["configMap"]
                data = {k: d.encode() for k, d in self._object("ConfigMap", src["name"]).get("data", {}).items()}
                self._files(host, data, src.get("items"), src.get("defaultMode", 0o644))
            elif "persistentVolumeClaim" in v:
                host = self.claims[v["persistentVolumeClaim"]["claimName"]]
            elif "hostPath" in v and v["hostPath"]["path"] == "/dev/fuse":
                assert v["hostPath"].get("type") == "CharDevice" and m["mountPath"] == "/dev/fuse"
                assert self.fuse_device is not None, "the pod mounts /dev/fuse but no device was given"
                self.options += ["--device", f"{self.fuse_device}:/dev/fuse"]
                continue
            else:
                raise AssertionError(f"volume {v} is not reproduced")
            self.options += ["-v", f"{host}:{m['mountPath']}{ro}"]

    def _resources(self) -> None:
        limits = self.c.get("resources", {}).get("limits", {})
        for name, value in limits.items():
            if name == "cpu":
                self.options += ["--cpus", _cpus(value)]
            elif name == "memory":
                self.options += ["--memory", str(_quantity_bytes(str(value)))]
            elif name in FUSE_RESOURCES:
                assert self.fuse_device is not None, f"the pod asks for {name} but no device was given"
                self.options += ["--device", f"{self.fuse_device}:/dev/fuse"]
            else:
                raise AssertionError(f"resource {name} is not reproduced")
