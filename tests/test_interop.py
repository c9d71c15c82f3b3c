"""An objective is an `nn.Module`: it drops into a plain PyTorch loop and into a Lightning `LightningModule`
(when Lightning is installed), and `fm.Trainer` takes any DataLoader or a map-style Dataset of dicts."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from toy_objectives import binary_data, compiled_vae

from formula.train.trainer import Trainer


class DictDataset(Dataset):
    """A map-style dataset whose examples are dicts keyed by the formula's input names."""

    def __init__(self, x: torch.Tensor):
        self.x = x

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int):
        return {"x": self.x[i]}


def _held_out_elbo(elbo, x) -> float:
    torch.manual_seed(123)
    with torch.no_grad():
        return float(elbo(x=x).mean())


def test_plain_pytorch_loop():
    torch.manual_seed(0)
    elbo = compiled_vae()
    x, held = binary_data(256), binary_data(64, seed=5)
    assert isinstance(elbo, torch.nn.Module) and sum(p.numel() for p in elbo.parameters()) > 0
    before = _held_out_elbo(elbo, held)
    optimizer = torch.optim.Adam(elbo.parameters(), lr=1e-2)
    for epoch in range(5):
        for (batch,) in DataLoader(TensorDataset(x), batch_size=32, shuffle=True):
            loss = -elbo(x=batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert _held_out_elbo(elbo, held) > before + 0.1
    values, terms = elbo.evaluate(x=held)
    assert set(terms) == set(elbo.term_names) and values.shape == (64,)


def test_lightning_module():
    pl = pytest.importorskip("lightning.pytorch")

    class LitVAE(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.elbo = compiled_vae()

        def training_step(self, batch, batch_idx):
            values, terms = self.elbo.evaluate(x=batch["x"])
            for name, value in terms.items():
                self.log(name, value.mean())
            return -values.mean()

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    torch.manual_seed(0)
    model = LitVAE()
    held = binary_data(64, seed=5)
    before = _held_out_elbo(model.elbo, held)
    loader = DataLoader(DictDataset(binary_data(256)), batch_size=32, shuffle=True)
    trainer = pl.Trainer(max_steps=40, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, loader)
    assert trainer.global_step == 40
    assert _held_out_elbo(model.elbo, held) > before + 0.1


@pytest.mark.parametrize("form", ["dataset of dicts", "loader of dicts", "loader of tensors"])
def test_trainer_takes_datasets_and_loaders(form):
    torch.manual_seed(0)
    x = binary_data(100)
    data = {
        "dataset of dicts": DictDataset(x),
        "loader of dicts": DataLoader(DictDataset(x), batch_size=25, shuffle=True),
        "loader of tensors": DataLoader(TensorDataset(x), batch_size=25),
    }[form]
    trainer = Trainer(compiled_vae(), batch_size=25, progress=False)
    history = trainer.fit(data, epochs=2, eval_data=DictDataset(binary_data(30, seed=1)))
    assert trainer.step == 8  # 100 examples / 25 a batch * 2 epochs: the Dataset is batched by batch_size
    assert len(history["eval/loss"]) == 2 and all(v == v for v in history["loss"])


def test_dataset_training_resumes_exactly(tmp_path):
    """A Dataset is shuffled from torch's RNG, which a checkpoint holds: a resumed run matches a straight one."""
    x = binary_data(64)
    torch.manual_seed(0)
    straight = Trainer(compiled_vae(), batch_size=16, progress=False)
    straight.fit(DictDataset(x), epochs=2)
    torch.manual_seed(0)
    first = Trainer(compiled_vae(), batch_size=16, progress=False)
    first.fit(DictDataset(x), epochs=1)
    first.save(tmp_path / "run.ckpt")
    torch.manual_seed(99)
    resumed = Trainer.load(tmp_path / "run.ckpt", compiled_vae(), progress=False)
    resumed.fit(DictDataset(x), epochs=1)
    assert resumed.history["loss"] == straight.history["loss"]
