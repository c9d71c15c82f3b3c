"""The contestants of each row: the same networks wrapped by `formula`, by hand, by Pixyz and by Pyro.

A builder takes the row's (already copied) networks and size and returns a `Contestant`: a loss closure over a
data batch and the parameters the optimizer steps. Builders import their framework lazily, so that a missing or
broken framework becomes that row's "not available: <reason>" rather than a crash of the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import torch

import handwritten
from nets import DMMNets, FlowNets, GANNets, Size, VAENets

VAE_TEXT = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"
IWAE_TEXT = (r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} "
             r"\frac{p(x,z_k)}{q(z_k|x)}\right]")
# The posterior conditions on x_t, not on the whole sequence x: the hand-written step's combiner sees
# [z_{t-1}, x_t], and a net handed all of x could not tell which step it is at.
DMM_TEXT = (r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x_t)}[\log p(x_t|z_t)] "
            r"- D_{KL}(q(z_t|z_{t-1},x_t) \| p(z_t|z_{t-1}))")
GAN_TEXT = r"\min_G \max_D E_{x \sim p_data(x)}[\log D(x)] + E_{z \sim p(z)}[\log(1 - D(G(z)))]"
FLOW_TEXT = "E_{p_data(x)}[log p(x)]"
IWAE_K = 50  # the `iwae-k50` row; `iwae-k5` uses 5
DMM_T = 50


@dataclass(frozen=True)
class Contestant:
    """What the timing loop needs: `loss(x)` -> scalar to minimise, and the parameters Adam steps."""

    loss: Callable[[torch.Tensor], torch.Tensor]
    parameters: Tuple[torch.nn.Parameter, ...]
    note: str = ""  # shown in the table: how this contestant departs from the plan, if it does
    ascend: Tuple[torch.nn.Parameter, ...] = ()  # a maximising player's parameters (the GAN's D): gradients negated


def _params(nets) -> Tuple[torch.nn.Parameter, ...]:
    """Every network parameter of a `VAENets`/`DMMNets`, in a fixed order (the same for every contestant)."""
    return tuple(p for module in vars(nets).values() for p in module.parameters())


# --- formula ---------------------------------------------------------------------------------------------

def _fm():
    """The `formula` package, or an ImportError saying what is missing (the row then reports it)."""
    import formula as fm

    for name in ("compile", "Normal", "Bernoulli"):
        try:
            getattr(fm, name)
        except AttributeError as exc:  # the names are lazy: an import error inside surfaces as itself
            raise ImportError(f"formula has no fm.{name} yet ({exc})") from None
    return fm


def _vae_dists(fm, nets: VAENets, size: Size):
    q = fm.Normal("q(z|x)", net=nets.encoder)
    p = fm.Bernoulli("p(x|z)", net=nets.decoder)
    prior = fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(size.z,))
    return [q, p, prior]


def formula_vae(nets: VAENets, size: Size, compiled: bool = False, validate: bool = True) -> Contestant:
    """The VAE ELBO compiled from its formula; `compiled=True` asks `fm.compile(..., compile=True)` for
    torch.compile (inductor); `validate=False` measures what the default validation (first calls, then one in
    100) costs. Fresh input tensors every step: formula's memo keys on trace versions, not on tensor identity,
    so new batches do not recompile."""
    fm = _fm()
    dists = _vae_dists(fm, nets, size)
    elbo = fm.compile(VAE_TEXT, dists, compile=compiled, validate=validate)
    return Contestant(lambda x: -elbo(x=x).mean(), _params(nets))


def formula_iwae(nets: VAENets, size: Size, k: int = IWAE_K) -> Contestant:
    """The IWAE bound compiled from the paper's LaTeX, K given at call time."""
    fm = _fm()
    bound = fm.compile(IWAE_TEXT, _vae_dists(fm, nets, size))
    return Contestant(lambda x: -bound(x=x, K=k).mean(), _params(nets))


def formula_dmm(nets: DMMNets, size: Size) -> Contestant:
    """The DMM ELBO compiled from its formula; z_0 is an input (zeros), x a `[B, T, D]` sequence."""
    fm = _fm()
    q = fm.Normal("q(z_t|z_{t-1},x_t)", net=nets.combiner)
    trans = fm.Normal("p(z_t|z_{t-1})", net=nets.transition)
    emit = fm.Bernoulli("p(x_t|z_t)", net=nets.emitter)
    objective = fm.compile(DMM_TEXT, [q, trans, emit])

    def loss(x):
        return -objective(x=x, z_0=x.new_zeros(x.shape[0], size.z)).mean()

    return Contestant(loss, _params(nets))


def formula_gan(nets: GANNets, size: Size) -> Contestant:
    """One simultaneous GAN step from the minimax formula: D ascends the value, G descends it (one forward)."""
    fm = _fm()
    dists = [fm.Function("D(x)", net=nets.discriminator), fm.Function("G(z)", net=nets.generator),
             fm.Data("p_data(x)"), fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(size.z,))]
    value = fm.compile(GAN_TEXT, dists)
    return Contestant(lambda x: value(x=x).mean(), _params(nets), ascend=tuple(nets.discriminator.parameters()))


def formula_flow(nets: FlowNets, size: Size) -> Contestant:
    """Maximum likelihood of a zuko flow declared with `fm.Flow`."""
    fm = _fm()
    objective = fm.compile(FLOW_TEXT, [fm.Flow("p(x)", nets.flow), fm.Data("p_data(x)")])
    return Contestant(lambda x: -objective(x=x).mean(), _params(nets))


# --- hand-written PyTorch ------------------------------------------------------------------------------

def torch_vae(nets: VAENets, size: Size) -> Contestant:
    """The hand-written VAE step (bench/handwritten.py)."""
    return Contestant(lambda x: handwritten.vae_loss(nets, x), _params(nets))


def torch_iwae(nets: VAENets, size: Size, k: int = IWAE_K) -> Contestant:
    """The hand-written IWAE step."""
    return Contestant(lambda x: handwritten.iwae_loss(nets, x, k), _params(nets))


def torch_gan(nets: GANNets, size: Size) -> Contestant:
    """The hand-written simultaneous GAN step (D's gradients negated, as for formula's)."""
    return Contestant(lambda x: handwritten.gan_value(nets, x, size.z), _params(nets),
                      ascend=tuple(nets.discriminator.parameters()))


def torch_flow(nets: FlowNets, size: Size) -> Contestant:
    """The zuko flow's negative log-likelihood, written directly."""
    return Contestant(lambda x: handwritten.flow_loss(nets, x), _params(nets))


def torch_dmm(nets: DMMNets, size: Size) -> Contestant:
    """The hand-written DMM step, a Python loop over T."""
    return Contestant(lambda x: handwritten.dmm_loss(nets, x, x.new_zeros(x.shape[0], size.z)), _params(nets))


# --- Pixyz 0.3.3 ---------------------------------------------------------------------------------------

def pixyz_vae(nets: VAENets, size: Size) -> Contestant:
    """The VAE as Pixyz's documentation writes it: distribution classes, `KullbackLeibler - E[LogProb]`.

    Pixyz's Bernoulli takes `probs` only, so the decoder's logits pass through a sigmoid (Pixyz turns them back
    into clamped logits for the log-density). The loss is evaluated with `loss.eval`; the optimizer is ours, the
    same Adam as every other contestant, rather than `pixyz.models.Model`, which would add only a thin loop.
    """
    from pixyz.distributions import Bernoulli, Normal
    from pixyz.losses import Expectation, KullbackLeibler, LogProb

    class Inference(Normal):
        def __init__(self, encoder):
            super().__init__(var=["z"], cond_var=["x"], name="q")
            self.encoder = encoder

        def forward(self, x):
            return self.encoder(x)

    class Generator(Bernoulli):
        def __init__(self, decoder):
            super().__init__(var=["x"], cond_var=["z"], name="p")
            self.decoder = decoder

        def forward(self, z):
            return {"probs": torch.sigmoid(self.decoder(z)["logits"])}

    q, p = Inference(nets.encoder), Generator(nets.decoder)
    zero = torch.zeros((), dtype=torch.float32)
    prior = Normal(loc=zero, scale=zero + 1.0, var=["z"], features_shape=[size.z], name="p_{prior}")
    objective = (KullbackLeibler(q, prior) - Expectation(q, LogProb(p))).mean()
    return Contestant(lambda x: objective.eval({"x": x}), _params(nets))


# --- Pyro 1.9.2 ----------------------------------------------------------------------------------------

def pyro_vae(nets: VAENets, size: Size) -> Contestant:
    """The VAE as Pyro's tutorial writes it (model, guide, plate), with `TraceMeanField_ELBO` for the closed-form
    KL that the other contestants use; its differentiable loss (divided by the batch) is stepped by our Adam."""
    import pyro
    import pyro.distributions as dist
    from pyro.infer import TraceMeanField_ELBO

    encoder, decoder = nets.encoder, nets.decoder

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            zeros = x.new_zeros(x.shape[0], size.z)
            z = pyro.sample("z", dist.Normal(zeros, zeros + 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z)["logits"]).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]):
            q = encoder(x)
            pyro.sample("z", dist.Normal(q["loc"], q["scale"]).to_event(1))

    pyro.clear_param_store()
    elbo = TraceMeanField_ELBO()
    return Contestant(lambda x: elbo.differentiable_loss(model, guide, x) / x.shape[0], _params(nets))


# --- the registry ---------------------------------------------------------------------------------------

Builder = Callable[..., Contestant]

# task -> ordered {contestant name: builder}; "torch" is the reference every ratio divides by.
CONTESTANTS: Dict[str, Dict[str, Builder]] = {
    "vae": {
        "torch": torch_vae,
        "formula": formula_vae,
        "formula+compile": lambda nets, size: formula_vae(nets, size, compiled=True),
        "formula-novalidate": lambda nets, size: formula_vae(nets, size, validate=False),
        "pixyz": pixyz_vae,
        "pyro": pyro_vae,
    },
    "iwae-k5": {"torch": lambda nets, size: torch_iwae(nets, size, 5),
                "formula": lambda nets, size: formula_iwae(nets, size, 5)},
    "iwae-k50": {"torch": torch_iwae, "formula": formula_iwae},
    "dmm": {"torch": torch_dmm, "formula": formula_dmm},
    "gan": {"torch": torch_gan, "formula": formula_gan},
    "flow": {"torch": torch_flow, "formula": formula_flow},
}
REFERENCE = "torch"


def names(task: str) -> List[str]:
    """The contestants of a task, reference first."""
    return list(CONTESTANTS[task])


__all__ = ["Contestant", "CONTESTANTS", "REFERENCE", "VAE_TEXT", "IWAE_TEXT", "DMM_TEXT", "IWAE_K", "DMM_T",
           "GAN_TEXT", "FLOW_TEXT",
           "names", "formula_vae", "formula_iwae", "formula_dmm", "formula_gan", "formula_flow", "torch_vae",
           "torch_iwae", "torch_dmm", "torch_gan", "torch_flow",
           "pixyz_vae", "pyro_vae"]
