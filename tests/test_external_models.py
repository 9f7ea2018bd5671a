"""External models (external_models:, docs/external_models.md): import, refusals, the DAG.

Checkpoints are written by the tests: a tiny registered architecture saved as safetensors, the
same network exported with torch.export, and files that must be refused (pickles renamed,
wrong keys, wrong shapes, wrong class count, archives with pickled payloads).
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from robustlab.data.images import ImageSet, write_images
from robustlab.io import read_frame
from robustlab.metrics.table import training_rows
from robustlab.models import build_model, count_macs, count_params
from robustlab.models.external import (
    ExternalModelError,
    check_program_archive,
    import_weights,
    load_program,
    read_weights,
)
from stages import import_model
from stages.common import load_eval_model
from tests.pipeline_helpers import copy_repo, run

MEAN, STD = [0.286], [0.353]
OPTIONS = {"width": 4, "hidden": 8}
CLASSES = 10


def tiny(classes: int = CLASSES, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("small_cnn", classes, 1, 28, mean=MEAN, std=STD, **{**OPTIONS, **options})


def save_net(model, path: Path, prefix: str = "") -> Path:
    save_file({prefix + k: v.contiguous() for k, v in model.net.state_dict().items()}, str(path))
    return path


def export_net(net: torch.nn.Module, path: Path, channels: int = 1) -> Path:
    batch = torch.export.Dim("batch")
    x = torch.rand(2, channels, 28, 28)
    program = torch.export.export(net, (x,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


@pytest.fixture
def test_table(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    images = ImageSet(
        images=rng.integers(0, 256, size=(20, 28, 28, 1), dtype=np.uint8),
        labels=np.arange(20, dtype=np.int16) % CLASSES,
        index=np.arange(20, dtype=np.int64),
        class_names=[f"c{i}" for i in range(CLASSES)],
        source_checksum="test",
    )
    path = tmp_path / "test.parquet"
    write_images(images, path)
    return path


def images(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def import_args(table: Path, out: Path, *source: str, technique: str = "external") -> list[str]:
    return [
        "--test", str(table), "--dataset", "fashion_mnist", "--arch-name", "my_cnn",
        "--technique", technique, "--normalization", json.dumps({"mean": MEAN, "std": STD}),
        "--out-dir", str(out), *source,
    ]  # fmt: skip


def weights_source(path: Path) -> list[str]:
    return ["--weights", str(path), "--arch", "small_cnn", "--arch-config", json.dumps(OPTIONS)]


# --- import: the run's model folder gives the original model's logits ------------------------


def test_imported_weights_give_the_original_logits(tmp_path, test_table):
    original = tiny().eval()
    source = save_net(original, tmp_path / "model.safetensors")
    out = tmp_path / "models" / "fashion_mnist" / "my_cnn" / "external"
    import_model.main(import_args(test_table, out, *weights_source(source)))

    model, device = load_eval_model(out, threads=1)
    x = images()
    # the same weights; evaluation's channels_last layout changes only the order of float sums
    loaded = {k: v.cpu() for k, v in model.state_dict().items()}
    assert all(torch.equal(loaded[k], v) for k, v in original.state_dict().items())
    with torch.no_grad():
        torch.testing.assert_close(model(x.to(device)).cpu(), original(x), rtol=1e-5, atol=1e-5)
    assert not model.training
    card = json.loads((out / "card.json").read_text())
    assert card["external"] is True and card["format"] == "safetensors"
    assert (card["arch"], card["arch_name"], card["technique"]) == (
        "small_cnn",
        "my_cnn",
        "external",
    )
    assert card["arch_config"] == OPTIONS and card["family"] == "cnn"
    assert (card["num_classes"], card["in_channels"], card["image_size"]) == (CLASSES, 1, 28)
    assert (card["mean"], card["std"]) == (MEAN, STD)
    assert card["params"] == count_params(original)
    assert card["macs"] == count_macs(original, (1, 28, 28))
    # robustlab trained no epoch: an empty history; aggregate reports epochs = 0
    history = read_frame(out / "history.parquet")
    assert len(history) == 0 and list(history.columns)[:1] == ["epoch"]
    rows = training_rows(history)
    assert rows[["metric", "value"]].values.tolist() == [["epochs", 0.0]]


def test_a_key_prefix_is_removed(tmp_path):
    original = tiny().eval()
    source = save_net(original, tmp_path / "dp.safetensors", prefix="module.")
    with pytest.raises(ExternalModelError, match="unexpected keys: module."):
        import_weights(source, "small_cnn", CLASSES, 1, 28, MEAN, STD, options=OPTIONS)
    model = import_weights(
        source, "small_cnn", CLASSES, 1, 28, MEAN, STD, options=OPTIONS, key_prefix="module."
    )
    x = images()
    with torch.no_grad():
        assert torch.equal(model(x), original(x))


def test_a_torch_export_program_round_trips(tmp_path, test_table):
    original = tiny().eval()
    source = export_net(original.net, tmp_path / "model.pt2")
    out = tmp_path / "models" / "fashion_mnist" / "my_cnn" / "external"
    import_model.main(import_args(test_table, out, "--program", str(source), "--family", "cnn"))

    assert (out / "program.pt2").read_bytes() == source.read_bytes()
    assert not (out / "model.safetensors").exists()
    model, device = load_eval_model(out, threads=1)
    x = images()
    with torch.no_grad():
        got = model(x.to(device)).cpu()
    # the same operators on the same weights; the normalisation is robustlab's Normalize
    torch.testing.assert_close(got, original(x), rtol=0, atol=1e-6)
    assert torch.equal(got.argmax(1), original(x).argmax(1))
    model.eval()  # evaluation code calls eval(); the program stays as exported
    with pytest.raises(RuntimeError, match="cannot be trained"):
        model.train()
    card = json.loads((out / "card.json").read_text())
    assert card["format"] == "program" and card["arch"] == "my_cnn" and card["family"] == "cnn"
    assert card["params"] == count_params(original)
    # MACs read from the program's operators equal the Conv2d/Linear hook count
    assert card["macs"] == count_macs(original, (1, 28, 28))
    # gradients reach the input (white-box attacks)
    x.requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# --- refusals, each with the message that says what was expected ----------------------------


def test_wrong_keys_are_listed(tmp_path):
    state = {k: v.contiguous() for k, v in tiny().net.state_dict().items()}
    key = next(iter(state))
    state["renamed.weight"] = state.pop(key)
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ExternalModelError) as info:
        import_weights(tmp_path / "bad.safetensors", "small_cnn", CLASSES, 1, 28, MEAN, STD,
                       options=OPTIONS)  # fmt: skip
    assert f"missing keys: {key}" in str(info.value)
    assert "unexpected keys: renamed.weight" in str(info.value)


def test_wrong_shapes_are_listed(tmp_path):
    wider = tiny(width=8)  # the same keys, twice the channels
    source = save_net(wider, tmp_path / "wide.safetensors")
    expected = tiny().net.state_dict()
    key = next(k for k, v in expected.items() if v.dim() == 4)  # the first convolution
    with pytest.raises(ExternalModelError) as info:
        import_weights(source, "small_cnn", CLASSES, 1, 28, MEAN, STD, options=OPTIONS)
    message = str(info.value)
    got, want = tuple(wider.net.state_dict()[key].shape), tuple(expected[key].shape)
    assert f"shape of {key}: got {got} expected {want}" in message
    assert "missing keys" not in message and "the model outputs" not in message


def test_a_wrong_class_count_is_named(tmp_path, test_table):
    source = save_net(tiny(classes=12), tmp_path / "twelve.safetensors")
    with pytest.raises(
        ExternalModelError, match="the model outputs 12 classes; fashion_mnist has 10"
    ):
        import_weights(source, "small_cnn", CLASSES, 1, 28, MEAN, STD, options=OPTIONS,
                       dataset="fashion_mnist")  # fmt: skip
    program = export_net(tiny(classes=12).eval().net, tmp_path / "twelve.pt2")
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="the model outputs 12 classes; fashion_mnist has 10"):
        import_model.main(
            import_args(test_table, out, "--program", str(program), "--family", "cnn")
        )
    assert not (out / "card.json").exists()


class _Marker:
    """Unpickling this creates a file: proof that a pickle was (not) loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path(self.path).touch, ())


def test_pickles_renamed_to_safetensors_are_refused_unread(tmp_path):
    marker = tmp_path / "unpickled"
    zipped = tmp_path / "zipped.safetensors"
    torch.save({"w": torch.zeros(1), "x": _Marker(str(marker))}, zipped)
    with pytest.raises(ExternalModelError, match="zip archive .torch.save's format"):
        read_weights(zipped)
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(pickle.dumps(_Marker(str(marker)), protocol=4))
    with pytest.raises(ExternalModelError, match="a Python pickle"):
        read_weights(raw)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ExternalModelError, match="not a safetensors file"):
        read_weights(garbage)
    assert not marker.exists()
    # and the other direction: a real safetensors file passes the content check
    save_file({"w": torch.ones(2)}, str(tmp_path / "ok.safetensors"))
    assert torch.equal(read_weights(tmp_path / "ok.safetensors")["w"], torch.ones(2))


def _rewrite(source: Path, dest: Path, edit) -> Path:
    """A copy of a .pt2 archive with ``edit(name, data) -> data | None`` applied per member."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w") as out:
        for info in src.infolist():
            data = edit(info.filename, src.read(info.filename))
            if data is not None:
                out.writestr(info.filename, data)
    return dest


def test_program_archives_with_pickles_are_refused_unread(tmp_path):
    marker = tmp_path / "unpickled"
    good = export_net(tiny().eval().net, tmp_path / "good.pt2")
    check_program_archive(good)  # the plain archive torch.export.save writes passes

    saved = tmp_path / "saved.pt2"
    torch.save({"x": _Marker(str(marker))}, saved)  # a zip with data.pkl, not torch.export's
    with pytest.raises(ExternalModelError, match="not a torch.export archive: it holds .*data.pkl"):
        load_program(saved, MEAN, STD, "cnn")

    def pickled_weights(name: str, data: bytes) -> bytes:
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            for entry in config["config"].values():
                entry["use_pickle"] = True
            return json.dumps(config).encode()
        return data

    bad = _rewrite(good, tmp_path / "pickled.pt2", pickled_weights)
    with pytest.raises(ExternalModelError, match="as pickles"):
        load_program(bad, MEAN, STD, "cnn")

    def with_object(name: str, data: bytes) -> bytes:
        return data

    extra = _rewrite(good, tmp_path / "object.pt2", with_object)
    with zipfile.ZipFile(extra, "a") as archive:
        root = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{root}/data/constants/opaque_obj_0", pickle.dumps(_Marker(str(marker))))
    with pytest.raises(ExternalModelError, match="data/constants/opaque_obj_0"):
        load_program(extra, MEAN, STD, "cnn")

    def sample_pickle(name: str, data: bytes) -> bytes:
        if name.endswith("data/sample_inputs/model.pt"):
            buffer = __import__("io").BytesIO()
            torch.save(_Marker(str(marker)), buffer)
            return buffer.getvalue()
        return data

    sample = _rewrite(good, tmp_path / "sample.pt2", sample_pickle)
    with pytest.raises(ExternalModelError, match="sample inputs are not plain tensors"):
        load_program(sample, MEAN, STD, "cnn")

    safetensors = save_net(tiny(), tmp_path / "weights.pt2")
    with pytest.raises(ExternalModelError, match="not a zip archive"):
        load_program(safetensors, MEAN, STD, "cnn")
    assert not marker.exists()


def test_a_program_exported_in_training_mode_is_refused(tmp_path, test_table):
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
        torch.nn.Linear(4 * 26 * 26, CLASSES),
    )  # fmt: skip
    source = export_net(net.train(), tmp_path / "train_mode.pt2")
    with pytest.raises(SystemExit, match="export the model after model.eval"):
        import_model.main(import_args(test_table, tmp_path / "out", "--program", str(source),
                                      "--family", "cnn"))  # fmt: skip
    eval_mode = export_net(net.eval(), tmp_path / "eval_mode.pt2")
    import_model.main(import_args(test_table, tmp_path / "ok", "--program", str(eval_mode),
                                  "--family", "cnn"))  # fmt: skip
    assert (tmp_path / "ok" / "card.json").exists()


def test_a_program_for_other_images_is_refused(tmp_path, test_table):
    rgb = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 26 * 26, CLASSES))  # fmt: skip
    source = export_net(rgb.eval(), tmp_path / "rgb.pt2", channels=3)
    with pytest.raises(SystemExit, match=r"fails on a batch of fashion_mnist images \(N, 1, 28"):
        import_model.main(import_args(test_table, tmp_path / "out", "--program", str(source),
                                      "--family", "cnn"))  # fmt: skip


def test_normalization_needs_one_value_per_channel(tmp_path, test_table):
    source = save_net(tiny(), tmp_path / "m.safetensors")
    args = import_args(test_table, tmp_path / "out", *weights_source(source))
    args[args.index("--normalization") + 1] = json.dumps({"mean": [0.5] * 3, "std": [0.5] * 3})
    with pytest.raises(SystemExit, match="3 channel.*fashion_mnist images have 1"):
        import_model.main(args)


# --- the DAG: imported, never trained, evaluated like every run ------------------------------


def _job_counts(text: str) -> dict[str, int]:
    counts, in_table = {}, False
    for line in text.splitlines():
        if line.startswith("job") and "count" in line:
            in_table = True
        elif (
            in_table and line.strip() and line.split()[0] != "total" and line.split()[-1].isdigit()
        ):
            counts[line.split()[0]] = int(line.split()[-1])
        elif in_table and not line.strip() and counts:
            break
    return counts


def test_dry_run_imports_external_models_and_evaluates_them(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    (repo / "external").mkdir()
    save_net(tiny(), repo / "external" / "cnn.safetensors")
    export_net(tiny().eval().net, repo / "external" / "cnn.pt2")
    preset = yaml.safe_load((repo / "presets" / "smoke.yaml").read_text())
    preset["external_models"] = {
        "ext_cnn": {
            "dataset": "fashion_mnist", "arch": "small_cnn", "options": OPTIONS,
            "weights": "external/cnn.safetensors",
            "normalization": {"mean": MEAN, "std": STD}, "technique": "published",
        },
        "ext_program": {
            "dataset": "fashion_mnist", "program": "external/cnn.pt2", "family": "cnn",
            "normalization": {"mean": MEAN, "std": STD},
        },
    }  # fmt: skip
    preset["grid"]["architectures"] = ["small_cnn", "ext_cnn", "ext_program"]
    (repo / "presets" / "external.yaml").write_text(yaml.safe_dump(preset))
    proc = run(
        ["snakemake", "-n", "-p", "--cores", "1", "--configfile", "presets/external.yaml"], repo
    )
    text = proc.stdout + proc.stderr
    jobs = _job_counts(text)
    # small_cnn x (standard, pgd_at, pgd_at+clat) + one run per external model
    runs = 3 + 2
    assert jobs["import_model"] == 1 and jobs["import_program"] == 1
    # only small_cnn is trained: standard and pgd_at (CLAT's base, with its snapshot)
    assert jobs.get("train", 0) + jobs.get("train_snapshot", 0) == 2
    assert jobs["clat"] == 1
    params = yaml.safe_load((repo / "params.yaml").read_text())
    merged = {**params["attacks"], **preset["attacks"]}  # a preset's null switches one off
    attacks = [name for name, entry in merged.items() if entry is not None]
    for rule in ("evaluate", "probe", "craft_transfer", "transfer"):
        assert jobs[rule] == runs, rule
    assert jobs["attack"] == runs * len(attacks)
    for rule in ("aggregate", "sanity", "compare", "figures", "report"):
        assert jobs[rule] == 1
    assert "models/fashion_mnist/ext_cnn/published/model.safetensors" in text
    assert "models/fashion_mnist/ext_program/external/program.pt2" in text
    assert "--run fashion_mnist/ext_cnn/published" in text
    assert "--run fashion_mnist/ext_program/external" in text
    assert "--weights external/cnn.safetensors --arch small_cnn" in text
    assert "--program external/cnn.pt2" in text and "--family cnn" in text
    assert "stages.launch train " not in "".join(
        line for line in text.splitlines() if "ext_cnn" in line or "ext_program" in line
    )
