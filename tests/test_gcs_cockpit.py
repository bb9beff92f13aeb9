"""cockpit.gcs against fake-gcs-server over real HTTP (the google-cloud-storage client, unmodified)."""
from __future__ import annotations

import pytest

from cockpit import clients
from cockpit.errors import CockpitError
from cockpit.gcs import download_prefix, parse_gs, upload_dir


def _tree(root, files: dict[str, bytes]):
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _objects(bucket: str) -> dict[str, bytes]:
    client = clients.storage_client()
    return {b.name: b.download_as_bytes() for b in client.list_blobs(bucket)}


def test_parse_gs_splits_bucket_and_key():
    assert parse_gs("gs://b/data/x/splits.json") == ("b", "data/x/splits.json")
    assert parse_gs("gs://b") == ("b", "")


@pytest.mark.parametrize("bad", ["b/key", "gs://", "s3://b/k", "/local/path"])
def test_parse_gs_rejects_other_uris(bad):
    with pytest.raises(CockpitError, match="is not a gs://bucket/path URI"):
        parse_gs(bad)


def test_upload_dir_copies_the_tree_under_the_prefix(tmp_path, fake_gcs_bucket):
    src = _tree(tmp_path / "d", {"splits.json": b"{}", "img/a.jpg": b"A" * 10, "img/b.jpg": b"B"})
    progress = []
    uploaded, skipped = upload_dir(src, f"gs://{fake_gcs_bucket}/data/syn/",
                                   on_progress=lambda rel, i, n: progress.append((rel, i, n)))
    assert (uploaded, skipped) == (3, 0)
    assert _objects(fake_gcs_bucket) == {"data/syn/splits.json": b"{}", "data/syn/img/a.jpg": b"A" * 10,
                                         "data/syn/img/b.jpg": b"B"}
    assert progress[-1] == ("splits.json", 3, 3)


def test_upload_dir_skips_unchanged_files_and_reuploads_changed_ones(tmp_path, fake_gcs_bucket):
    src = _tree(tmp_path / "d", {"a.txt": b"one", "b.txt": b"two"})
    upload_dir(src, f"gs://{fake_gcs_bucket}/p")
    (src / "b.txt").write_bytes(b"TWO")          # same size, different content
    assert upload_dir(src, f"gs://{fake_gcs_bucket}/p") == (1, 1)
    assert _objects(fake_gcs_bucket)["p/b.txt"] == b"TWO"


def test_upload_to_missing_bucket_is_one_line_error(tmp_path, fake_gcs):
    src = _tree(tmp_path / "d", {"a.txt": b"x"})
    with pytest.raises(CockpitError) as err:
        upload_dir(src, "gs://no-such-bucket-xyz/p")
    assert str(err.value) == "upload to gs://no-such-bucket-xyz/p: bucket gs://no-such-bucket-xyz or object not found"
    assert err.value.exit_code == 4


def test_download_prefix_restores_relative_paths(tmp_path, fake_gcs_bucket):
    src = _tree(tmp_path / "up", {"model/psa_dual_branch_state_dict.pth": b"\x00\x01",
                                  "model/psa_dual_branch_config.json": b'{"a": 1}',
                                  "checkpoints/c.pth": b"ck"})
    upload_dir(src, f"gs://{fake_gcs_bucket}/run1")
    n = download_prefix(f"gs://{fake_gcs_bucket}/run1/model/", tmp_path / "pulled")
    assert n == 2
    assert sorted(p.name for p in (tmp_path / "pulled").iterdir()) == [
        "psa_dual_branch_config.json", "psa_dual_branch_state_dict.pth"]
    assert (tmp_path / "pulled" / "psa_dual_branch_state_dict.pth").read_bytes() == b"\x00\x01"


def test_download_of_empty_prefix_returns_zero(tmp_path, fake_gcs_bucket):
    assert download_prefix(f"gs://{fake_gcs_bucket}/nothing/", tmp_path / "x") == 0
