"""Process-wide defaults every entry point needs before transformers / datasets are imported.

Nothing here overrides a value the user has set: `HF_HUB_OFFLINE=0 rerank-rl ...` still reaches the hub.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("DS_BUILD_OPS", "0")
# With more busy processes than cores (Ray workers, a shared CI box), OpenMP's default spin-waiting makes torch on
# CPU several times slower (measured here: 60 s vs 12 s for one generate call on a loaded 2-core machine).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
