"""Process-wide defaults every entry point needs before transformers / datasets are imported.

Nothing here overrides a value the user has set: `HF_HUB_OFFLINE=0 rerank-rl ...` still reaches the hub.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DS_BUILD_OPS", "0")
