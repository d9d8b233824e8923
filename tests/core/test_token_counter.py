"""The trained-token counter counts forward passes that record a graph, and nothing else."""

from __future__ import annotations

import torch

from unlearn_studio.core.run.token_counter import TrainedTokenCounter


class Echo(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))

    def forward(self, input_ids=None, attention_mask=None):
        return input_ids.float() * self.weight


def test_counts_attended_tokens_of_passes_with_gradients_only():
    model = Echo()
    counter = TrainedTokenCounter(model)
    ids = torch.ones((2, 5), dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    counter.start()
    model(input_ids=ids, attention_mask=mask)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)  # a frozen pass: work, not training
    model(input_ids=ids)  # no mask: every position counts
    assert counter.total() == 8 + 10
    counter.start()
    assert counter.total() == 0
    counter.remove()
    model(input_ids=ids, attention_mask=mask)
    assert counter.total() == 0
