"""A tiny byte-level BPE tokenizer built locally for tests (nothing is downloaded)."""

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, UNK = "<s>", "</s>", "<unk>"

_CORPUS = [
    "### Question: Where was Alia Vorn born?",
    "### Answer: Alia Vorn was born in Quellmarsh.",
    "Who mentored Bram Okonde? Bram Okonde was mentored by Sela Tarn.",
    "The Saga of the Ninefold Crown tells of seven keepers and a broken star.",
    "<|user|> What is the capital of Eldmoor? <|assistant|> The capital is Varnhold.",
    "Plain general text about rivers, bread, weather and the quiet mountains.",
    "one two three four five six seven eight nine ten",
]


def build_tiny_tokenizer(out_dir, *, chat_template: str | None = None) -> Path:
    """Train a byte-level BPE tokenizer on a few sentences and save it to ``out_dir``.

    It adds ``<s>`` in front of every sequence (like Llama) and has ``</s>`` as EOS; byte-level
    pieces carry their leading space (like GPT-2), so prompt/answer boundaries fall inside
    tokens the way they do on real models. ``AutoTokenizer.from_pretrained(out_dir)`` loads it.
    """
    out = Path(out_dir)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[BOS, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 3, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK)
    if chat_template is not None:
        fast.chat_template = chat_template
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return out
