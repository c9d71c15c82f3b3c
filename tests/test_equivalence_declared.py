"""`equivalent(a, b, distributions)`: what declarations imply (chain rule, factorisation lines, KL and entropy as
expectations, constants out of expectations, named objectives), 25 positive and 25 negative cases, both orders
(issue 13). The objectives of docs/language.md §5 are compared in both their spellings."""

import pytest

from formula.text.symbolic import equivalent
from formula import cli

VAE_D = ["q(z|x)", "p(x|z)", "p(z)"]
CVAE_D = ["q(z|x,y)", "p(x|z,y)", "p(z|y)"]
M2_D = ["q(y|x)", "q(z|x,y)", "p(x|y,z)", "p(y)", "p(z)"]
JMVAE_D = ["q(z|x,w)", "q(z|x)", "q(z|w)", "p(x|z)", "p(w|z)", "p(z)"]
DMM_D = ["q(z_t|z_{t-1},x)", "p(z_t|z_{t-1})", "p(x_t|z_t)"]
TDVAE_D = ["p_B(z|b)", "q(z_1|z_2,b_1,b_2)", "p(z_2|z_1)", "p(x|z)"]

VAE = "E_q(z|x)[log p(x|z)] - KL(q(z|x)||p(z))"
VAE_LATEX = r"\mathbb{E}_{q_\phi(z|x)}\left[\log p_\theta(x|z)\right] - D_{KL}\left(q_\phi(z|x) \,\|\, p(z)\right)"
ELBO_JOINT = "E_{q(z|x)}[log p(x,z) - log q(z|x)]"
BETA = r"E_{q(z|x)}[log p(x|z)] - \beta D_{KL}(q(z|x)||p(z))"
BETA_LATEX = r"\mathbb{E}_{q_\phi(z|x)}[\log p_\theta(x|z)] - \beta\, D_{\mathrm{KL}}(q_\phi(z|x) \| p(z))"
BETA_1 = r"E_{q(z|x)}[log p(x|z)] - 1 D_{KL}(q(z|x)||p(z))"
CVAE = "E_{q(z|x,y)}[log p(x|z,y)] - KL(q(z|x,y) || p(z|y))"
CVAE_LATEX = r"\mathbb{E}_{q_\phi(z \mid x, y)}\left[\log p_\theta(x \mid z, y)\right] - D_{\mathrm{KL}}(q_\phi(z|x,y) \| p(z|y))"
IWAE = r"\mathbb{E}_{z_1,\ldots,z_K \sim q(z|x)}\left[\log \frac{1}{K}\sum_{k=1}^{K} \frac{p(x,z_k)}{q(z_k|x)}\right]"
IWAE_ASCII = "E_{z_1,...,z_K ~ q(z|x)}[log 1/K sum_{k=1}^{K} p(x,z_k)/q(z_k|x)]"
IWAE_1 = r"\mathbb{E}_{z_1 \sim q(z|x)}\left[\log \frac{1}{1}\sum_{k=1}^{1} \frac{p(x,z_k)}{q(z_k|x)}\right]"
IWAE_2 = r"\mathbb{E}_{z_1, z_2 \sim q(z|x)}\left[\log \frac{1}{2}\sum_{k=1}^{2} \frac{p(x,z_k)}{q(z_k|x)}\right]"
M2 = "E_{q(y|x)}[ E_{q(z|x,y)}[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)] ] + H[q(y|x)]"
M2_LATEX = (r"\mathbb{E}_{q_\phi(y|x)}\left[\mathbb{E}_{q_\phi(z|x,y)}\left[\log p_\theta(x|y,z) + \log p(y) + \log p(z)"
            r" - \log q_\phi(z|x,y)\right]\right] + \mathcal{H}\left[q_\phi(y|x)\right]")
M2_JOINT = "E_{q(y|x)}[ E_{q(z|x,y)}[log p(x,y,z) - log q(z|x,y)] ] + H[q(y|x)]"
JMVAE = (r"E_{q(z|x,w)}[log p(x|z) + log p(w|z)] - KL(q(z|x,w)||p(z)) - \alpha (KL(q(z|x,w)||q(z|x)) + "
         r"KL(q(z|x,w)||q(z|w)))")
JMVAE_LATEX = (r"\mathbb{E}_{q_\phi(z|x,w)}\left[\log p_{\theta}(x|z) + \log p_{\theta}(w|z)\right] - D_{KL}(q_\phi(z|x,w) \| p(z))"
               r" - \alpha \left[D_{KL}(q_\phi(z|x,w) \| q(z|x)) + D_{KL}(q_\phi(z|x,w) \| q(z|w))\right]")
DMM = (r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x)}[\log p(x_t|z_t)] - "
       r"D_{KL}(q(z_t|z_{t-1},x) \| p(z_t|z_{t-1}))")
DMM_ASCII = "sum_{t=1}^{T} (E_{q(z_t|z_{t-1},x)}[log p(x_t|z_t)] - KL(q(z_t|z_{t-1},x) || p(z_t|z_{t-1})))"
DMM_EXPANDED = (r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x)}[\log p(x_t|z_t) - \log q(z_t|z_{t-1},x) + "
                r"\log p(z_t|z_{t-1})]")
TDVAE = ("q(z_1,z_2|b_1,b_2) = q(z_1|z_2,b_1,b_2) p_B(z_2|b_2)\n"
         "E_{q(z_1,z_2|b_1,b_2)}[log p(x_2|z_2) + log p_B(z_1|b_1) + log p(z_2|z_1) - log p_B(z_2|b_2) "
         "- log q(z_1|z_2,b_1,b_2)]")
TDVAE_LATEX = (r"q(z_1,z_2 \mid b_1,b_2) = q(z_1 \mid z_2,b_1,b_2)\, p_B(z_2 \mid b_2)" "\n"
               r"\mathbb{E}_{q(z_1,z_2 \mid b_1,b_2)}\left[\log p(x_2 \mid z_2) + \log p_B(z_1 \mid b_1) + "
               r"\log p(z_2 \mid z_1) - \log p_B(z_2 \mid b_2) - \log q(z_1 \mid z_2,b_1,b_2)\right]")

POSITIVE = [
    ("vae spellings", VAE, VAE_LATEX, VAE_D),
    ("elbo joint vs kl", ELBO_JOINT, VAE, VAE_D),
    ("elbo joint vs kl, bare names", ELBO_JOINT, "E_q[log p(x|z)] - KL(q||p)", VAE_D),
    ("elbo entropy form", "E_q(z|x)[log p(x|z) + log p(z)] + H[q(z|x)]", VAE, VAE_D),
    ("iwae at K=1 vs elbo (kl)", IWAE_1, VAE, VAE_D),
    ("iwae at K=1 vs elbo (joint)", IWAE_1, ELBO_JOINT, VAE_D),
    ("beta-vae at beta=1 vs vae", BETA_1, VAE, VAE_D),
    ("beta-vae spellings", BETA, BETA_LATEX, VAE_D),
    ("cvae spellings", CVAE, CVAE_LATEX, CVAE_D),
    ("cvae joint vs kl", "E_{q(z|x,y)}[log p(x,z|y) - log q(z|x,y)]", CVAE, CVAE_D),
    ("iwae spellings", IWAE, IWAE_ASCII, VAE_D),
    ("m2 spellings", M2, M2_LATEX, M2_D),
    ("m2 joint", M2_JOINT, M2, M2_D),
    ("jmvae spellings", JMVAE, JMVAE_LATEX, JMVAE_D),
    ("dmm spellings", DMM, DMM_ASCII, DMM_D),
    ("dmm kl expanded", DMM_EXPANDED, DMM, DMM_D),
    ("tdvae spellings", TDVAE, TDVAE_LATEX, TDVAE_D),
    ("named objective", r"\mathcal{L}(x; \theta, \phi) = " + VAE_LATEX, VAE, VAE_D),
    ("relation chain name", r"\log p(x) \geq " + ELBO_JOINT + r" =: \mathcal{L}", VAE, VAE_D),
    ("constant out of an expectation", "E_q(z|x)[log p(x|z) + c]", "E_q(z|x)[log p(x|z)] + c", VAE_D),
    ("reordered joint", "E_q(z|x)[log p(z) - log q(z|x) + log p(x|z)]", VAE, VAE_D),
    ("factorisation line", "p(x,z) = p(x|z) p(z)\n" + ELBO_JOINT, VAE, ["q(z|x)", "p(x|z)", "p(z)"]),
    ("log of a ratio", "E_q(z|x)[log (p(x,z)/q(z|x))]", VAE, VAE_D),
    ("kl as an expectation", "KL(q(z|x)||p(z))", "E_q(z|x)[log q(z|x) - log p(z)]", VAE_D),
    ("entropy as an expectation", "H[q(z|x)]", "-E_q(z|x)[log q(z|x)]", VAE_D),
]

NEGATIVE = [
    ("kl sign", VAE, "E_q(z|x)[log p(x|z)] + KL(q(z|x)||p(z))", VAE_D),
    ("joint without entropy", "E_q(z|x)[log p(x,z)]", VAE, VAE_D),
    ("iwae with K vs elbo", IWAE, VAE, VAE_D),
    ("iwae at K=2 vs elbo", IWAE_2, VAE, VAE_D),
    ("beta-vae with beta vs vae", BETA, VAE, VAE_D),
    ("beta 2 vs vae", r"E_{q(z|x)}[log p(x|z)] - 2 D_{KL}(q(z|x)||p(z))", VAE, VAE_D),
    ("vae vs cvae", VAE, CVAE, VAE_D + CVAE_D),
    ("kl direction", "KL(q(z|x)||p(z))", "KL(p(z)||q(z|x))", VAE_D),
    ("twice the elbo", VAE, "2 * (" + VAE + ")", VAE_D),
    ("entropy sign", "H[q(z|x)]", "E_q(z|x)[log q(z|x)]", VAE_D),
    ("m2 without entropy", M2, "E_{q(y|x)}[ E_{q(z|x,y)}[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)] ]", M2_D),
    ("jmvae without the alpha terms", JMVAE, "E_{q(z|x,w)}[log p(x|z) + log p(w|z)] - KL(q(z|x,w)||p(z))", JMVAE_D),
    ("dmm without its kl", DMM, r"\sum_{t=1}^{T} \mathbb{E}_{q(z_t|z_{t-1},x)}[\log p(x_t|z_t)]", DMM_D),
    ("another decoder", VAE, "E_q(z|x)[log p(z|x)] - KL(q(z|x)||p(z))", VAE_D + ["p(z|x)"]),
    ("drawn variable does not drop", "E_q(z|x)[log p(x|z)]", "log p(x|z)", VAE_D),
    ("cvae with an unconditional prior", CVAE, "E_{q(z|x,y)}[log p(x|z,y)] - KL(q(z|x,y) || p(z))", CVAE_D + ["p(z)"]),
    ("an extra log q", ELBO_JOINT, "E_{q(z|x)}[log p(x,z) - 2 log q(z|x)]", VAE_D),
    ("named objectives differ", "L(x) = " + VAE, "L(x) = " + BETA, VAE_D),
    ("drawn variable kept", "E_q(z|x)[z]", "z", VAE_D),
    ("tdvae with a term removed", TDVAE, TDVAE.replace(" + log p(z_2|z_1)", ""), TDVAE_D),
    ("kl against another p", "KL(q(z|x)||p(z))", "E_q(z|x)[log q(z|x) - log p(x|z)]", VAE_D),
    ("another variable", VAE, "E_q(z|y)[log p(y|z)] - KL(q(z|y)||p(z))", VAE_D + ["q(z|y)", "p(y|z)"]),
    ("js is not kl", "JS(q(z|x)||p(z))", "KL(q(z|x)||p(z))", VAE_D),
    ("entropies of other variables", "H[q(y|x)]", "H[q(z|x,y)]", M2_D),
    ("joint vs conditional", "E_q(z|x)[log p(x,z)]", "E_q(z|x)[log p(x|z)]", VAE_D),
]


@pytest.mark.parametrize("name, a, b, dists", POSITIVE, ids=[c[0] for c in POSITIVE])
def test_equivalent_with_declarations(name, a, b, dists):
    assert equivalent(a, b, dists)
    assert equivalent(b, a, dists)


@pytest.mark.parametrize("name, a, b, dists", NEGATIVE, ids=[c[0] for c in NEGATIVE])
def test_not_equivalent_with_declarations(name, a, b, dists):
    assert not equivalent(a, b, dists)
    assert not equivalent(b, a, dists)


def test_counts():
    assert len(POSITIVE) >= 25 and len(NEGATIVE) >= 25


def test_without_declarations_it_stays_syntactic():
    assert not equivalent(ELBO_JOINT, VAE)
    assert equivalent(ELBO_JOINT, VAE, VAE_D)


def test_declaration_objects_are_read_by_their_signature():
    class Declared:
        def __init__(self, signature):
            self.signature = signature

    assert equivalent(ELBO_JOINT, VAE, [Declared(s) for s in VAE_D])


def test_cli_equivalent_takes_dist(capsys):
    argv = ["equivalent", ELBO_JOINT, VAE] + [x for s in VAE_D for x in ("--dist", s)]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == "equivalent\n"
    assert cli.main(["equivalent", ELBO_JOINT, VAE]) == 0
    assert capsys.readouterr().out == "not equivalent\n"
