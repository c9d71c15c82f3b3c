"""DDPM's simple loss and denoising score matching written as the papers write them (issue 11 item 5), against
hand-written PyTorch at the same draws; the noise schedule `fm.Schedule` looked up at a drawn step."""

import pytest
import torch
from torch import nn
from torch.distributions import Categorical

import formula as fm
from formula.families.schedule import Schedule

B, D, STEPS = 6, 2, 10

DDPM = r"""t \sim \mathcal{U}\{1, \ldots, T\}
\epsilon \sim \mathcal{N}(0, I)
\mathbb{E}_{t, x_0, \epsilon}\left[\| \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t} \epsilon, t)
\|^2\right]"""
DDPM_INLINE = (r"\mathbb{E}_{t \sim \mathcal{U}\{1, \ldots, T\}} \mathbb{E}_{p_{data}(x_0)} \mathbb{E}_{\epsilon \sim "
               r"\mathcal{N}(0, I)}[\| \epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t} x_0 + \sqrt{1 - \bar\alpha_t} "
               r"\epsilon, t) \|^2]")
DSM = (r"\mathbb{E}_{p_{data}(x)} \mathbb{E}_{\tilde x \sim \mathcal{N}(x, \sigma^2 I)}\left[\| s_\theta(\tilde x) + "
       r"(\tilde x - x) / \sigma^2 \|^2\right]")


class EpsNet(nn.Module):
    """epsilon_theta(x_t, t): t arrives as integers [batch]."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(D + 1, D)
        self.seen = None

    def forward(self, x_t, t):
        self.seen = t
        return self.lin(torch.cat([x_t, t.float()[:, None] / STEPS], -1))


def ddpm_parts():
    torch.manual_seed(0)
    net = EpsNet()
    alpha_bar = torch.cumprod(1 - torch.linspace(1e-2, 0.3, STEPS), 0)
    decls = [fm.Function(r"\epsilon_\theta(x_t, t)", net=net), Schedule("alpha_bar", alpha_bar),
             fm.Data("p_data(x_0)")]
    return net, alpha_bar, decls


def ddpm_by_hand(net, alpha_bar, x0):
    t = Categorical(logits=torch.zeros(STEPS)).sample((x0.shape[0],)) + 1
    eps = torch.randn_like(x0)
    a = alpha_bar[t - 1][:, None]
    return ((eps - net(a.sqrt() * x0 + (1 - a).sqrt() * eps, t)) ** 2).sum(-1)


@pytest.mark.parametrize("text", [DDPM, DDPM_INLINE])
def test_ddpm_simple_loss_equals_the_hand_written_one(text):
    net, alpha_bar, decls = ddpm_parts()
    obj = fm.compile(text, decls)
    plan = obj.explain()
    assert "draw t ~ \\mathcal{U}\\{1, ..., T\\} [UniformDiscrete, sampled (constant parameters" in plan
    assert "draw epsilon ~ \\mathcal{N}(0, I) [Normal, reparameterised, shaped like" in plan
    x0 = torch.randn(B, D)
    torch.manual_seed(7)
    value = obj(x_0=x0, T=STEPS)
    assert net.seen.dtype == torch.long and net.seen.shape == (B,) and 1 <= int(net.seen.min())
    torch.manual_seed(7)
    torch.testing.assert_close(value, ddpm_by_hand(net, alpha_bar, x0))
    value.mean().backward()
    assert net.lin.weight.grad.abs().sum() > 0


def test_ddpm_a_step_outside_the_schedule_is_an_input_error():
    _, _, decls = ddpm_parts()
    obj = fm.compile(DDPM, decls)
    with pytest.raises(fm.FormulaInputError, match="outside its steps 1..10") as raised:
        obj(x_0=torch.randn(B, D), T=STEPS + 50)
    # the caret is under the schedule's use in the formula, where the step was written, not its signature
    start, end = raised.value.span
    assert raised.value.text == DDPM and DDPM[start:end].startswith("\\bar")


def test_a_bounded_sum_past_a_schedule_points_at_the_use():
    obj = fm.compile(r"\sum_{k=1}^{K} \pi_k", [fm.Schedule("pi", torch.tensor([0.5, 0.5]))])
    with pytest.raises(fm.FormulaInputError, match="pi_t at t = 3: steps are the integers 1..2") as raised:
        obj(K=3, batch_size=2)
    assert raised.value.text[slice(*raised.value.span)] == "\\pi_k"


def test_denoising_score_matching_equals_the_hand_written_loss():
    torch.manual_seed(0)
    net = nn.Linear(D, D)
    decls = [fm.Function(r"s_\theta(x)", net=net), fm.Data("p_data(x)")]
    x = torch.randn(B, D)
    sigma = torch.linspace(0.1, 1.0, B)  # one sigma per example, as NCSN draws them
    for text in (DSM, DSM.replace(r"\mathbb{E}_{p_{data}(x)} \mathbb{E}_{\tilde x", r"\mathbb{E}_{x, \tilde x")):
        obj = fm.compile(text, decls)
        assert "[Normal, reparameterised, shaped like x]" in obj.explain()
        for s in (0.5, sigma):
            torch.manual_seed(3)
            value = obj(x=x, sigma=s)
            torch.manual_seed(3)
            sd = s if isinstance(s, float) else s[:, None]
            xt = x + sd * torch.randn(B, D)
            torch.testing.assert_close(value, ((net(xt) + (xt - x) / sd ** 2) ** 2).sum(-1))


def test_a_sigma_schedule_at_a_drawn_level():
    torch.manual_seed(0)
    net = nn.Linear(D, D)
    sigmas = torch.tensor([1.0, 0.5, 0.1])
    text = (r"i \sim \mathcal{U}\{1, \ldots, L\}; \mathbb{E}_{p_{data}(x)} \mathbb{E}_{i} \mathbb{E}_{\tilde x \sim "
            r"\mathcal{N}(x, \sigma_i^2 I)}[\sigma_i^2 \| s_\theta(\tilde x) + (\tilde x - x) / \sigma_i^2 \|^2]")
    obj = fm.compile(text, [fm.Function(r"s_\theta(x)", net=net), fm.Data("p_data(x)"), Schedule("sigma", sigmas)])
    x = torch.randn(B, D)
    torch.manual_seed(5)
    value = obj(x=x, L=3)
    torch.manual_seed(5)
    s = sigmas[Categorical(logits=torch.zeros(3)).sample((B,))][:, None]
    xt = x + s * torch.randn(B, D)
    torch.testing.assert_close(value, s[:, 0] ** 2 * ((net(xt) + (xt - x) / s ** 2) ** 2).sum(-1))


def test_schedule_names_lookups_and_mistakes():
    values = torch.tensor([0.9, 0.5, 0.1])
    assert Schedule("alpha_bar", values).name == Schedule(r"\bar\alpha", values).name == r"\bar{alpha}"
    s = Schedule("alpha_bar", values, start=0)
    torch.testing.assert_close(s(torch.tensor([0, 2])), torch.tensor([0.9, 0.1]))
    torch.testing.assert_close(s(torch.tensor([1.0])), torch.tensor([0.5]))
    with pytest.raises(fm.FormulaInputError, match="integer step"):
        s(torch.tensor([0.5]))
    with pytest.raises(fm.FormulaCheckError, match="at least one step"):
        Schedule("alpha_bar", torch.zeros(0, 2))
    assert Schedule("mu", torch.zeros(3, 2))(2).shape == (2,)  # a table of vectors: [steps, *event]
    with pytest.raises(fm.FormulaCheckError, match="without index"):
        Schedule("alpha_t", values)
    assert Schedule("sigma", values).state_dict()["values"].shape == (3,)


def test_schedule_at_a_sum_index_and_a_number():
    sched = Schedule("beta", torch.tensor([0.1, 0.2, 0.3]))
    obj = fm.compile(r"\sum_{t=1}^{T} \beta_t + \beta_1", [sched])
    torch.testing.assert_close(obj(T=3, batch_size=2), torch.full((2,), 0.7))
