"""The chart of deploy/helm/vmafx, rendered and linted by real Helm (helm-python-sdk), offline.

What matters is asserted on the rendered objects: where the rclone config is mounted and with which
file mode, what mount mode adds (and that no other mode has it), the security context of every
container, that the values schema refuses wrong values, and that no credential leaves the Secret.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.helm.chart import (
    CONFIG_DIR,
    CONFIG_PATH,
    MODES,
    Rendered,
    container,
    env_of,
    helm,
    image_group,
    lint,
    mount_at,
    rclone_values,
    render,
    volume,
)

#: a config whose secret the tests look for in everything rendered
SECRET = "s3cr3t-9f2b7c1e-never-outside-the-secret"  # noqa: S105 (a test value)
ACCESS = "AKIA-test-0123456789"
CONFIG = ("[s3]\ntype = s3\nprovider = Other\nendpoint = http://127.0.0.1:9000\n"
          f"access_key_id = {ACCESS}\nsecret_access_key = {SECRET}\nforce_path_style = true\n")
UID = 10001


def _values(mode: str, **more: Any) -> dict[str, Any]:
    return rclone_values(CONFIG, mode, **more)


def _clean(report: dict[str, Any]) -> list[Any]:
    """Lint errors and warnings (severity 2 and 3); infos (e.g. "icon is recommended") are not problems."""
    return [*report["errors"], *(m for m in report["messages"] if m["severity"] >= 2)]


def test_lints_clean_with_the_default_values() -> None:
    report = lint()
    assert report["total_charts_linted"] == 1
    assert _clean(report) == []


@pytest.mark.parametrize("mode", MODES)
def test_lints_clean_in_every_storage_mode_with_a_batch(mode: str) -> None:
    values = _values(mode, batch={"enabled": True, "jobs": '{"id": "a", "reference": {"uri": "s3://b/r.mp4"}}\n'})
    assert _clean(lint(values)) == []


def test_default_values_render_the_scheduler_the_nodes_and_their_policies() -> None:
    r = render()
    assert r.kinds() == sorted([("Deployment", "vmafx-node"), ("Deployment", "vmafx-scheduler"),
                                ("Service", "vmafx-scheduler"), ("NetworkPolicy", "vmafx-node"),
                                ("NetworkPolicy", "vmafx-scheduler"), ("PodDisruptionBudget", "vmafx-node")])
    node = container(r.pod("node"))
    assert env_of(node)["VMAFX_STORAGE_MODE"] == "auto"
    # no config given: nothing is mounted at the config path, and NOTES.txt says what that means
    assert mount_at(node, CONFIG_DIR) is None
    assert "no rclone config" in r.notes
    assert r.one("Deployment", "node")["spec"]["replicas"] == 2


def test_the_nodes_are_dask_workers_of_the_scheduler_service() -> None:
    r = render({"scheduler": {"port": 9786}, "node": {"threadsPerWorker": 3}})
    service = r.one("Service", "scheduler")
    port = service["spec"]["ports"][0]
    assert port["port"] == 9786
    scheduler_pod = r.pod("scheduler")
    assert service["spec"]["selector"].items() <= scheduler_pod["metadata"]["labels"].items()
    scheduler = container(scheduler_pod)
    assert scheduler["command"] == ["/usr/bin/tini", "--", "dask"]
    assert scheduler["args"][:1] == ["scheduler"]
    assert scheduler["args"][scheduler["args"].index("--port") + 1] == "9786"
    assert {"name": "dask", "containerPort": 9786, "protocol": "TCP"} in scheduler["ports"]
    assert port["targetPort"] == "dask"

    node = container(r.pod("node"))
    assert node["command"] == ["/usr/bin/tini", "--", "dask"]
    env = env_of(node)
    assert env["DASK_SCHEDULER_ADDRESS"] == f"tcp://{service['metadata']['name']}:9786"
    args = node["args"]
    assert args[:2] == ["worker", "$(DASK_SCHEDULER_ADDRESS)"]
    assert args[args.index("--nthreads") + 1] == "3"
    # the pod's own name and address, from the downward API, expanded by the kubelet in args
    assert args[args.index("--name") + 1] == "$(POD_NAME)" and args[args.index("--host") + 1] == "$(POD_IP)"
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}


def test_node_placement_resources_and_extra_env_reach_the_node_pods() -> None:
    placement = {
        "replicas": 7,
        "resources": {"requests": {"cpu": "4", "memory": "2Gi"}, "limits": {"cpu": "4", "memory": "3Gi"}},
        "nodeSelector": {"pool": "scoring"},
        "tolerations": [{"key": "scoring", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                               "labelSelector": {"matchLabels": {"app": "x"}}}}]}},
        "extraEnv": [{"name": "VMAFX_PLUGINS", "value": "local,rclone-http,libvmaf"},
                     {"name": "RCLONE_CONFIG_S3_ENV_AUTH", "value": "true"}],
    }
    r = render({"node": placement})
    deployment = r.one("Deployment", "node")
    assert deployment["spec"]["replicas"] == 7
    spec = deployment["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == placement["nodeSelector"]
    assert spec["tolerations"] == placement["tolerations"]
    assert spec["affinity"] == placement["affinity"]
    node = container(deployment["spec"]["template"])
    assert node["resources"] == placement["resources"]
    env = env_of(node)
    assert env["VMAFX_PLUGINS"] == "local,rclone-http,libvmaf" and env["RCLONE_CONFIG_S3_ENV_AUTH"] == "true"
    # the scheduler keeps its own placement
    assert "nodeSelector" not in r.pod("scheduler")["spec"]


@pytest.mark.parametrize("mode", MODES)
def test_the_secret_is_mounted_read_only_at_the_documented_path(mode: str) -> None:
    r = render(_values(mode))
    secret = r.one("Secret")
    assert secret["metadata"]["name"] == "vmafx-rclone"
    assert base64.b64decode(secret["data"]["rclone.conf"]).decode() == CONFIG
    pod = r.pod("node")
    node = container(pod)
    mount = mount_at(node, CONFIG_DIR)
    assert mount is not None and mount["readOnly"] is True
    source = volume(pod, mount["name"])["secret"]
    assert source["secretName"] == "vmafx-rclone"
    assert source["items"] == [{"key": "rclone.conf", "path": "rclone.conf"}]
    assert f"{mount['mountPath']}/{source['items'][0]['path']}" == CONFIG_PATH
    assert env_of(node)["VMAFX_RCLONE_CONFIG"] == CONFIG_PATH
    # root-owned, group = fsGroup = the image's group, read by that group and nobody else
    assert source["defaultMode"] == 0o440
    assert pod["spec"]["securityContext"]["fsGroup"] == image_group() == UID
    # the scheduler and the batch client need no storage config, so they do not get it
    assert mount_at(container(r.pod("scheduler")), CONFIG_DIR) is None


def test_an_existing_secret_is_mounted_and_none_is_made() -> None:
    r = render({"storage": {"mode": "rclone-http",
                            "rclone": {"existingSecret": "team-rclone", "existingSecretKey": "config"}}})
    assert r.all("Secret") == []
    pod = r.pod("node")
    mount = mount_at(container(pod), CONFIG_DIR)
    assert mount is not None and mount["readOnly"] is True
    source = volume(pod, mount["name"])["secret"]
    assert source["secretName"] == "team-rclone"
    assert source["items"] == [{"key": "config", "path": "rclone.conf"}]
    assert source["defaultMode"] == 0o440


@pytest.mark.parametrize("mode", MODES)
def test_storage_mode_reaches_the_nodes_only(mode: str) -> None:
    r = render(_values(mode))
    assert env_of(container(r.pod("node")))["VMAFX_STORAGE_MODE"] == mode
    assert "VMAFX_STORAGE_MODE" not in env_of(container(r.pod("scheduler")))


def _restricted(c: dict[str, Any]) -> None:
    ctx = c["securityContext"]
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == UID
    assert ctx.get("privileged") is not True
    assert "appArmorProfile" not in ctx


def _scratch(pod: dict[str, Any], c: dict[str, Any]) -> None:
    tmp = mount_at(c, "/tmp")
    assert tmp is not None and "emptyDir" in volume(pod, tmp["name"])
    home = mount_at(c, "/home/vmafx")  # vmafx's cache and Dask's config, with a read-only root
    assert home is not None and "emptyDir" in volume(pod, home["name"])


def _no_fuse(pod: dict[str, Any], c: dict[str, Any]) -> None:
    assert mount_at(c, "/dev/fuse") is None
    assert not any("hostPath" in v for v in pod["spec"]["volumes"])
    assert not any("fuse" in k for k in c.get("resources", {}).get("limits", {}))


@pytest.mark.parametrize("mode", [m for m in MODES if m != "rclone-mount"])
def test_every_mode_but_mount_runs_with_all_capabilities_dropped(mode: str) -> None:
    r = render(_values(mode, batch={"enabled": True, "jobs": "{}\n"}))
    for _component, pod in r.pods():
        assert pod["spec"]["securityContext"] == {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                                                  "fsGroup": UID, "seccompProfile": {"type": "RuntimeDefault"}}
        assert pod["spec"]["automountServiceAccountToken"] is False
        c = container(pod)
        _restricted(c)
        _scratch(pod, c)
        _no_fuse(pod, c)
    text = "\n".join(r.files.values())
    assert "SYS_ADMIN" not in text and "DAC_" not in text and "fuse" not in text.lower()


def test_mount_mode_adds_the_fuse_device_and_sys_admin_to_the_nodes_only() -> None:
    r = render(_values("rclone-mount", batch={"enabled": True, "jobs": "{}\n"}))
    pod = r.pod("node")
    node = container(pod)
    ctx = node["securityContext"]
    # DAC_READ_SEARCH: fusermount3 (setuid root, no other capability) must look up the user's 0700 folder
    assert ctx["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN", "DAC_READ_SEARCH"]}
    # the image's fusermount3 is setuid root: no_new_privs (allowPrivilegeEscalation false) would disable it
    assert ctx["allowPrivilegeEscalation"] is True
    assert ctx["readOnlyRootFilesystem"] is True and ctx["runAsNonRoot"] is True and ctx["runAsUser"] == UID
    assert ctx.get("privileged") is False
    assert ctx["appArmorProfile"] == {"type": "Unconfined"}
    # the device from a FUSE device plugin (default), not a hostPath
    assert node["resources"]["limits"]["smarter-devices/fuse"] == 1
    assert node["resources"]["limits"]["cpu"] == "2"  # the other limits stay
    assert mount_at(node, "/dev/fuse") is None
    _scratch(pod, node)
    # the scheduler and the batch client get none of it
    for component in ("scheduler", "batch"):
        other = r.pod(component)
        _restricted(container(other))
        _no_fuse(other, container(other))


def test_mount_mode_with_the_hostpath_device() -> None:
    values = _values("rclone-mount")
    values["storage"]["fuse"] = {"device": "hostPath", "appArmorUnconfined": False}
    r = render(values)
    pod = r.pod("node")
    node = container(pod)
    mount = mount_at(node, "/dev/fuse")
    assert mount is not None
    assert volume(pod, mount["name"])["hostPath"] == {"path": "/dev/fuse", "type": "CharDevice"}
    assert not any("fuse" in k for k in node["resources"].get("limits", {}))
    assert "appArmorProfile" not in node["securityContext"]
    assert node["securityContext"]["capabilities"]["add"] == ["SYS_ADMIN", "DAC_READ_SEARCH"]


@pytest.mark.parametrize("mode", MODES)
def test_no_credential_outside_the_secret(mode: str) -> None:
    values = _values(mode, batch={"enabled": True, "jobs": "{}\n"},
                     node={"extraEnv": [{"name": "AWS_REGION", "value": "eu-west-1"}]})
    r = render(values)
    outside = r.text_outside("Secret")
    encoded = base64.b64encode(CONFIG.encode()).decode()
    for needle in (SECRET, ACCESS, encoded, base64.b64encode(SECRET.encode()).decode()):
        assert needle not in outside
    # nor in any env value, label or annotation (the text search covers them; this says it plainly)
    for obj in r.objects:
        meta = obj["metadata"]
        for item in [*meta.get("labels", {}).values(), *meta.get("annotations", {}).values()]:
            assert SECRET not in item and ACCESS not in item
    for _component, pod in r.pods():
        for value in env_of(container(pod)).values():
            assert SECRET not in str(value)


def test_a_credential_like_literal_env_value_is_refused() -> None:
    errors = helm_errors()
    for name in ("AWS_SECRET_ACCESS_KEY", "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", "RCLONE_CONFIG_SFTP_PASS"):
        with pytest.raises(errors.HelmRenderError, match=f"{name} looks like a credential"):
            render({"node": {"extraEnv": [{"name": name, "value": "x"}]}})
    # from a Secret the value is not in the manifest: allowed
    render({"node": {"extraEnv": [{"name": "AWS_SECRET_ACCESS_KEY",
                                   "valueFrom": {"secretKeyRef": {"name": "aws", "key": "secret"}}}]}})


def helm_errors() -> Any:
    helm()
    from helm_python import errors
    return errors


@pytest.mark.parametrize(("values", "where", "what"), [
    ({"storage": {"mode": "s3fs"}}, "/storage/mode", "value must be one of"),
    ({"node": {"replicas": -1}}, "/node/replicas", "minimum"),
    ({"nodes": {"replicas": 2}}, "at ''", "additional properties 'nodes' not allowed"),
    ({"node": {"replica": 2}}, "/node", "additional properties 'replica' not allowed"),
    ({"storage": {"rclone": {"configFile": "x"}}}, "/storage/rclone", "additional properties 'configFile'"),
    ({"node": {"threadsPerWorker": 0}}, "/node/threadsPerWorker", "minimum"),
])
def test_the_schema_refuses_wrong_values_at_render_and_lint(values: dict[str, Any], where: str, what: str) -> None:
    errors = helm_errors()
    with pytest.raises(errors.HelmValuesError) as refused:
        render(values)
    assert where in str(refused.value) and what in str(refused.value)
    report = lint(values)
    assert any(where in e and what in e for e in report["errors"]), report


@pytest.mark.parametrize(("values", "what"), [
    ({"storage": {"mode": "rclone-http"}}, "storage.mode rclone-http reads every input through rclone"),
    ({"storage": {"mode": "rclone-mount"}}, "storage.mode rclone-mount reads every input through rclone"),
    ({"storage": {"rclone": {"config": "x", "existingSecret": "y"}}}, "not both"),
    ({"batch": {"enabled": True}}, "batch.enabled needs its jobs file"),
])
def test_incomplete_values_are_refused_with_what_to_do(values: dict[str, Any], what: str) -> None:
    with pytest.raises(helm_errors().HelmRenderError, match=what):
        render(values)


def test_the_batch_job_resumes_from_its_claim_on_every_upgrade() -> None:
    values = _values("auto", batch={"enabled": True, "jobs": '{"id": "a"}\n', "extraArgs": ["--skip-failed"]})
    first, second = render(values, revision=1), render(values, revision=2)
    job1, job2 = first.one("Job"), second.one("Job")
    assert job1["metadata"]["name"] == "vmafx-batch-1" and job2["metadata"]["name"] == "vmafx-batch-2"
    claim = first.one("PersistentVolumeClaim")
    assert claim == second.one("PersistentVolumeClaim") | {"__file__": claim["__file__"]}
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pod = job2["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    c = container(pod)
    assert "command" not in c  # the image's entrypoint: tini, then vmafx
    args = c["args"]
    assert args[:2] == ["batch", "/etc/vmafx-batch/jobs.jsonl"]
    assert args[args.index("--cluster") + 1] == "$(DASK_SCHEDULER_ADDRESS)"
    assert env_of(c)["DASK_SCHEDULER_ADDRESS"] == "tcp://vmafx-scheduler:8786"
    out = args[args.index("--out") + 1]
    results = mount_at(c, "/results")
    assert results is not None and out.startswith("/results/")
    assert volume(pod, results["name"])["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert args[-1] == "--skip-failed"
    jobs = mount_at(c, "/etc/vmafx-batch")
    assert jobs is not None and jobs["readOnly"] is True
    configmap = second.one("ConfigMap")
    assert volume(pod, jobs["name"])["configMap"]["name"] == configmap["metadata"]["name"]
    assert configmap["data"]["jobs.jsonl"] == '{"id": "a"}\n'
    # failed jobs (1) and bad input (2) end the Job; a scheduler not reachable yet (3) is retried
    rules = job2["spec"]["podFailurePolicy"]["rules"]
    assert {"action": "FailJob", "onExitCodes": {"containerName": "batch", "operator": "In",
                                                  "values": [1, 2]}} in rules


def test_an_existing_claim_and_configmap_are_used_as_they_are() -> None:
    r = render({"batch": {"enabled": True, "existingConfigMap": "my-jobs", "existingConfigMapKey": "all.jsonl",
                          "persistence": {"existingClaim": "my-results"}}})
    assert r.all("PersistentVolumeClaim") == [] and r.all("ConfigMap") == []
    pod = r.pod("batch")
    assert volume(pod, "results")["persistentVolumeClaim"] == {"claimName": "my-results"}
    assert volume(pod, "jobs")["configMap"] == {"name": "my-jobs",
                                                "items": [{"key": "all.jsonl", "path": "jobs.jsonl"}]}


def _selects(selector: dict[str, str], pod: dict[str, Any]) -> bool:
    return selector.items() <= pod["metadata"]["labels"].items()


def test_network_policies_admit_only_the_release_s_pods() -> None:
    r = render(_values("auto", batch={"enabled": True, "jobs": "{}\n"}))
    other = render(_values("auto"), name="other")
    policies = {p["metadata"]["name"]: p["spec"] for p in r.all("NetworkPolicy")}
    assert set(policies) == {"vmafx-scheduler", "vmafx-node"}
    for name, component in (("vmafx-scheduler", "scheduler"), ("vmafx-node", "node")):
        spec = policies[name]
        assert spec["policyTypes"] == ["Ingress"]
        assert _selects(spec["podSelector"]["matchLabels"], r.pod(component))
        (rule,) = spec["ingress"]
        (peer,) = rule["from"]
        assert set(peer) == {"podSelector"}  # pods of this namespace only
        allowed = peer["podSelector"]["matchLabels"]
        for _component, pod in r.pods():  # the scheduler, the nodes, the batch Job
            assert _selects(allowed, pod)
        for _component, pod in other.pods():  # another release's pods are not admitted
            assert not _selects(allowed, pod)
    assert policies["vmafx-scheduler"]["ingress"][0]["ports"] == [{"port": "dask", "protocol": "TCP"}]
    assert render({"networkPolicy": {"enabled": False}}).all("NetworkPolicy") == []


def test_the_disruption_budget_covers_the_nodes() -> None:
    r = render({"node": {"podDisruptionBudget": {"maxUnavailable": "25%"}}})
    pdb = r.one("PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] == "25%"
    assert _selects(pdb["selector"]["matchLabels"], r.pod("node"))
    assert not _selects(pdb["selector"]["matchLabels"], r.pod("scheduler"))


def test_notes_say_how_to_reach_the_scheduler_and_rerun_the_batch() -> None:
    r = render(_values("rclone-http", batch={"enabled": True, "jobs": "{}\n"}), revision=4)
    assert "port-forward service/vmafx-scheduler 8786:8786" in r.notes
    assert "--cluster tcp://127.0.0.1:8786" in r.notes
    assert "job/vmafx-batch-4" in r.notes
    assert "rclone config from the Secret vmafx-rclone, at /etc/vmafx/rclone.conf" in r.notes
    assert isinstance(r, Rendered)


def test_notes_say_what_mount_mode_needs_from_the_cluster() -> None:
    plugin = render(_values("rclone-mount")).notes
    assert "each node requests one smarter-devices/fuse" in plugin and "stay Pending" in plugin
    values = _values("rclone-mount")
    values["storage"]["fuse"] = {"device": "hostPath"}
    assert "the host's /dev/fuse (hostPath); it must be 0666" in render(values).notes
    assert "Mount mode" not in render(_values("rclone-http")).notes
