"""Schema of the synthesis stage: `SynthesisConfig` (embedded as a recipe's `synthesize:` section) and the
standalone file schema `paradigm: synthesis` that `rerank-rl synthesize CONFIG` loads.

Every key a synthesis config may hold is declared here; `rerank_rl.rl.config.build` rejects unknown keys and
wrong types with the file and the dotted key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from rerank_rl.rl.config import register_schema


@dataclass
class SourcesConfig:
    """Where queries, corpus and judgments come from.

    kind `scifact`: the ../shared/data SciFact folder (`split` train = 809 train claims, test = 300 BEIR claims);
    kind `beir`: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv);
    kind `trec`: `topics` TSV + `qrels` + `corpus` (BEIR corpus.jsonl or a `docid<TAB>text` TSV);
    kind `rank_llm`: a rank_llm `retrieve_results` JSON at `path` (e.g. TREC DL BM25 top-100 with passage texts),
    optional `qrels`. Its candidate lists are the first stage (pools are drawn from them, no retrieval); the corpus
    is the passages the file holds (what synthetic queries are drawn from). Unjudged files need judged_only: false.
    """

    PATHS: ClassVar[dict] = {"path": "file", "topics": "file", "qrels": "file", "corpus": "file"}  # rl/paths.py

    kind: Literal["scifact", "beir", "trec", "rank_llm"] = "scifact"
    path: str = "../shared/data/beir_scifact"
    split: str = "train"
    topics: str = ""
    qrels: str = ""
    corpus: str = ""
    max_queries: int = 0  # 0 = every judged query; otherwise a seeded sample of this many
    judged_only: bool = True  # drop queries without judgments (gold agreement needs them)
    qid_prefix: str = ""  # prepended to this source's query ids (for sources whose ids would collide)

    def validate(self) -> None:
        if self.kind == "trec" and not (self.topics and self.corpus):
            raise ValueError("sources: kind 'trec' needs 'topics' and 'corpus'")
        if self.kind in ("scifact", "beir", "rank_llm") and not self.path:
            raise ValueError(f"sources: kind {self.kind!r} needs 'path'")


@dataclass
class PoolsConfig:
    """Candidate pools: the first-stage top `top_k` plus `sample` documents drawn from ranks sample_from..sample_to
    (1-based, inclusive). GroupRank: hybrid retriever, top-10 + 40 from ranks 11-200."""

    PATHS: ClassVar[dict] = {"encoder": "model"}

    retriever: Literal["bm25", "dense", "hybrid"] = "hybrid"
    top_k: int = 10
    sample: int = 40
    sample_from: int = 11
    sample_to: int = 200
    bm25_weight: float = 0.5  # hybrid: w * minmax(BM25) + (1 - w) * minmax(dense)
    fusion_depth: int = 1000  # hybrid: each retriever's list length before fusion
    include_positives: bool = False  # put judged positives missed by retrieval into the pool (ERank-style)
    encoder: str = "minilm"
    encoder_batch_size: int = 64
    max_seq_length: int = 256
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    stopwords: str = "en"  # bm25s stopword list; "" = none
    # bm25s' default pattern drops one-character tokens; keeping them matches Anserini on SciFact (R@100 0.886)
    token_pattern: str = r"(?u)\b\w+\b"

    def validate(self) -> None:
        if self.top_k < 0 or self.sample < 0 or self.top_k + self.sample < 1:
            raise ValueError("pools: top_k and sample must be >= 0 and give at least one document")
        if self.sample and not (1 <= self.sample_from <= self.sample_to):
            raise ValueError("pools: need 1 <= sample_from <= sample_to")
        if not 0.0 <= self.bm25_weight <= 1.0:
            raise ValueError("pools: bm25_weight must lie in [0, 1]")


@dataclass
class TeacherConfig:
    """The model that labels, writes traces and generates queries.

    backend `transformers`: a local model (default: the embedded SmolLM2-135M-Instruct on CPU), batched generate;
    backend `vllm`: a vLLM offline engine on GPU (optional extra `rerank-rl[vllm]`);
    backend `openai`: any OpenAI-compatible chat endpoint at `base_url` serving `model`.
    """

    PATHS: ClassVar[dict] = {"model": "model", "cache_dir": "file"}

    backend: Literal["transformers", "vllm", "openai"] = "transformers"
    model: str = "smollm2-135m-instruct"
    identity: str = ""  # cache identity; default "<backend>:<model>" (set it to share a cache across backends)
    seed: int = 0
    # local backends
    batch_size: int = 8
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    threads: int = 0  # torch CPU threads for the transformers backend (0 = leave torch's default)
    engine_kwargs: dict[str, Any] = field(default_factory=dict)  # vllm.LLM(**engine_kwargs)
    # endpoint backend
    base_url: str = ""
    api_key_env: str = "OPENAI_API_KEY"  # read the key from this variable; endpoints that need none get "EMPTY"
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 3  # transport retries per request (errors, 5xx, 429, unreadable responses)
    backoff_s: float = 0.5  # first wait; doubles on every retry, capped by backoff_max_s, with jitter
    backoff_max_s: float = 20.0
    # vLLM servers continue a final assistant message (continue_final_message); other endpoints may refuse it
    endpoint_prefill: bool = False
    # every backend
    prefill: bool = True  # start replies with the answer tag ("<answer>") so that weak teachers keep the format
    invalid_retries: int = 1  # re-ask this many times when a reply cannot be parsed
    retry_temperature: float = 0.7  # used by re-asks of greedy requests, so that they can differ
    cache: bool = True
    cache_dir: str = ""  # default: <model cache>/synthesis

    def validate(self) -> None:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("teacher: backend 'openai' needs 'base_url' (e.g. http://localhost:8000/v1)")
        if self.batch_size < 1 or self.concurrency < 1:
            raise ValueError("teacher: batch_size and concurrency must be >= 1")
        if self.max_retries < 0 or self.invalid_retries < 0:
            raise ValueError("teacher: retries must be >= 0")


@dataclass
class EncoderLabelsConfig:
    """The encoder teacher (`labels.teacher: encoder`, see data_synthesis/encoder_labels.py): the cosine of query and
    passage under a sentence-transformers bi-encoder and the first-stage score, each z-scored within the pool, fused
    as weight * z(cosine) + (1 - weight) * z(first_stage). weight 1 = the encoder alone, 0 = the first stage alone.
    Embeddings are cached by text in <teacher.cache_dir>/embeddings.sqlite while `teacher.cache` is on."""

    PATHS: ClassVar[dict] = {"model": "model"}

    model: str = "minilm"  # 'minilm' (the shipped all-MiniLM-L6-v2), a local folder, or a hub id in the HF cache
    weight: float = 0.7
    batch_size: int = 64
    max_seq_length: int = 256
    query_prefix: str = ""  # prepended before encoding, for encoders trained with them (e5: "query: ")
    passage_prefix: str = ""

    def validate(self) -> None:
        if not self.model:
            raise ValueError("model must name an encoder ('minilm', a local folder or a hub id)")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight must lie in [0, 1] (the encoder's share of the fusion), got {self.weight}")
        if self.batch_size < 1 or self.max_seq_length < 8:
            raise ValueError("batch_size must be >= 1 and max_seq_length >= 8")


@dataclass
class LabelsConfig:
    """Teacher labels: pointwise grades (0-10, `pointwise_samples` samples, the one closest to their mean kept)
    and a listwise permutation (sliding windows), fused as S(d) = -beta*ln Lp(d) - (1-beta)*ln Ll(d) with L the
    1-based rank positions. Grades come from the geometric-mean rank G = exp(-S) = Lp^beta * Ll^(1-beta):
    grade = number of `rank_cuts` c with G <= c (cuts [2, 5, 15] -> G<=2: 3, G<=5: 2, G<=15: 1, else 0).

    `teacher: encoder` labels with the bi-encoder of `labels.encoder` instead (no LLM calls): grades are the same
    rank cuts applied to its fused score's rank, `target` merges them with the qrels the same way, and a 0-10
    `teacher_scores` column is added (data_synthesis/encoder_labels.py). The pointwise_*, listwise_*, beta,
    max_docs and max_chars keys belong to the LLM teacher only."""

    enabled: bool = True
    teacher: Literal["llm", "encoder"] = "llm"  # llm = the `teacher:` model; encoder = `labels.encoder`
    encoder: EncoderLabelsConfig = field(default_factory=EncoderLabelsConfig)
    pointwise: bool = True
    pointwise_samples: int = 3
    pointwise_temperature: float = 0.7
    pointwise_max_new_tokens: int = 6
    pointwise_floor: int = 0  # documents whose kept pointwise grade is below this get grade 0 (0 = off)
    listwise: bool = True
    listwise_window: int = 20
    listwise_stride: int = 10
    listwise_max_new_tokens: int = 0  # 0 = sized from the window (about 6 tokens per id)
    beta: float = 0.5
    rank_cuts: list[float] = field(default_factory=lambda: [2.0, 5.0, 15.0])
    # final `labels`: gold = qrels only; teacher = fused grades only; merge = qrels where judged (positives
    # rescaled to the top grade), fused grades for unjudged documents
    target: Literal["gold", "teacher", "merge"] = "merge"
    max_docs: int = 0  # label only the first N pool documents (0 = all); the rest get grade 0
    max_chars: int = 600  # passage characters shown to the teacher

    def validate(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError("labels: beta must lie in [0, 1]")
        if self.enabled and self.teacher == "llm" and not (self.pointwise or self.listwise):
            raise ValueError("labels: enable pointwise, listwise or both")
        if self.pointwise_samples < 1:
            raise ValueError("labels: pointwise_samples must be >= 1")
        if sorted(self.rank_cuts) != list(self.rank_cuts) or any(c < 1 for c in self.rank_cuts):
            raise ValueError("labels: rank_cuts must be ascending values >= 1")
        if self.listwise_window < 2 or not 1 <= self.listwise_stride <= self.listwise_window:
            raise ValueError("labels: need listwise_window >= 2 and 1 <= listwise_stride <= listwise_window")


@dataclass
class TracesConfig:
    """Reasoning traces for SFT in the groupwise format; a trace is kept when the nDCG@10 of its ranking against
    the group's labels reaches `min_ndcg` (and, with `require_format`, when its tags and JSON are clean)."""

    enabled: bool = True
    variant: Literal["reasoning", "answer_only"] = "reasoning"
    group_sizes: list[int] = field(default_factory=lambda: [10])
    groups_per_query: int = 1
    samples: int = 1  # traces asked per group; the best agreeing one is kept
    temperature: float = 0.7
    max_new_tokens: int = 0  # 0 = the paradigm's budget for the group size
    min_ndcg: float = 0.4
    min_coverage: float = 1.0  # share of the group's passages the answer must score
    require_format: bool = True
    max_chars: int = 400

    def validate(self) -> None:
        if not self.group_sizes or min(self.group_sizes) < 2:
            raise ValueError("traces: group_sizes needs sizes of at least 2")


@dataclass
class QueriesConfig:
    """DUQGen synthetic queries: k-means over corpus embeddings, documents drawn across clusters in proportion to
    cluster size, one query generated per document, kept when the document ranks in the pool retriever's top
    `keep_top_k` for it. Kept queries get pools, labels and traces like the source queries."""

    enabled: bool = False
    num_queries: int = 20
    clusters: int = 10
    few_shot: int = 2  # (document, query) examples from the judged source queries shown to the teacher
    keep_top_k: int = 10
    temperature: float = 0.7
    max_new_tokens: int = 48
    max_chars: int = 800

    def validate(self) -> None:
        if self.enabled and (self.num_queries < 1 or self.clusters < 1 or self.keep_top_k < 1):
            raise ValueError("queries: num_queries, clusters and keep_top_k must be >= 1")


@dataclass
class SynthesisConfig:
    """The synthesis stage's whole configuration (a recipe embeds it as `synthesize:`)."""

    seed: int = 0
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    # further sources, each read, pooled and labelled like `sources` (same pools/labels/queries settings); their
    # pools are written together, so query ids must not repeat across sources
    extra_sources: list[SourcesConfig] = field(default_factory=list)
    pools: PoolsConfig = field(default_factory=PoolsConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    traces: TracesConfig = field(default_factory=TracesConfig)
    queries: QueriesConfig = field(default_factory=QueriesConfig)


@dataclass
@register_schema("synthesis")
class SynthesisFile(SynthesisConfig):
    """A standalone synthesis YAML: `paradigm: synthesis` plus the SynthesisConfig keys."""

    PATHS: ClassVar[dict] = {"output_dir": "file"}

    paradigm: Literal["synthesis"] = "synthesis"
    output_dir: str = ""  # default runs/synthesis-<timestamp>; --output-dir wins
