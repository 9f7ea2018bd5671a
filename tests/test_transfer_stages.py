"""The transfer stages with no transfer attacks configured (transfer.attacks: [])."""

from __future__ import annotations

import pandas as pd

from stages import craft_transfer, import_model, transfer
from tests.test_external_models import import_args, save_net, test_table, tiny, weights_source

__all__ = ["test_table"]  # the fixture, imported for pytest


def test_no_transfer_attacks_give_an_empty_table_with_every_column(tmp_path, test_table):
    model_dir = tmp_path / "models" / "fashion_mnist" / "my_cnn" / "external"
    source = save_net(tiny().eval(), tmp_path / "model.safetensors")
    import_model.main(import_args(test_table, model_dir, *weights_source(source)))
    examples = tmp_path / "transfer_examples.safetensors"
    craft_transfer.main(
        ["--model-dir", str(model_dir), "--test", str(test_table), "--attacks", "{}",
         "--seed", "0", "--threads", "1", "--no-progress", "--out", str(examples)]
    )  # fmt: skip
    out = tmp_path / "transfer.parquet"
    transfer.main(["--model-dir", str(model_dir), "--examples", str(examples), "--out", str(out)])
    table = pd.read_parquet(out)
    assert len(table) == 0
    assert list(table.columns) == list(transfer.empty_transfer_frame().columns)
    assert table["correct"].dtype == bool and table["index"].dtype == "int64"
