"""Contract cases for issue 10's later objectives: WGAN-GP's critic loss with its definitions in a where clause,
FactorVAE's model objective (the density-ratio KL of the aggregate posterior against its permuted marginals) and its
discriminator's, a density-ratio KL of a conditional, the Wasserstein critic form, and AVB's model and adversary
objectives with the implicit encoder defined in a where clause -- each against hand-written PyTorch making the same
draws in the same order."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import kl_divergence

from contract.cases import B, Declarations, Inputs, case
from models import X, Z, binary, vae
from test_compile_models import bern, normal, std_normal

import formula as fm

NO_DOUBLE_BACKWARD = "torch.compile (aot_autograd) does not support double backward, which the penalty's gradient needs"
ONE_EXAMPLE = "the permuted sampler permutes a batch: one example is a clear FormulaInputError"
WGAN_GP = (r"\mathbb{E}_{\tilde x \sim P_g}[D(\tilde x)] - \mathbb{E}_{x \sim P_r}[D(x)] + \lambda "
           r"\mathbb{E}_{\hat x}[(\|\nabla_{\hat x} D(\hat x)\|_2 - 1)^2] \quad \text{where} \quad \hat x = \epsilon x "
           r"+ (1 - \epsilon) \tilde x, \; \tilde x = G(z), \; \epsilon \sim \mathcal{U}[0, 1]")
SAMPLE_ONLY = "q(z) = E_{p_data(x)}[q(z|x)]\n" + r"\bar q(z) = \prod_j q(z_j)" + "\n"
FACTOR_VAE = SAMPLE_ONLY + (r"E_{p_data(x)}[E_{q(z|x)}[\log p(x|z)] - KL(q(z|x) \| p(z))]"
                            r" - \gamma \mathrm{KL}_D(q(z) \| \bar q(z))")
DISCRIMINATOR = SAMPLE_ONLY + r"E_{q(z)}[\log D(z)] + E_{z' \sim \bar q(z)}[\log(1 - D(z'))]"
WASSERSTEIN = "\\tilde x = G(z)\n\\tilde x \\sim P_g\n" + r"W_f(P_r \| P_g)"
AVB_WHERE = r" \quad \text{where} \quad z = z_\phi(x, \epsilon)"
AVB_MODEL = r"E_{p_D(x)}[E_{\epsilon \sim p(\epsilon)}[-T(x, z) + \log p(x|z)]]" + AVB_WHERE
AVB_ADVERSARY = (r"E_{p_D(x)}[E_{\epsilon \sim p(\epsilon)}[\log \sigma(T(x, z))]]"
                 r" + E_{p_D(x)}[E_{z \sim p(z)}[\log(1 - \sigma(T(x, z)))]]" + AVB_WHERE)


def _x() -> Inputs:
    return {"x": binary(B)}


def _net(n_in: int, out: nn.Module = None) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, 8), nn.Tanh(), nn.Linear(8, 1), *([out] if out is not None else []))


def _prior(prior, like: torch.Tensor, n: int) -> torch.Tensor:
    loc = prior.loc.to(like.dtype)
    return torch.distributions.Normal(loc, prior.scale.to(like.dtype)).rsample((n,))


def _critic_and_generator(critic: str = "D(x)") -> Declarations:
    torch.manual_seed(0)
    return (fm.Function(critic, net=_net(X)), fm.Function("G(z)", net=nn.Linear(Z, X)), fm.Data("P_r(x)"),
            fm.Normal("p(z)", loc=0.0, scale=1.0, shape=(Z,)))


def _wgan_gp_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    d, g, _, prior = decls
    x = inputs["x"]
    fake = g.net(_prior(prior, x, x.shape[0]))
    eps = torch.rand(x.shape[0], 1, dtype=x.dtype, device=x.device)  # the draw statement's variable: drawn first
    x_hat = eps * x + (1 - eps) * g.net(_prior(prior, x, x.shape[0]))
    (grad,) = torch.autograd.grad(d.net(x_hat).sum(), x_hat, create_graph=True)
    penalty = (grad.norm(dim=-1) - 1) ** 2
    return d.net(fake).squeeze(-1) - d.net(x).squeeze(-1) + inputs["lambda"] * penalty


def _factor_vae() -> Declarations:
    q, p, prior = vae()
    return q, p, prior, fm.Data("p_data(x)"), fm.Function("D(z)", net=_net(Z, nn.Sigmoid()))


def _factor_vae_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, p, prior, _, d = decls
    x = inputs["x"]
    qz = normal(q.net(x=x))
    elbo = bern(p.net(z=qz.rsample())).log_prob(x) - kl_divergence(qz, std_normal(Z).expand(qz.batch_shape))
    z = qz.rsample()  # the KL_D term's own draw from the aggregate posterior
    ratio = torch.log(d.net(z)) - torch.log(1 - d.net(z))
    return elbo - inputs["gamma"] * ratio.squeeze(-1)


def _discriminator() -> Declarations:
    q, _, _, data, d = _factor_vae()
    return q, data, d


def _discriminator_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, _, d = decls
    qz = normal(q.net(x=inputs["x"]))
    z, drawn = qz.rsample(), qz.rsample()
    order = torch.rand(drawn.shape, device=drawn.device, dtype=torch.float32).argsort(0)
    permuted = drawn.gather(0, order)
    return torch.log(d.net(z)).squeeze(-1) + torch.log(1 - d.net(permuted)).squeeze(-1)


def _ratio() -> Declarations:
    q, _, prior, _, d = _factor_vae()
    return q, prior, d


def _ratio_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    q, _, d = decls
    z = normal(q.net(x=inputs["x"])).rsample()
    return (torch.log(d.net(z)) - torch.log(1 - d.net(z))).squeeze(-1)


def _wasserstein_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    f, g, _, prior = decls
    x = inputs["x"]
    return f.net(x).squeeze(-1) - f.net(g.net(_prior(prior, x, x.shape[0]))).squeeze(-1)


case("wgan-gp-critic", WGAN_GP, inputs=lambda: {**_x(), "lambda": 10.0}, draws=["epsilon", "z"],
     reference=_wgan_gp_ref, skip={"compiled": NO_DOUBLE_BACKWARD, "fullgraph": NO_DOUBLE_BACKWARD})(
    _critic_and_generator)
case("factorvae", FACTOR_VAE, inputs=lambda: {**_x(), "gamma": 6.0}, draws=["z"], reference=_factor_vae_ref)(
    _factor_vae)
case("factorvae-discriminator", DISCRIMINATOR, inputs=_x, draws=["z"], reference=_discriminator_ref,
     skip={"batch_of_one": ONE_EXAMPLE})(_discriminator)
case("density-ratio-kl", r"\mathrm{KL}_D(q(z|x) \| p(z))", inputs=_x, draws=["z"], reference=_ratio_ref)(_ratio)
case("wasserstein-critic", WASSERSTEIN, inputs=_x, draws=["z"], reference=_wasserstein_ref)(
    lambda: _critic_and_generator("f(x)"))


class _Pair(nn.Module):
    """(a, b) -> a network of both, concatenated."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, 8), nn.Tanh(), nn.Linear(8, n_out))

    def forward(self, a, b):
        return self.net(torch.cat([a, b], -1))


def _avb(decoder: bool = True) -> Declarations:
    torch.manual_seed(0)
    q, p, prior = vae()
    return (fm.Data("p_D(x)"), fm.Function(r"z_\phi(x, \epsilon)", net=_Pair(X + Z, Z)),
            fm.Function("T(x, z)", net=_Pair(X + Z, 1)), fm.Normal(r"p(\epsilon)", loc=0.0, scale=1.0, shape=(Z,)),
            prior, *((p,) if decoder else ()))


def _avb_model_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    _, encoder, t, noise, _, p = decls
    x = inputs["x"]
    z = encoder.net(x, _prior(noise, x, x.shape[0]))
    return -t.net(x, z).squeeze(-1) + bern(p.net(z=z)).log_prob(x)


def _avb_adversary_ref(decls: Declarations, inputs: Inputs) -> torch.Tensor:
    _, encoder, t, noise, prior = decls
    x = inputs["x"]
    z = encoder.net(x, _prior(noise, x, x.shape[0]))
    real = torch.log(torch.sigmoid(t.net(x, z)))
    fake = torch.log(1 - torch.sigmoid(t.net(x, _prior(prior, x, x.shape[0]))))
    return (real + fake).squeeze(-1)


case("avb-model", AVB_MODEL, inputs=_x, draws=["epsilon"], reference=_avb_model_ref)(_avb)
case("avb-adversary", AVB_ADVERSARY, inputs=_x, draws=["epsilon", "z"], reference=_avb_adversary_ref)(
    lambda: _avb(decoder=False))
