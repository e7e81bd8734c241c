"""Recipe schema of the GLiClass-style zero-shot classifier (`paradigm: classifier`).

Every section has defaults that run in a few minutes on two CPU cores; `configs/gliclass.yaml` spells them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rerank_rl.rl.config import register_schema
from rerank_rl.rl.recipe import RaySection  # the orchestration layer's section, shared by every paradigm


def _check_choice(stage) -> None:
    """The checkpoint-choice settings both training stages share."""
    if stage.validate_every < 0 or stage.patience < 0:
        raise ValueError("validate_every and patience must be >= 0")
    if not 0.0 <= stage.choice_confidence < 1.0:
        raise ValueError(f"choice_confidence must be in [0, 1) (a share of bootstrap resamples), got "
                         f"{stage.choice_confidence}")


@dataclass
class ModelConfig:
    encoder: str = "minilm"  # "minilm" (embedded all-MiniLM-L6-v2), a local folder or a hub id
    # uni_encoder: labels and text in one input (gliclass); bi_encoder: text and labels embedded apart, so the
    # untrained model is the base encoder's label-embedding baseline (the text_/class_vector and projector
    # settings below are the uni-encoder's).
    architecture: Literal["uni_encoder", "bi_encoder"] = "uni_encoder"
    max_length: int = 128  # bi_encoder: 256 is MiniLM's sentence-transformers limit, the baseline's
    text_vector: Literal["sep", "cls"] = "sep"  # the <<SEP>> token before the text, or the sequence's first token
    class_vector: Literal["average", "first"] = "average"  # mean of the label span, or its <<LABEL>> token
    projector_init: Literal["identity", "random"] = "identity"  # identity keeps the encoder's geometry at step 0
    logit_scale: float = 10.0  # initial scale of the cosine scores, 1 / temperature (learned)
    dropout: float = 0.1
    train_embeddings: bool = False  # frozen word embeddings: half the weights, less forgetting, faster steps
    frozen_layers: int = 2  # also keep the lowest N transformer layers fixed (faster backward, less forgetting)
    # bi_encoder only. shared: one encoder embeds texts and labels, both train. frozen: a fixed copy of the
    # pretrained encoder embeds the texts and only the label tower trains (the text space stays the base's).
    text_tower: Literal["shared", "frozen"] = "shared"

    def validate(self):
        if self.text_tower == "frozen" and self.architecture != "bi_encoder":
            raise ValueError("text_tower 'frozen' needs architecture 'bi_encoder' (the uni-encoder reads labels "
                             "and text in one input)")
        if self.max_length < 16:
            raise ValueError("max_length must be at least 16 tokens")
        if self.frozen_layers < 0:
            raise ValueError("frozen_layers must be >= 0")
        if self.frozen_layers and self.train_embeddings:
            raise ValueError("frozen_layers needs train_embeddings false (layers above frozen embeddings only)")
        if self.logit_scale <= 0:
            raise ValueError("logit_scale must be positive")
        if self.class_vector == "average" and self.text_vector == "cls":
            # gliclass bounds a label span at the <<SEP>> token only when it extracts text features (text_vector
            # sep); otherwise the last label's "span" runs on through the whole text.
            raise ValueError("class_vector 'average' needs text_vector 'sep' (use class_vector 'first' with 'cls')")


@dataclass
class DataConfig:
    root: str | None = None  # folder holding the sets; default ../shared/data beside the repository
    # Named sets (`banking77:train`) or classification files (JSONL with `text` and `label`/`labels`, CSV, TSV).
    train: list[str] = field(default_factory=lambda: ["emotion_dair:train", "banking77:train", "sst2:train"])
    eval: list[str] = field(default_factory=lambda: ["ag_news:test", "yin2019_emotion:test"])
    train_per_set: int | None = 3000  # examples drawn from each training set (None: all)
    eval_examples: int | None = 500  # examples drawn from each evaluation set (None: all)
    max_labels: int = 8  # candidate labels offered per training example (gold included)
    other_negatives: int = 2  # of those, negatives drawn from the other training sets' labels
    shuffle_labels: bool = True
    # Draw each example's gold label uniformly within its set (then a text with it), so a frequent training label
    # (sadness, joy) is not learned as a prior that carries over to unseen label sets.
    balance_labels: bool = False
    # Open-vocabulary labels added to each supervised example: content words of the training texts whose truth is
    # unknown, so no BCE target; the MiniLM teacher's similarities train them (needs supervised.distill_weight > 0).
    # They carry the teacher's label-name matching to thousands of names, not just the training sets' own.
    vocab_labels: int = 0
    vocab_min_df: int = 3  # a word must occur in this many training texts ...
    vocab_max_df: float = 0.01  # ... and in at most this fraction of them (drops generic words)
    # Unlabeled texts (`trec_dl`, `beir_scifact`, a .jsonl or one-text-per-line file), drawn as one more training
    # set: each offers only open-vocabulary labels, so the teacher alone trains on them. Web and science passages
    # bring topics that the labelled sets (sentiment, emotion, banking) lack. Needs vocab_labels > 0.
    unlabeled: list[str] = field(default_factory=list)
    # Probability that a labelled set's label is shown as a variant: a template ("about card arrival") or a short
    # description ("joy: feeling happy ..."), so the model reads label strings instead of memorising a few names.
    label_variants: float = 0.0
    # Validation on labels never trained on: {training set: share of its labels held out whole}; texts carrying
    # them leave training and form zero-shot validation groups of up to max_labels labels.
    holdout_labels: dict[str, float] = field(default_factory=dict)
    holdout_sets: list[str] = field(default_factory=list)  # training sets held out whole (validation only)
    holdout_examples: int = 200  # validation texts per held-out set (spread over its groups)
    # Other texts of the held-out labels, never used for checkpoint choice: the held-out figure reported for the
    # chosen model and the base encoder (0: none; the report then has no held-out column).
    holdout_test_examples: int = 200

    def validate(self):
        if not self.train:
            raise ValueError("train needs at least one set")
        if self.max_labels < 2:
            raise ValueError("max_labels must be at least 2 (the gold label and one negative)")
        if not 0 <= self.other_negatives < self.max_labels:
            raise ValueError("other_negatives must be in [0, max_labels)")
        if self.vocab_labels < 0 or self.vocab_min_df < 1 or not 0 < self.vocab_max_df <= 1:
            raise ValueError("vocab_labels >= 0, vocab_min_df >= 1 and vocab_max_df in (0, 1]")
        if self.unlabeled and not self.vocab_labels:
            raise ValueError("unlabeled texts need vocab_labels > 0 (they offer open-vocabulary labels only)")
        if not 0 <= self.label_variants <= 1:
            raise ValueError("label_variants must be in [0, 1]")
        if self.holdout_examples < 10:
            raise ValueError("holdout_examples must be at least 10")
        if self.holdout_test_examples < 0:
            raise ValueError("holdout_test_examples must be >= 0")
        for key, specs in (("holdout_sets", self.holdout_sets), ("holdout_labels", list(self.holdout_labels))):
            stray = [spec for spec in specs if spec not in self.train]
            if stray:
                raise ValueError(f"{key} names {stray[0]!r}, which is not in train (held-out labels come from the "
                                 "training sets)")
        for spec, share in self.holdout_labels.items():
            if not 0 < share < 1:
                raise ValueError(f"holdout_labels.{spec} must be a share in (0, 1), got {share}")


@dataclass
class SupervisedConfig:
    enabled: bool = True
    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-4  # encoder
    head_lr: float = 1e-3  # projectors and logit scale, which start untrained
    warmup: float = 0.1  # fraction of steps with a linear warm-up
    weight_decay: float = 0.01
    # bce / focal: multi-label (sigmoid); ce: single-label (softmax); infonce: each gold label against the
    # example's negatives (the other gold labels left out of its softmax), multi-label aware
    loss: Literal["bce", "focal", "ce", "infonce"] = "bce"
    # Tokens per training text (None: model.max_length). Shorter is cheaper on long passages; validation,
    # evaluation and export keep model.max_length.
    max_length: int | None = None
    focal_gamma: float = 2.0
    focal_alpha: float = -1.0  # weight of positives in the focal loss; negative disables it
    # Distillation from the encoder's own bi-encoder similarity (text vs label name, mean-pooled MiniLM): teaches
    # label-name matching in general, not the training labels; 0 turns it off.
    distill_weight: float = 1.0
    distill_temperature: float = 0.05
    # Weight of the content-free prior penalty: the spread of the label logits when the text says nothing. A label
    # that wins unread is a prior, and priors learnt on training labels carry over to unseen label sets.
    prior_weight: float = 0.0
    # L2-SP: weight of the squared distance of the encoder's weights from the pretrained ones (summed), so training
    # keeps what the encoder knows; 0 = off.
    l2sp_weight: float = 0.0
    grad_clip: float = 1.0
    log_every: int = 10
    save_every: int = 100
    # Zero-shot macro-F1 on the held-out labels (data.holdout_*) every N steps; the stage's model is its best
    # validated checkpoint (step 0 included). 0 = off: the last weights.
    validate_every: int = 50
    patience: int = 0  # stop after this many validations without a new best (0: never stop early)
    # A better figure replaces the kept checkpoint only when it beats it on at least this share of paired bootstrap
    # resamples of the validation texts (0.95: a gain that the sample's noise would explain 1 time in 20 or less);
    # 0 = any strictly better figure.
    choice_confidence: float = 0.0
    # WiSE-FT (robust fine-tuning of zero-shot models): after training, the weights alpha * last + (1 - alpha) *
    # pretrained for each alpha here are validated like checkpoints, so the stage keeps the best of its steps and
    # these mixes. Needs validate_every. [] = off.
    interpolate: list[float] = field(default_factory=list)

    def validate(self):
        if any(not 0.0 < alpha < 1.0 for alpha in self.interpolate):
            raise ValueError(f"interpolate: each weight of the trained model must be strictly between 0 and 1 (0 is "
                             f"the pretrained model, step 0; 1 the last step), got {self.interpolate}")
        if self.interpolate and not self.validate_every:
            raise ValueError("interpolate: the mixes are chosen on the held-out labels; set validate_every > 0")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")
        if self.max_length is not None and self.max_length < 16:
            raise ValueError("max_length must be at least 16 tokens (or null: model.max_length)")
        if self.focal_alpha > 1:
            raise ValueError("focal_alpha must be <= 1 (negative: off)")
        if self.distill_weight < 0 or self.distill_temperature <= 0:
            raise ValueError("distill_weight must be >= 0 and distill_temperature > 0")
        if self.prior_weight < 0 or self.l2sp_weight < 0:
            raise ValueError("prior_weight and l2sp_weight must be >= 0")
        _check_choice(self)


@dataclass
class PPOConfig:
    enabled: bool = True
    steps: int = 20
    batch_size: int = 16
    samples_per_example: int = 4  # Bernoulli action vectors drawn per example (one forward pass serves them all)
    inner_iters: int = 2  # optimisation passes over each rollout batch
    clip_eps: float = 0.2
    kl_coef: float = 0.2  # weight of KL(policy || frozen reference), per label
    entropy_coef: float = 0.0  # > 0 rewards higher per-label entropy (exploration)
    lr: float = 5e-6
    head_lr: float = 2e-5
    reward: str = "f1_micro"  # a classification reward from the registry (f1_micro, f1_macro, accuracy, recall)
    baseline: Literal["value", "batch_mean", "group_mean"] = "value"
    value_lr: float = 1e-3
    grad_clip: float = 1.0
    log_every: int = 5
    save_every: int = 10
    validate_every: int = 2  # held-out-label macro-F1 beside the reward every N steps; the best checkpoint is kept
    patience: int = 0
    choice_confidence: float = 0.0  # as supervised.choice_confidence

    def validate(self):
        _check_choice(self)
        if self.steps < 0 or self.batch_size < 1 or self.samples_per_example < 1 or self.inner_iters < 1:
            raise ValueError("steps >= 0, batch_size, samples_per_example and inner_iters >= 1")
        if not 0 < self.clip_eps < 1:
            raise ValueError("clip_eps must be in (0, 1)")
        if self.kl_coef < 0 or self.entropy_coef < 0:
            raise ValueError("kl_coef and entropy_coef must be >= 0")
        if self.baseline == "group_mean" and self.samples_per_example < 2:
            raise ValueError("baseline group_mean needs samples_per_example >= 2")


@dataclass
class EvaluateConfig:
    enabled: bool = True
    batch_size: int = 32
    embedding_baseline: bool = True  # MiniLM similarity between text and label name, beside the model
    classification_type: Literal["single-label", "multi-label"] = "single-label"
    threshold: float = 0.5  # multi-label only


@dataclass
class ExportConfig:
    enabled: bool = True
    dir: str = "export"  # relative to the run folder


@register_schema("classifier")
@dataclass
class ClassifierRecipe:
    paradigm: str = "classifier"
    name: str = "gliclass"
    seed: int = 0
    output_dir: str = "runs"
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    supervised: SupervisedConfig = field(default_factory=SupervisedConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    ray: RaySection = field(default_factory=RaySection)  # read by the orchestration layer only

    def validate(self):
        if self.paradigm != "classifier":
            raise ValueError("paradigm must be 'classifier' for this schema")
        if self.data.vocab_labels and self.supervised.enabled and not self.supervised.distill_weight:
            raise ValueError("data.vocab_labels needs supervised.distill_weight > 0 (only the teacher scores them)")
