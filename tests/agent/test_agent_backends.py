"""Generation backends: the factory, and the transformers backend's per-row sampling, stops and counts
checked against plain `model.generate` on the tiny model."""

from __future__ import annotations

import pytest
import torch

from curate.agent.backends import GenRequest, make_backend, truncate_at_stop

CHAT = ({"role": "system", "content": "You are an agent."}, {"role": "user", "content": "New task:\nWhat is 2+2?"})
OTHER = ({"role": "user", "content": "Which magazine was started first, Arthur's Magazine or First for Women?"},)


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return make_backend("transformers", str(tiny_model_dir))


def _reference_greedy(backend, request: GenRequest, n: int) -> list[int]:
    """Greedy token ids from plain `generate` on the request alone (no padding, no custom processors)."""
    ids = backend.tokenizer(backend.prompt(request), add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = backend.model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=n,
        min_new_tokens=n,
        pad_token_id=min(backend.eos),
    )
    return out[0, ids.shape[1] :].tolist()


def test_unknown_backend_and_option_are_named() -> None:
    with pytest.raises(ValueError, match="unknown backend 'tgi' \\(known: transformers, vllm, openai\\)"):
        make_backend("tgi", "tiny")
    with pytest.raises(ValueError, match="backend 'transformers' does not take option\\(s\\) endpoint"):
        make_backend("transformers", "tiny", endpoint="http://127.0.0.1:8000/v1", device=None)


def test_truncate_at_stop_takes_the_earliest_stop() -> None:
    assert truncate_at_stop("a Observation: b <end_code>", ("<end_code>", "Observation:")) == ("a Observation:", True)
    assert truncate_at_stop("plain", ("<end_code>",)) == ("plain", False)


def test_greedy_matches_plain_generate_and_counts_tokens(backend) -> None:
    request = GenRequest(CHAT, max_new_tokens=12, temperature=0)
    [done] = backend.generate([request])
    reference = _reference_greedy(backend, request, 12)
    assert done.tokens == 12 and done.finish == "length"
    assert done.text == backend.tokenizer.decode(reference, skip_special_tokens=True)


def test_stop_string_ends_the_row_where_it_completes(backend) -> None:
    def sample(n: int, stop: tuple[str, ...] = ()):
        return backend.generate([GenRequest(CHAT, max_new_tokens=n, seed=5, stop=stop)])[0]

    text = sample(24).text
    stop = next(
        text[i : i + 3] for i in range(8, 20) if text[i : i + 3].strip() and text[i : i + 3] not in text[: i + 2]
    )
    # The reference count: the fewest tokens (same seed, same draws) whose text holds the stop string.
    count = next(n for n in range(1, 25) if stop in sample(n).text)
    done = sample(24, (stop,))
    assert (done.tokens, done.finish) == (count, "stop")
    assert done.text == text[: text.find(stop) + len(stop)]


def test_prefix_is_continued_and_not_returned(backend) -> None:
    request = GenRequest(CHAT, max_new_tokens=10, temperature=0, prefix="Thought: I will")
    [done] = backend.generate([request])
    assert backend.prompt(request).endswith("<|im_start|>assistant\nThought: I will")
    assert done.text == backend.tokenizer.decode(_reference_greedy(backend, request, 10), skip_special_tokens=True)


def test_shared_prefix_attention_equals_sdpa() -> None:
    from types import SimpleNamespace

    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from curate.engine.cpu.attention import _shared_prefix as _shared_prefix_attention

    torch.manual_seed(0)
    rows, groups, per_group, dim, length, shared = 3, 2, 3, 8, 11, 5
    module = SimpleNamespace(num_key_value_groups=per_group, is_causal=True)
    query = torch.randn(rows, groups * per_group, 1, dim)
    key, value = torch.randn(rows, groups, length, dim), torch.randn(rows, groups, length, dim)
    key[1:, :, :shared], value[1:, :, :shared] = key[0, :, :shared], value[0, :, :shared]  # the same prefix tokens
    mask = torch.ones(rows, 1, 1, length, dtype=torch.bool)
    mask[1, ..., shared : shared + 3] = mask[2, ..., shared : shared + 1] = False  # padding before a row's own tokens
    expected, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=dim**-0.5)
    got, _ = _shared_prefix_attention(module, query, key, value, mask, shared=shared, scaling=dim**-0.5)
    assert got.shape == (rows, 1, groups * per_group, dim)
    torch.testing.assert_close(got, expected)
    # A prefill: 4 new tokens per row after the cache (its padding masked), causal among themselves.
    queries = torch.randn(rows, groups * per_group, 4, dim)
    keys, values = torch.randn(rows, groups, length + 4, dim), torch.randn(rows, groups, length + 4, dim)
    mask = torch.ones(rows, length + 4, dtype=torch.bool)
    mask[1, shared : shared + 3] = False
    full = mask[:, None, None, :] & torch.ones(4, length + 4, dtype=torch.bool).tril(length)[None, None]
    expected, _ = sdpa_attention_forward(module, queries, keys, values, full, scaling=dim**-0.5)
    got, _ = _shared_prefix_attention(module, queries, keys, values, full, scaling=dim**-0.5)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(("top_p", "expected"), [(1.0, [0.5, 0.3, 0.2, 0.0]), (0.75, [0.625, 0.375, 0.0, 0.0])])
def test_a_draw_follows_the_distribution_and_its_seed(top_p: float, expected: list[float]) -> None:
    from curate.agent.backends.transformers import _draws

    request = GenRequest(CHAT, temperature=1.0, top_p=top_p, seed=7)
    scores = torch.tensor([[0.5, 0.3, 0.2, 0.0]]).log()  # the last token has probability 0
    draws = 20_000

    def sample(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return [_draws([request], [generator], scores)[0] for _ in range(draws)]

    got = sample(7)
    counts = torch.bincount(torch.tensor(got), minlength=4) / draws
    # within 3 standard deviations of each expected share (0.011 for 0.5 at 20k draws); cut tokens never
    assert torch.allclose(counts, torch.tensor(expected), atol=0.011), counts
    assert all(counts[i] == 0 for i, p in enumerate(expected) if p == 0)
    assert sample(7)[:100] == got[:100] and sample(8)[:100] != got[:100]


def test_a_row_draws_in_a_batch_what_it_draws_alone() -> None:
    from curate.agent.backends.transformers import _draws

    requests = [
        GenRequest(CHAT, temperature=t, top_p=p, seed=s)
        for t, p, s in [(1.0, 1.0, 1), (0.0, 1.0, 2), (0.7, 0.9, 3), (1.3, 1.0, 4), (1.0, 1.0, 1)]
    ]
    logits = torch.randn(len(requests), 49_152, generator=torch.Generator().manual_seed(0)) * 3

    def draws(rows: list[int], steps: int = 50) -> list[list[int]]:
        generators = [torch.Generator().manual_seed(requests[b].seed) for b in rows]
        return [_draws([requests[b] for b in rows], generators, logits[rows]) for _ in range(steps)]

    together = draws(list(range(len(requests))))
    alone = [draws([b]) for b in range(len(requests))]
    assert [[step[b] for step in together] for b in range(len(requests))] == [[s[0] for s in a] for a in alone]
    assert len({step[0] for step in together}) > 1 and {step[1] for step in together} == {int(logits[1].argmax())}


def test_each_row_keeps_its_own_seed_and_budget_whatever_the_batch(backend) -> None:
    a = GenRequest(CHAT, max_new_tokens=16, temperature=1.0, seed=11)
    b = GenRequest(CHAT, max_new_tokens=16, temperature=1.0, seed=12)
    short = GenRequest(OTHER, max_new_tokens=5, temperature=0.7, top_p=0.9, seed=3)
    alone_a, alone_b = backend.generate([a])[0], backend.generate([b])[0]
    batch = backend.generate([short, b, a, a])
    assert batch[2] == alone_a and batch[3] == alone_a and batch[1] == alone_b
    assert alone_a.text != alone_b.text
    assert (batch[0].tokens, batch[0].finish) == (5, "length") and alone_a.tokens == 16
    # Chunked into batches of one: same texts again.
    chunked = make_backend("transformers", str(backend.model.name_or_path), batch_size=1)
    assert chunked.generate([short, b, a]) == [batch[0], batch[1], batch[2]]


def test_a_model_that_is_not_plain_prefills_its_rows_apart_to_the_same_texts(backend) -> None:
    # What a model with soft-capped logits or sliding windows gets: its own forward, each row prefilled alone.
    apart = make_backend("transformers", str(backend.model.name_or_path))
    apart.model.set_attn_implementation("sdpa")
    apart.plain = False
    requests = [
        GenRequest(CHAT, max_new_tokens=9, seed=4),
        GenRequest(OTHER, max_new_tokens=6, seed=5),
        GenRequest(CHAT, max_new_tokens=12, temperature=0),
    ]
    for batch in (requests, [GenRequest((*CHAT, {"role": "assistant", "content": "4"}, *OTHER), 7, seed=6), *requests]):
        assert apart.generate(batch) == backend.generate(batch)


def test_kept_caches_change_nothing_but_the_work(tiny_model_dir) -> None:
    from os.path import commonprefix

    from curate.agent.prompts import load_prompts

    def tokens(b, request: GenRequest) -> list[int]:
        return b.tokenizer(b.prompt(request), add_special_tokens=False)["input_ids"]

    backend = make_backend("transformers", str(tiny_model_dir))
    plain = make_backend("transformers", str(tiny_model_dir), prefix_cache=False)
    system = {"role": "system", "content": load_prompts(["web_search"], ["math"]).system}
    tasks = [({"role": "user", "content": q},) for q in ("What is 2+2?", "Name the capital of France, please.")]
    first = [GenRequest((system, *t), max_new_tokens=8, temperature=0) for t in tasks]
    done = backend.generate(first)
    assert done == plain.generate(first) and [d.tokens for d in done] == [8, 8]
    ids = [tokens(backend, r) for r in first]
    shared = len(commonprefix(ids))
    assert shared > 500 and plain.prefilled == sum(map(len, ids))
    assert backend.prefilled == sum(map(len, ids)) - shared  # the shared system prompt once, then each task
    # Each run's next step extends its last prompt and completion: only what it adds is computed.
    steps = [
        GenRequest(
            (
                system,
                *t,
                {"role": "assistant", "content": d.text},
                {"role": "user", "content": "Observation: " + "4" * (1 + 9 * i)},
            ),
            max_new_tokens=8,
            seed=i,
        )
        for i, (t, d) in enumerate(zip(tasks, done))
    ]
    generated = [_reference_greedy(backend, r, 8) for r in first]
    new = [tokens(backend, r) for r in steps]
    reuse = [min(len(commonprefix([n, x + g[:-1]])), len(n) - 1) for n, x, g in zip(new, ids, generated)]
    assert all(r >= len(x) for r, x in zip(reuse, ids))
    before = backend.prefilled
    assert backend.generate(steps) == plain.generate(steps)
    assert backend.prefilled - before == sum(len(n) - r for n, r in zip(new, reuse))
    # The last call's rows stay kept, and as many older caches: one run alone keeps the other run's too.
    backend.generate(steps[:1])
    assert len(backend.caches.kept) == 2
    # After a call under another system prompt (a run's answer), the next task still finds the system prompt.
    backend.generate([GenRequest(({"role": "system", "content": "Answer."}, *tasks[0]), max_new_tokens=2, seed=1)])
    third = GenRequest((system, {"role": "user", "content": "What is 3+3?"}), max_new_tokens=2, seed=1)
    before, third_ids = backend.prefilled, tokens(backend, third)
    assert backend.generate([third]) == plain.generate([third])
    assert backend.prefilled - before == len(third_ids) - len(commonprefix([third_ids, ids[0]])) < 20


def test_packed_weights_give_each_row_what_the_plain_product_gives() -> None:
    from torch import nn

    from curate.engine.cpu.linears import FEWEST, PackedLinear, Packs

    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(96, 160), nn.Linear(160, 96, bias=False))
    head = nn.Linear(96, 300, bias=False)
    plain = [body[0], body[1]]
    packs = Packs(body, head)
    packs.fit(FEWEST - 1)  # too few rows to pay: the model stays as it was
    assert packs.rows == 0 and [type(m) for m in body] == [nn.Linear, nn.Linear]
    packs.fit(5)
    assert packs.rows == 8 and all(type(m) is PackedLinear and m.rows == 8 for m in body)
    x = torch.randn(8, 96)
    for n in (FEWEST, 5, 8):  # padded to the pack's 8 rows: each row as the plain product, whatever the others
        got = body(x[:n])
        assert got.shape == (n, 96) and torch.allclose(got, plain[1](plain[0](x[:n])), atol=1e-5)
        assert torch.equal(got[:FEWEST], body(torch.cat([x[:FEWEST], torch.randn(n - FEWEST, 96)]))[:FEWEST])
        assert torch.allclose(packs.head(x[:n]), head(x[:n]), atol=1e-5)
    assert torch.equal(body(x[:2]), plain[1](plain[0](x[:2])))  # fewer than FEWEST: the plain product itself
    assert torch.equal(body(torch.cat([x, x])), plain[1](plain[0](torch.cat([x, x]))))  # more rows than packed
    packs.fit(3)  # a smaller batch keeps the larger pack; a larger one packs again
    assert packs.rows == 8
    packs.fit(9)
    assert packs.rows == 16 and body[0].rows == 16
