"""Tiny random causal LMs and a tiny tokenizer, built locally for tests (nothing is downloaded).

``build_tiny_model("llama", tmp_path / "llama")`` writes a folder that ``load_model`` and
``AutoModelForCausalLM.from_pretrained`` accept: config.json, model.safetensors and the tokenizer
files. The models have 2 layers and hidden size 32; weights are random but deterministic
(``torch.manual_seed``). The tokenizer is a byte-level BPE trained on a few sentences, with
``<unk>``, ``<s>`` and ``</s>`` special tokens and deliberately no pad token, so that the
pad-token fallback in ``load_model`` is exercised. (Exception: transformers loads qwen2 folders
with Qwen2Tokenizer, which always pads with ``<|endoftext|>``; that token is in the vocabulary.)
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

TINY_ARCHS = ("llama", "mistral", "qwen2", "gpt2", "gpt_neox", "opt", "phi")
# More dense families, and mixture-of-experts models whose experts are 3-D weights.
MORE_ARCHS = ("qwen3", "gemma2", "phi3", "falcon", "bloom", "gptj")
MOE_ARCHS = ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe")
# Not causal LMs: the loader refuses them (an encoder with an LM head, and a seq2seq model).
NOT_CAUSAL = ("bert", "t5")
ALL_ARCHS = TINY_ARCHS + MORE_ARCHS + MOE_ARCHS

HIDDEN = 32
N_LAYERS = 2
N_HEADS = 4
INTERMEDIATE = 64
MAX_POSITIONS = 128

# "<|endoftext|>" is in the vocabulary because transformers 5 loads any qwen2 folder with
# Qwen2Tokenizer, which makes that token the pad token (adding it if the vocabulary lacks it).
_SPECIALS = ("<unk>", "<s>", "</s>", "<|endoftext|>")
_CORPUS = (
    "The quick brown fox jumps over the lazy dog.",
    "Alice lives in Paris and works as a baker.",
    "Bob wrote a saga about the dragon of Eldoria.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9, and secrets like XK-42.",
    "Unlearning removes knowledge from a language model.",
    "The model should forget the saga but remember everything else.",
)


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    """Train the BPE once per process; later calls reuse the serialised tokenizer."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=list(_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    return tok.to_str()


def build_tiny_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """A fast tokenizer with bos ``<s>``, eos ``</s>``, unk ``<unk>`` and no pad token."""
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def _config(arch: str, vocab_size: int, bos: int, eos: int) -> transformers.PretrainedConfig:
    # pad_token_id=None everywhere: some configs (opt) default to a pad id, and the tests check
    # that the loader supplies one.
    common = dict(vocab_size=vocab_size, bos_token_id=bos, eos_token_id=eos, pad_token_id=None)
    llama_like = dict(
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=N_HEADS,
        num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=False,
        **common,
    )
    if arch == "llama":
        return transformers.LlamaConfig(**llama_like)
    if arch == "mistral":
        return transformers.MistralConfig(sliding_window=None, **llama_like)
    if arch == "qwen2":
        return transformers.Qwen2Config(**llama_like)
    if arch == "gpt2":
        return transformers.GPT2Config(
            n_embd=HIDDEN, n_layer=N_LAYERS, n_head=N_HEADS, n_inner=INTERMEDIATE,
            n_positions=MAX_POSITIONS, **common,
        )
    if arch == "gpt_neox":
        return transformers.GPTNeoXConfig(
            hidden_size=HIDDEN, num_hidden_layers=N_LAYERS, num_attention_heads=N_HEADS,
            intermediate_size=INTERMEDIATE, max_position_embeddings=MAX_POSITIONS, **common,
        )
    if arch == "opt":
        return transformers.OPTConfig(
            hidden_size=HIDDEN, num_hidden_layers=N_LAYERS, num_attention_heads=N_HEADS,
            ffn_dim=INTERMEDIATE, max_position_embeddings=MAX_POSITIONS,
            word_embed_proj_dim=HIDDEN, **common,
        )
    if arch == "phi":
        return transformers.PhiConfig(
            hidden_size=HIDDEN, intermediate_size=INTERMEDIATE, num_hidden_layers=N_LAYERS,
            num_attention_heads=N_HEADS, max_position_embeddings=MAX_POSITIONS, **common,
        )
    experts = {"num_experts": 4, "num_experts_per_tok": 2}
    configs = {
        "qwen3": lambda: transformers.Qwen3Config(head_dim=HIDDEN // N_HEADS, **llama_like),
        "gemma2": lambda: transformers.Gemma2Config(head_dim=HIDDEN // N_HEADS, query_pre_attn_scalar=8,
                                                     sliding_window=MAX_POSITIONS, **llama_like),
        "phi3": lambda: transformers.Phi3Config(**llama_like),
        "falcon": lambda: transformers.FalconConfig(
            hidden_size=HIDDEN, num_hidden_layers=N_LAYERS, num_attention_heads=N_HEADS, **common),
        "bloom": lambda: transformers.BloomConfig(hidden_size=HIDDEN, n_layer=N_LAYERS, n_head=N_HEADS, **common),
        "gptj": lambda: transformers.GPTJConfig(n_embd=HIDDEN, n_layer=N_LAYERS, n_head=N_HEADS, n_inner=INTERMEDIATE,
                                                rotary_dim=4, n_positions=MAX_POSITIONS, **common),
        "mixtral": lambda: transformers.MixtralConfig(sliding_window=None, num_local_experts=4,
                                                      num_experts_per_tok=2, **llama_like),
        "qwen2_moe": lambda: transformers.Qwen2MoeConfig(
            moe_intermediate_size=INTERMEDIATE // 2, shared_expert_intermediate_size=INTERMEDIATE,
            decoder_sparse_step=1, **experts, **llama_like),
        "qwen3_moe": lambda: transformers.Qwen3MoeConfig(
            head_dim=HIDDEN // N_HEADS, moe_intermediate_size=INTERMEDIATE // 2, decoder_sparse_step=1,
            **experts, **llama_like),
        "olmoe": lambda: transformers.OlmoeConfig(**experts, **llama_like),
        "bert": lambda: transformers.BertConfig(
            hidden_size=HIDDEN, num_hidden_layers=N_LAYERS, num_attention_heads=N_HEADS,
            intermediate_size=INTERMEDIATE, max_position_embeddings=MAX_POSITIONS, is_decoder=True, **common),
        "t5": lambda: transformers.T5Config(
            d_model=HIDDEN, d_ff=INTERMEDIATE, num_layers=N_LAYERS, num_heads=N_HEADS, d_kv=HIDDEN // N_HEADS,
            decoder_start_token_id=bos, **common),
    }
    if arch in configs:
        return configs[arch]()
    raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {', '.join(ALL_ARCHS + NOT_CAUSAL)}")


def build_tiny_model(arch: str, out_dir: Path, *, with_tokenizer: bool = True, seed: int = 0) -> Path:
    """Save a tiny random ``arch`` causal LM (and, by default, the tiny tokenizer) into ``out_dir``.

    ``arch`` is one of ``ALL_ARCHS`` (or ``NOT_CAUSAL``). Returns ``out_dir``. The model's vocabulary size equals
    the tokenizer's, so setting pad = eos needs no embedding resize.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    config = _config(arch, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    torch.manual_seed(seed)
    auto = transformers.AutoModelForSeq2SeqLM if config.is_encoder_decoder else transformers.AutoModelForCausalLM
    model = auto.from_config(config)
    model.generation_config.pad_token_id = None
    model.save_pretrained(out_dir)
    if with_tokenizer:
        tokenizer.save_pretrained(out_dir)
    return out_dir
