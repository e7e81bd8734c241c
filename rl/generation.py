"""Decoding backends behind one call: `generator(list_of_chat_messages, max_new_tokens) -> list[str]`.

`HFGenerator` batches prompts through transformers' `generate` (on the GPU when there is one, else the CPU) and also
reads answer scores from the model's token distributions (`score_slots`, see rl/scoring.py); `VLLMGenerator` uses a
vLLM offline engine when the optional `vllm` extra is installed on a GPU machine (`choose_engine`). Both decode greedily unless told otherwise, so evaluation is
deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm


class HFGenerator:
    def __init__(self, model, tokenizer, batch_size: int = 8, temperature: float = 0.0, progress: bool = True,
                 share_prefix: bool = True):
        self.share_prefix = share_prefix  # slot scoring: run a batch's common prompt prefix once (rl/scoring.py)
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.temperature, self.progress = batch_size, temperature, progress
        self._slots = None  # the SlotScorer, built on first use
        self.tokenizer.padding_side = "left"  # decoder-only models continue from the right end
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def __call__(self, conversations: Sequence[list[dict]], max_new_tokens: int) -> list[str]:
        return [text for text, _ in self.generate_with_logprobs(conversations, max_new_tokens, logprobs=False)]

    def generate_with_logprobs(self, conversations: Sequence[list[dict]], max_new_tokens: int,
                               logprobs: bool = True) -> list[tuple[str, list[tuple[str, float]]]]:
        """(completion, [(token text, log-probability)]) per conversation: the distribution each generated token
        was drawn from, for answers that are read as probabilities (ERank's s * P(s)). Empty lists when
        `logprobs` is False."""
        import torch

        texts = [self._render(c) for c in conversations]
        # Sorting by length keeps padding (wasted compute on CPU) small inside each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        outputs: list[tuple[str, list]] = [("", [])] * len(texts)
        was_training = self.model.training
        self.model.eval()
        batches = range(0, len(order), self.batch_size)
        for start in tqdm(batches, desc="generate", unit="batch", disable=not self.progress):
            idx = order[start:start + self.batch_size]
            enc = self._encode([conversations[i] for i in idx], [texts[i] for i in idx]).to(self.model.device)
            sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {"do_sample": False}
            with torch.inference_mode():
                out = self.model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                          output_scores=logprobs, return_dict_in_generate=True, **sampling)
            new_tokens = out.sequences[:, enc["input_ids"].shape[1]:]
            steps = torch.stack(out.scores, dim=1).float().log_softmax(-1) if logprobs else None
            for row, (i, text) in enumerate(zip(idx, self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True))):
                tokens = []
                if logprobs:
                    ids = new_tokens[row].tolist()
                    tokens = [(self.tokenizer.decode([t]), float(steps[row, j, t])) for j, t in enumerate(ids)
                              if t != self.tokenizer.pad_token_id]
                outputs[i] = (text, tokens)
        if was_training:
            self.model.train()
        return outputs

    # Prompt text and model inputs; a vision-language generator (rl/vlm.py) adds each prompt's images.
    def _render(self, conversation: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)

    def _encode(self, conversations: Sequence[list[dict]], texts: Sequence[str]):
        return self.tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)

    def score_slots(self, conversations: Sequence[list[dict]], sizes: Sequence[int]) -> list[list[tuple[int, float]]]:
        """(greedy, expected) 0-10 score per passage of groupwise prompts, from one constrained pass."""
        from rerank_rl.rl.scoring import SlotScorer

        if self._slots is None:
            self._slots = SlotScorer(self.model, self.tokenizer, batch_size=self.batch_size, progress=self.progress,
                                     share_prefix=self.share_prefix)
        return self._slots(conversations, sizes)


class VLLMGenerator:
    """vLLM offline engine (GPU). Imported lazily: vLLM is an optional extra with its own torch."""

    def __init__(self, model_path: str, temperature: float = 0.0, **engine_kwargs):
        from vllm import LLM

        self.llm = LLM(model=model_path, **engine_kwargs)
        self.temperature = temperature

    def __call__(self, conversations: Sequence[list[dict]], max_new_tokens: int) -> list[str]:
        return [text for text, _ in self.generate_with_logprobs(conversations, max_new_tokens, logprobs=False)]

    def generate_with_logprobs(self, conversations: Sequence[list[dict]], max_new_tokens: int,
                               logprobs: bool = True) -> list[tuple[str, list[tuple[str, float]]]]:
        """As HFGenerator's: (completion, [(token text, log-probability of the token drawn)])."""
        from vllm import SamplingParams

        # logprobs=0: vLLM returns the drawn token's log-probability alone
        params = SamplingParams(temperature=self.temperature, max_tokens=max_new_tokens,
                                logprobs=0 if logprobs else None)
        results = self.llm.chat(list(conversations), params, use_tqdm=False)
        out = []
        for result in results:
            sample = result.outputs[0]
            tokens = [(step[t].decoded_token or "", float(step[t].logprob))
                      for t, step in zip(sample.token_ids, sample.logprobs or [])] if logprobs else []
            out.append((sample.text, tokens))
        return out


def device() -> str:
    """Where inference runs: the GPU when there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def vllm_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def choose_engine(use_vllm: bool, scoring: str = "greedy") -> str:
    """"vllm" when asked for (rl.use_vllm), installed and on a GPU, and the scoring only decodes; else
    "transformers" (slot scoring reads the model's distributions, which only the local model gives)."""
    if use_vllm and scoring != "expected" and device() == "cuda" and vllm_installed():
        return "vllm"
    return "transformers"


def load_generator(model_path: str, engine: str, batch_size: int = 8, dtype: str = "float32", **engine_kwargs):
    """The decoding backend `engine` names, greedy, on the GPU when there is one."""
    if engine == "vllm":
        return VLLMGenerator(model_path, dtype=dtype, **engine_kwargs)
    return load_hf_generator(model_path, batch_size=batch_size, dtype=dtype)


def load_hf_generator(model_path: str, batch_size: int = 8, dtype: str = "float32") -> HFGenerator:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rerank_rl.rl.vlm import is_vision_language, load_vision_generator

    if is_vision_language(model_path):  # page images beside the text (the multimodal paradigm)
        return load_vision_generator(model_path, batch_size=batch_size, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).to(device())
    return HFGenerator(model, tokenizer, batch_size=batch_size)
