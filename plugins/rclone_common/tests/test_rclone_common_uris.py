"""URI -> rclone remote mapping, secrets kept out of argv and messages, and grouping by remote root."""

from __future__ import annotations

import pytest
from vmafx_rclone_common import (
    RemotePath,
    canonical_uri,
    group_by_root,
    handles_uri,
    parse_remote_map,
    parse_uri,
    remote_map,
    uri_to_display,
)

from vmafx_core.errors import BadInput


@pytest.mark.parametrize(("uri", "remote", "path"), [
    ("s3://bucket/dir/ref.mp4", "s3", "bucket/dir/ref.mp4"),
    ("gs://bucket/a b/ref#1?.mp4", "gcs", "bucket/a b/ref#1?.mp4"),
    ("azblob://container/100%.mp4", "azblob", "container/100%.mp4"),
    ("S3://bucket/key.mp4", "s3", "bucket/key.mp4"),
    ("myminio:bucket/key.mp4", "myminio", "bucket/key.mp4"),
    ("localt:/tmp/x/y.mp4", "localt", "/tmp/x/y.mp4"),
    ("my remote:dir/y.mp4", "my remote", "dir/y.mp4"),
    (":local:/srv/v.mp4", ":local", "/srv/v.mp4"),
    ("s3,region=eu-west-1:bucket/k.mp4", "s3,region=eu-west-1", "bucket/k.mp4"),
    ("sftp://alice@media.example/srv/v.mp4", ":sftp,host=media.example,user=alice", "/srv/v.mp4"),
    ("sftp://alice@media.example:2222/~/v.mp4", ":sftp,host=media.example,user=alice,port=2222", "v.mp4"),
])
def test_uris_map_to_remote_and_path(uri: str, remote: str, path: str) -> None:
    target = parse_uri(uri)
    assert (target.remote, target.path, target.uri) == (remote, path, uri)
    assert handles_uri(uri)


def test_scheme_map_from_env_and_option_in_that_order() -> None:
    env = {"VMAFX_REMOTE_MAP": "s3=myminio, gs=gcs2"}
    assert remote_map(None, env) == {"s3": "myminio", "gs": "gcs2", "azblob": "azblob"}
    merged = remote_map({"remote_map": {"s3": "other:", "b2": "myb2"}}, env)
    assert merged == {"s3": "other", "gs": "gcs2", "azblob": "azblob", "b2": "myb2"}
    expected = RemotePath("myb2", "bucket/k.mp4", "b2://bucket/k.mp4", "b2")
    assert parse_uri("b2://bucket/k.mp4", merged) == expected
    assert remote_map({"remote_map": "gs=g"}, {})["gs"] == "g"


@pytest.mark.parametrize("text", ["s3", "s3=", "=x", "http=web", "s3=bad:name"])
def test_malformed_remote_map_is_one_line(text: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_remote_map(text)
    assert "VMAFX_REMOTE_MAP" in info.value.message and "\n" not in info.value.message


def test_sftp_through_a_named_remote_keeps_host_and_user_of_the_uri() -> None:
    target = parse_uri("sftp://bob@host.example/data/v.mp4", {"sftp": "boxes"})
    assert target.spec == "boxes,host=host.example,user=bob:/data/v.mp4"
    assert target.remote_name == "boxes" and target.scheme == "sftp"


@pytest.mark.parametrize("uri", [
    "/tmp/ref.mp4", "ref.mp4", "./a:b.mp4", "C:video.mp4", "C:\\videos\\a.mp4", "file:///tmp/a.mp4",
    "http://host/a.mp4", "https://host/a.mp4", "dir/a:b.mp4",
])
def test_local_paths_drives_and_http_are_not_ours(uri: str) -> None:
    assert not handles_uri(uri)


@pytest.mark.parametrize(("uri", "fragment"), [
    ("s3://bucket/../etc/passwd", "'..'"),
    ("remote:dir/../../x.mp4", "'..'"),
    ("remote:dir/./x.mp4", "'.'"),
    ("remote:dir//x.mp4", "empty"),
    ("remote:", "empty"),
    ("s3://bucket", "empty"),
    ("s3://bucket/dir/", "folder"),
    ("s3:///key.mp4", "s3://BUCKET/KEY"),
    ("b2://bucket/k.mp4", "VMAFX_REMOTE_MAP=b2=REMOTE"),
    ("sftp://alice@/x.mp4", "sftp://USER@HOST"),
    ("sftp://alice@host", "no path"),
])
def test_bad_uris_are_one_clear_line(uri: str, fragment: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_uri(uri)
    assert fragment in info.value.message
    assert "\n" not in info.value.message


def test_secrets_in_uris_are_refused_and_never_shown() -> None:
    with pytest.raises(BadInput) as info:
        parse_uri("sftp://alice:hunter22@host.example/v.mp4")
    assert "hunter22" not in info.value.message
    assert uri_to_display("sftp://alice:hunter22@host.example/v.mp4") == "sftp://alice:***@host.example/v.mp4"

    uri = ":s3,access_key_id=AKIAXX,secret_access_key=topsecret,endpoint='http://h:9000':bucket/k.mp4"
    with pytest.raises(BadInput) as info:
        parse_uri(uri)
    assert "topsecret" not in info.value.message and "AKIAXX" not in info.value.message
    shown = uri_to_display(uri)
    assert "topsecret" not in shown and "AKIAXX" not in shown and shown.endswith(":bucket/k.mp4")
    assert uri_to_display("s3://bucket/a b.mp4") == "s3://bucket/a b.mp4"


def test_non_secret_connection_parameters_are_allowed() -> None:
    target = parse_uri(":sftp,host=h,key_file=/home/u/.ssh/id:/x.mp4")
    assert (target.remote, target.path) == (":sftp,host=h,key_file=/home/u/.ssh/id", "/x.mp4")
    assert parse_uri("gcs,env_auth=true:bucket/x.mp4").remote == "gcs,env_auth=true"


def _roots(*uris: str) -> list[tuple[str, tuple[int, ...]]]:
    return [(r.spec, r.members) for r in group_by_root([parse_uri(u) for u in uris])]


def test_one_bucket_one_root_at_the_deepest_common_folder() -> None:
    nested = _roots("s3://b/videos/clip/ref.mp4", "s3://b/videos/clip/enc/dis.mp4")
    assert nested == [("s3:b/videos/clip", (0, 1))]
    assert _roots("s3://b/x/ref.mp4", "s3://b/y/dis.mp4") == [("s3:b", (0, 1))]
    assert _roots("s3://b/ref.mp4") == [("s3:b", (0,))]
    assert _roots("localt:/tmp/a/ref.mp4", "localt:/tmp/a/b/dis.mp4") == [("localt:/tmp/a", (0, 1))]


def test_different_buckets_or_remotes_get_their_own_root() -> None:
    assert _roots("s3://b1/ref.mp4", "s3://b2/dis.mp4") == [("s3:b1", (0,)), ("s3:b2", (1,))]
    assert _roots("s3://b/ref.mp4", "gs://b/dis.mp4") == [("s3:b", (0,)), ("gcs:b", (1,))]
    assert _roots("rr:/b/ref.mp4", "rr:b/dis.mp4") == [("rr:/b", (0,)), ("rr:b", (1,))]


def test_relative_paths_under_a_root() -> None:
    targets = [parse_uri("s3://b/v/a b/ref#.mp4"), parse_uri("s3://b/v/dis.mp4")]
    (root,) = group_by_root(targets)
    assert [root.relative(t) for t in targets] == ["a b/ref#.mp4", "dis.mp4"]
    (top,) = group_by_root([parse_uri("rr:ref.mp4")])
    assert top.spec == "rr:" and top.relative(parse_uri("rr:ref.mp4")) == "ref.mp4"


def test_folder_spec_ends_with_a_slash() -> None:
    specs = [r.folder_spec for r in group_by_root([parse_uri(u) for u in
                                                    ("s3://b/v/ref.mp4", "rr:ref.mp4", "rr:/ref.mp4")])]
    assert specs == ["s3:b/v/", "rr:", "rr:/"]


@pytest.mark.parametrize("uri", ["s3://b/ok/../x.mp4", "s3://b/ok/../", "s3:b/./x.mp4", "gs://b/a//x.mp4/"])
def test_canonical_form_refuses_dot_segments_quoting_what_was_written(uri: str) -> None:
    with pytest.raises(BadInput) as refused:
        canonical_uri(uri)
    assert refused.value.message == f"{uri}: path segments '..', '.' and empty ones are not allowed"


def test_canonical_form_of_buckets_and_prefixes() -> None:
    assert canonical_uri("s3://videos") == canonical_uri("s3://videos/") == "s3:videos"
    assert canonical_uri("s3://videos/a/") == canonical_uri("s3:videos/a") == "s3:videos/a"
