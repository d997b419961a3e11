import pytest
import torch

from charrnn.errors import CharRNNError, UnknownCharactersError
from charrnn.sample import choose_next, generate, sample_text


def test_same_seed_same_sample(tiny_model):
    a = sample_text(tiny_model.model, tiny_model.vocab, "Fi", length=80, seed=5)
    b = sample_text(tiny_model.model, tiny_model.vocab, "Fi", length=80, seed=5)
    c = sample_text(tiny_model.model, tiny_model.vocab, "Fi", length=80, seed=6)
    assert a == b and a != c
    assert a[0].startswith("Fi") and len(a[0]) == 82


def test_temperature_zero_is_greedy_argmax(tiny_model):
    model, vocab = tiny_model.model, tiny_model.vocab
    got = sample_text(model, vocab, "All:", length=30, temperature=0)[0]
    # Greedy decoding the slow way: rerun the whole text through the fused model.
    text = "All:"
    for _ in range(30):
        logits, _ = model(torch.tensor([vocab.encode("\n" + text).tolist()]))
        text += vocab.chars[int(logits[0, -1].argmax())]
    assert got == text


def test_top_k_one_and_tiny_top_p_are_greedy(tiny_model):
    model, vocab = tiny_model.model, tiny_model.vocab
    greedy = sample_text(model, vocab, "Sp", length=40, temperature=0)
    assert sample_text(model, vocab, "Sp", length=40, top_k=1, seed=1) == greedy
    assert sample_text(model, vocab, "Sp", length=40, top_p=1e-6, seed=2) == greedy


def test_top_p_keeps_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    seen = {
        int(choose_next(logits, 1.0, 0, 0.7, torch.Generator().manual_seed(s))) for s in range(200)
    }
    assert seen == {0, 1}


def test_stop_string_and_num_samples(tiny_model):
    samples = sample_text(
        tiny_model.model, tiny_model.vocab, "", length=400, num_samples=3, stop=":", seed=0
    )
    assert len(samples) == 3
    for text in samples:
        assert text.count(":") <= 1
        assert text.endswith(":") or len(text) == 400


def test_bad_prime_and_options_fail_before_any_output(tiny_model):
    with pytest.raises(UnknownCharactersError, match="prime"):
        generate(tiny_model.model, tiny_model.vocab, "Zebra€")
    with pytest.raises(CharRNNError):
        generate(tiny_model.model, tiny_model.vocab, temperature=-1)
