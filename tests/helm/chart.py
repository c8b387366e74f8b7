"""The Helm chart of deploy/helm/vmafx, rendered and linted by Helm itself (helm-python-sdk: Helm v4's
Go SDK as a shared library, offline), and the rendered objects as Python data."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "vmafx"
RELEASE = "vmafx"
NAMESPACE = "scoring"
MODES = ("auto", "rclone-http", "rclone-mount", "local")
#: what the Secret's file is mounted as, and where the image looks for it (docker/Dockerfile.node)
CONFIG_DIR = "/etc/vmafx"
CONFIG_PATH = "/etc/vmafx/rclone.conf"


def helm() -> Any:
    """The `helm_python.chart` module; skipped without it, a failure under CI."""
    try:
        from helm_python import chart
    except ImportError as exc:
        reason = f"helm-python-sdk is not installed ({exc}): pip install -r requirements-dev.txt"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, but {reason}", pytrace=False)
        pytest.skip(reason)
    return chart


class Rendered:
    """The manifests of one `helm template`: objects by kind and name, and the raw text of each file."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.files = dict(files)
        self.objects: list[dict[str, Any]] = []
        for path, text in sorted(files.items()):
            if path.endswith(".txt"):
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    doc["__file__"] = path
                    self.objects.append(doc)

    @property
    def notes(self) -> str:
        return next((t for p, t in self.files.items() if p.endswith("NOTES.txt")), "")

    def kinds(self) -> list[tuple[str, str]]:
        return sorted((o["kind"], o["metadata"]["name"]) for o in self.objects)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, component: str | None = None) -> dict[str, Any]:
        found = [o for o in self.all(kind)
                 if component is None or o["metadata"]["labels"].get("app.kubernetes.io/component") == component]
        assert len(found) == 1, f"{len(found)} {kind} of component {component}: {self.kinds()}"
        return found[0]

    def pod(self, component: str) -> dict[str, Any]:
        """The pod template of the workload of `component` (node, scheduler, batch)."""
        kind = "Job" if component == "batch" else "Deployment"
        template: dict[str, Any] = self.one(kind, component)["spec"]["template"]
        return template

    def pods(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for o in self.objects:
            if o["kind"] in ("Deployment", "Job"):
                yield o["metadata"]["labels"]["app.kubernetes.io/component"], o["spec"]["template"]

    def text_outside(self, kind: str) -> str:
        """Every rendered file's text, without the objects of `kind` (e.g. the Secret), and NOTES.txt."""
        parts = [self.notes]
        for o in self.objects:
            if o["kind"] != kind:
                parts.append(yaml.safe_dump({k: v for k, v in o.items() if k != "__file__"}))
        return "\n".join(parts)


def render(values: Mapping[str, Any] | None = None, *, name: str = RELEASE, revision: int = 1) -> Rendered:
    chart = helm().Chart.load(str(CHART))
    return Rendered(chart.render(dict(values or {}), name=name, namespace=NAMESPACE, revision=revision,
                                 is_install=revision == 1, is_upgrade=revision > 1))


def lint(values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = helm().lint(str(CHART), dict(values or {}), strict=True, namespace=NAMESPACE)
    return result


def container(pod: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = pod["spec"]["containers"]
    if name is None:
        assert len(containers) == 1, containers
        return dict(containers[0])
    return dict(next(c for c in containers if c["name"] == name))


def env_of(c: Mapping[str, Any]) -> dict[str, Any]:
    """name -> value (a string) or valueFrom (a dict)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def volume(pod: Mapping[str, Any], name: str) -> dict[str, Any]:
    return dict(next(v for v in pod["spec"]["volumes"] if v["name"] == name))


def mount_at(c: Mapping[str, Any], path: str) -> dict[str, Any] | None:
    return next((dict(m) for m in c.get("volumeMounts", []) if m["mountPath"] == path), None)


def image_group() -> int:
    """The gid of the node image's user, as docker/Dockerfile.node makes it."""
    text = (REPO / "docker" / "Dockerfile.node").read_text()
    found = re.search(r"groupadd --gid (\d+) vmafx", text)
    assert found, "docker/Dockerfile.node no longer makes the vmafx group with groupadd --gid"
    return int(found.group(1))


def rclone_values(config: str, mode: str = "auto", **more: Any) -> dict[str, Any]:
    return {"storage": {"mode": mode, "rclone": {"config": config}}, **more}
