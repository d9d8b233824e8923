"""Side-by-side generation: the original model and the unlearned one, from ONE loaded base.

A ``CompareSession`` loads the base model once and puts the run's adapter on it (two runs: both
adapters on the same base, PEFT ``load_adapter``/``set_adapter``). A side is the base with the
adapter off ("original"), or with one named adapter on. ``stream`` yields a side's generation
piece by piece; ``run_pair`` generates two sides in turns, token for token, with the same
prompt, the same decoding and the same seed, so that any difference comes from the adapter.

Prompt sets come from the run's data roles, formatted with each role's template: forget,
paraphrased forget, neighbours (retain and holdout) and general text.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from unlearn_studio.core.data.templates import format_prompt, resolve_template
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.model import loading as models
from unlearn_studio.core.model.generate import cache_of, model_device, with_cache
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.results.finished_run import FinishedRun
from unlearn_studio.core.run.data import load_roles

ORIGINAL = "original"
PROMPT_SETS = ("forget", "paraphrased forget", "neighbours", "general")
PROMPTS_PER_SET = 25
TURN_TOKENS = 4  # tokens a side generates before the other side's turn
OPENING_WORDS = 6  # a text row's prompt is its opening words; the model continues them


# ---- what is compared ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One column of the comparison: the base with the adapter off, or with ``adapter`` on."""

    key: str  # ORIGINAL or the adapter's name
    label: str  # says truthfully what produced the text
    adapter: str | None
    source: str = ""  # the base model's folder (original) or the adapter's folder


@dataclass(frozen=True)
class CompareSpec:
    """What to load: the runs (one or two) whose adapters share a base model. Built from the store
    on the caller's thread (fast, checks input); ``CompareSession.load`` does the slow part."""

    runs: tuple[FinishedRun, ...]

    @classmethod
    def from_store(cls, store, *run_ids: str) -> CompareSpec:
        if not 1 <= len(run_ids) <= 2:
            raise ValueError("compare one run with the original model, or two runs with each other")
        if len(run_ids) == 2 and run_ids[0] == run_ids[1]:
            raise UserError("Both sides name the same run", "Pick two different runs to compare.")
        runs = tuple(FinishedRun.from_store(store, run_id) for run_id in run_ids)
        if len(runs) == 2:
            a, b = (r.config.model for r in runs)
            base_a, base_b = runs[0].config.resolve_model_path(), runs[1].config.resolve_model_path()
            if base_a != base_b:
                raise UserError(
                    f"Run {runs[0].short_id} and run {runs[1].short_id} were trained on different base "
                    f"models ({base_a} and {base_b})",
                    "Compare runs of the same base model; two bases would need two copies in memory.",
                )
            if a.dtype != b.dtype:
                raise UserError(
                    f"Run {runs[0].short_id} loads the base as {a.dtype}, run {runs[1].short_id} as {b.dtype}",
                    "Compare runs that load the base model with the same model.dtype.",
                )
        return cls(runs)

    @property
    def config(self) -> RunConfig:
        """The config whose model and data the session uses (the first run's)."""
        return self.runs[0].config


@dataclass(frozen=True)
class Decoding:
    """How both sides decode: greedy, or sampled with a seed (the same seed on both sides)."""

    sample: bool = False
    seed: int = 0
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0

    def check(self) -> None:
        if self.max_new_tokens < 1:
            raise UserError(f"Max tokens is {self.max_new_tokens}", "Generate at least 1 new token.")
        if self.sample and not self.temperature > 0:
            raise UserError(f"Temperature {self.temperature} is not above 0",
                            "Use a temperature above 0 (1.0 samples from the model as it is), or greedy decoding.")
        if self.sample and not 0 < self.top_p <= 1:
            raise UserError(f"Top-p {self.top_p} is not in (0, 1]", "Use a top-p above 0 and at most 1.")
        if self.seed < 0:
            raise UserError(f"Seed {self.seed} is negative", "Use a seed of 0 or more.")


@dataclass(frozen=True)
class PromptItem:
    set_name: str
    label: str  # what a person reads in a list (the question, or the opening words)
    prompt: str  # exactly what the model is given
    reference: str = ""  # the data's answer (or the rest of the text)
    template: str = ""  # the template that made ``prompt`` from the question ("": a text opening, as it is)


@dataclass
class PairResult:
    texts: list[str]  # the full generation of each side
    tokens: list[int]  # new tokens per side
    seconds: float
    stopped: bool  # ended by should_stop before every side was done


# ---- prompt sets -----------------------------------------------------------------------------------


def build_prompt_sets(config: RunConfig, tokenizer, limit: int = PROMPTS_PER_SET
                      ) -> tuple[dict[str, list[PromptItem]], list[str]]:
    """The prompt sets of a run's data roles, and notes on roles that could not be read.

    A set is left out when the project has no data for it (e.g. no general role)."""
    wanted = [role for role in ("forget", "retain", "holdout", "general") if role in config.data]
    data, notes = {}, []
    for role in wanted:
        try:
            data.update(load_roles(config, [role]))
        except UserError as error:
            notes.append(f"{role}: {error.problem}")
    sets: dict[str, list[PromptItem]] = {}

    def items(role: str, set_name: str, use_paraphrase: bool = False) -> list[PromptItem]:
        if role not in data:
            return []
        loaded = data[role].loaded
        template = resolve_template(config.data[role].template, loaded.kind, tokenizer)
        out = []
        for row in loaded.rows:
            if len(out) >= limit:
                break
            if loaded.kind == "text":
                if use_paraphrase:
                    continue
                words = row["text"].split()
                opening = " ".join(words[:min(OPENING_WORDS, max(1, len(words) // 2))])
                out.append(PromptItem(set_name, opening, opening, " ".join(words[len(opening.split()):])))
                continue
            question = row.get("paraphrased_question") if use_paraphrase else row["question"]
            if not question:
                continue
            answer = (row.get("paraphrased_answer") or row["answer"]) if use_paraphrase else row["answer"]
            out.append(PromptItem(set_name, question, format_prompt(question, template, tokenizer), answer, template))
        return out

    sets["forget"] = items("forget", "forget")
    sets["paraphrased forget"] = items("forget", "paraphrased forget", use_paraphrase=True)
    # Neighbours of both kinds when there are both: known ones (retain) and never-seen ones (holdout).
    retain, holdout = items("retain", "neighbours"), items("holdout", "neighbours")
    n_holdout = min(len(holdout), limit // 2) if retain else len(holdout)
    sets["neighbours"] = (retain[: limit - n_holdout] + holdout[:n_holdout])[:limit]
    sets["general"] = items("general", "general")
    return {name: sets[name] for name in PROMPT_SETS if sets[name]}, notes


# ---- the session -----------------------------------------------------------------------------------


@dataclass
class CompareSession:
    """A loaded base model with the runs' adapters on it; generation for any side."""

    spec: CompareSpec
    model: object  # PeftModel
    tokenizer: object
    sides: list[Side]
    prompt_sets: dict[str, list[PromptItem]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # prompt sets that could not be built, and why
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, spec: CompareSpec, *, progress: Callable[[str], None] | None = None,
             reuse: CompareSession | None = None) -> CompareSession:
        """Load the base once, every run's adapter onto it, and the prompt sets (slow: a worker's job).

        ``reuse``: a session no longer needed; when its base model is the one ``spec`` needs, its
        adapters are taken out and the base is used again instead of loading a second copy. That
        session must not be used afterwards."""
        say = progress or (lambda message: None)
        config = spec.config
        if reuse is not None and reuse.model is not None and reuse.base_key == _base_key(config):
            say(f"Taking the adapters off the loaded base model {config.model.path}…")
            base, tokenizer = reuse.model.unload(), reuse.tokenizer
            reuse.model = None
        else:
            say(f"Loading the base model {config.model.path}…")
            loaded = models.load_model(config.resolve_model_path(), dtype=config.model.dtype,
                                       device=config.model.device, trust_remote_code=config.model.trust_remote_code,
                                       allow_network=config.model.allow_network)
            base, tokenizer = loaded.model, loaded.tokenizer
        names = [f"run-{run.run_id}" for run in spec.runs]
        say(f"Putting the adapter of {spec.runs[0].label} on it…")
        peft = models.load_adapter(base, spec.runs[0].adapter_dir, adapter_name=names[0])
        for run, name in zip(spec.runs[1:], names[1:], strict=True):
            say(f"Putting the adapter of {run.label} on it…")
            models.add_adapter(peft, run.adapter_dir, adapter_name=name)
        peft.eval()
        original = Side(ORIGINAL, f"original: {spec.runs[0].model_name} (adapter off)", None,
                        config.resolve_model_path())
        if len(spec.runs) == 1:
            sides = [original, Side(names[0], f"unlearned: {spec.runs[0].label} (adapter on)", names[0],
                                    str(spec.runs[0].adapter_dir))]
        else:
            sides = [original] + [Side(name, f"{run.label} (its adapter on)", name, str(run.adapter_dir))
                                  for run, name in zip(spec.runs, names, strict=True)]
        say("Reading the prompt sets…")
        sets, notes = build_prompt_sets(config, tokenizer)
        return cls(spec, peft, tokenizer, sides, sets, notes)

    @property
    def base_key(self) -> tuple:
        return _base_key(self.spec.config)

    @property
    def question_template(self) -> str | None:
        """The template the project's question/answer data was trained with (None: text data only)."""
        return next((item.template for items in self.prompt_sets.values() for item in items if item.template), None)

    def format_question(self, question: str) -> str:
        """A question typed by a person, as the model saw questions in training (its template)."""
        template = self.question_template
        return format_prompt(question, template, self.tokenizer) if template else question

    def side(self, key: str) -> Side:
        for side in self.sides:
            if side.key == key:
                return side
        raise KeyError(f"no side {key!r}; sides are {[s.key for s in self.sides]}")

    @property
    def default_pair(self) -> tuple[str, str]:
        """One run: original vs unlearned; two runs: the first run vs the second."""
        first = 0 if len(self.sides) == 2 else 1
        return self.sides[first].key, self.sides[first + 1].key

    # ---- generation ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _as_side(self, side: Side):
        """The shared network behaving as ``side``: adapter off, or that adapter on."""
        if side.adapter is None:
            with self.model.disable_adapter():
                yield
        else:
            if self.model.active_adapter != side.adapter:
                self.model.set_adapter(side.adapter)
            yield

    def encode(self, prompt: str, max_new_tokens: int) -> list[int]:
        """Prompt token ids; UserError for an empty prompt or one that does not fit the context."""
        if not prompt.strip():
            raise UserError("The prompt is empty", "Type a prompt, or pick one from a prompt set.")
        bos = getattr(self.tokenizer, "bos_token", None)
        # A chat-formatted prompt already starts with the special tokens it needs.
        specials = not (bos and prompt.startswith(bos))
        ids = list(self.tokenizer(prompt, add_special_tokens=specials)["input_ids"])
        context = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None)
        if context and len(ids) + max_new_tokens > context:
            raise UserError(
                f"The prompt ({len(ids)} tokens) and {max_new_tokens} new tokens do not fit the model's "
                f"context of {context} tokens",
                "Shorten the prompt or lower max tokens.",
            )
        return ids

    def stream(self, side_key: str, prompt: str, decoding: Decoding = Decoding()) -> Iterator[str]:
        """The side's continuation of ``prompt``, piece by piece (stops at EOS or max tokens)."""
        decoding.check()
        side = self.side(side_key)
        tokens = self._tokens(self.encode(prompt, decoding.max_new_tokens), decoding)
        detokenizer = _Detokenizer(self.tokenizer)
        while True:
            # The side is set for each token: a caller may interleave several streams.
            with self._as_side(side):
                token = next(tokens, None)
            if token is None:
                return
            piece = detokenizer.add(token)
            if piece:
                yield piece

    def run_pair(self, prompt: str, decoding: Decoding, report: Callable[[tuple[int, str]], None],
                 *, sides: tuple[str, str] | None = None,
                 should_stop: Callable[[], bool] = lambda: False) -> PairResult:
        """Generate two sides in turns of a few tokens, calling ``report((side_index, piece))`` as
        text arrives; ``should_stop`` is checked before every token."""
        decoding.check()
        chosen = [self.side(key) for key in (sides or self.default_pair)]
        ids = self.encode(prompt, decoding.max_new_tokens)
        started = time.perf_counter()
        with self._lock:
            streams = [self._tokens(ids, decoding) for _ in chosen]
            detokenizers = [_Detokenizer(self.tokenizer) for _ in chosen]
            live = [True] * len(chosen)
            stopped = False
            while any(live) and not stopped:
                for index, side in enumerate(chosen):
                    if not live[index] or stopped:
                        continue
                    # Switching the adapter walks every LoRA layer, so each side takes a turn of a few tokens.
                    with self._as_side(side):
                        for _ in range(TURN_TOKENS):
                            if should_stop():
                                stopped = True
                                break
                            token = next(streams[index], None)
                            if token is None:
                                live[index] = False
                                break
                            piece = detokenizers[index].add(token)
                            if piece:
                                report((index, piece))
            for stream in streams:
                stream.close()
        return PairResult([d.text for d in detokenizers], [d.count for d in detokenizers],
                          time.perf_counter() - started, stopped)

    def _tokens(self, prompt_ids: list[int], decoding: Decoding) -> Iterator[int]:
        """New token ids with a KV cache, one forward pass per token; stops at EOS. The caller
        sets the side around each ``next``.

        Sampling draws from a generator seeded with ``decoding.seed`` for this stream alone, so two
        sides with the same seed draw the same random numbers, however their steps interleave."""
        device = model_device(self.model)
        generator = torch.Generator(device=device).manual_seed(decoding.seed) if decoding.sample else None
        eos = self.tokenizer.eos_token_id
        inputs = torch.tensor([prompt_ids], dtype=torch.long, device=device)
        past = None
        for _ in range(decoding.max_new_tokens):
            with torch.no_grad():
                out = self.model(input_ids=inputs, **with_cache(past))
            past = cache_of(out)
            token = _next_token(out.logits[0, -1].float(), decoding, generator)
            if token == eos:
                return
            yield token
            inputs = torch.tensor([[token]], dtype=torch.long, device=device)


def _base_key(config: RunConfig) -> tuple:
    """What makes two loaded bases the same: folder, dtype, device and remote-code setting."""
    m = config.model
    return config.resolve_model_path(), m.dtype, m.device, m.trust_remote_code


def _next_token(logits: torch.Tensor, decoding: Decoding, generator: torch.Generator | None) -> int:
    if not decoding.sample:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / decoding.temperature, dim=-1)
    if decoding.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest top set whose mass reaches top_p (always at least the first token).
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= decoding.top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


class _Detokenizer:
    """Token ids in, new text out. Decodes the whole generation each time, so pieces join up to
    exactly the decoded text; a trailing broken UTF-8 sequence waits for its next token."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""

    @property
    def count(self) -> int:
        return len(self.ids)

    def add(self, token: int) -> str:
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""
        if not text.startswith(self.text):
            # Decoding changed earlier text (rare); keep the truth, the caller shows the final text.
            self.text = text
            return ""
        piece, self.text = text[len(self.text):], text
        return piece
