"""fm.compile(..., compile=True): torch.compile of the objective, the same values as eager, one graph for all
batches of a shape (the memo of conditionals keys on trace versions, not on tensor identity)."""

import torch

import formula as fm
from models import binary, vae

VAE = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"


def test_compiled_objective_matches_eager_and_does_not_recompile_per_batch():
    q, p, prior = vae()
    eager = fm.compile(VAE, [q, p, prior])
    compiled = fm.compile(VAE, [q, p, prior], compile={"backend": "aot_eager", "fullgraph": True})
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        for seed in range(3):
            x = binary(8, seed=seed)  # a new tensor each time, as from a DataLoader
            torch.manual_seed(seed)
            want = eager(x=x)
            torch.manual_seed(seed)
            got = compiled(x=x)
            torch.testing.assert_close(got, want)
            got.sum().backward()
