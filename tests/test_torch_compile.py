"""`Trainer(compile=True)` runs the objective through torch.compile and trains to the same values as eager."""

from __future__ import annotations


import pytest
import torch

from toy_objectives import Autoencoder, GaussianVAE, binary_data, parameters_vector

from formula.train.trainer import Trainer


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test compiles from scratch (conftest.py already fixes one torch thread)."""
    yield
    torch._dynamo.reset()


def _train(model_fn, compile, epochs=2):
    torch.manual_seed(0)
    model = model_fn()
    trainer = Trainer(model, compile=compile, batch_size=16, lr=1e-2, progress=False)
    history = trainer.fit({"x": binary_data(64)}, epochs=epochs)
    return model, trainer, history


def test_compile_true_uses_inductor_and_matches_eager():
    """The default backend (inductor, one compile of forward and backward: the slow test of this file)."""
    eager, _, eager_history = _train(Autoencoder, False)
    compiled, trainer, history = _train(Autoencoder, {"fullgraph": True})  # and no graph breaks in the wrapper
    assert hasattr(trainer._model, "_orig_mod")  # really an OptimizedModule
    torch.testing.assert_close(parameters_vector(compiled), parameters_vector(eager), rtol=1e-5, atol=1e-6)
    for name in eager_history:
        assert history[name] == pytest.approx(eager_history[name], rel=1e-5, abs=1e-6)


def test_compiled_sampling_objective_draws_like_eager():
    """With a sampling objective, a backend that keeps eager's random kernels gives the same bits."""
    eager, _, eager_history = _train(GaussianVAE, False)
    compiled, _, history = _train(GaussianVAE, {"backend": "aot_eager"})
    torch.testing.assert_close(parameters_vector(compiled), parameters_vector(eager), rtol=1e-5, atol=1e-6)
    assert history["loss"] == pytest.approx(eager_history["loss"], rel=1e-5)


def test_compiled_formula_has_no_graph_breaks_and_matches_eager():
    """`formula.compile`'s objective under torch.compile(fullgraph=True), eager kernels: identical training."""
    from toy_objectives import compiled_vae

    eager, _, eager_history = _train(compiled_vae, False, epochs=1)
    compiled, _, history = _train(compiled_vae, {"backend": "aot_eager", "fullgraph": True}, epochs=1)
    torch.testing.assert_close(parameters_vector(compiled), parameters_vector(eager), rtol=1e-5, atol=1e-6)
    assert history.keys() == eager_history.keys()
    for name, values in history.items():
        assert values == pytest.approx(eager_history[name], rel=1e-5)
