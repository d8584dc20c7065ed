"""The CLI's choices are the library's name lists, and option values reach the config typed."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from ckdsnn_events.cli import data, reports, train
from ckdsnn_events.cli.main import main


def _choices(command, option: str) -> tuple[str, ...]:
    param = next(p for p in command.params if p.name == option)
    return tuple(param.type.choices)


def test_choices_come_from_the_library():
    from ckdsnn_events.data.encoders import ENCODERS
    from ckdsnn_events.data.event_datasets import COMPRESSIONS, DEFAULT_COMPRESSION, EVENT_DATASETS
    from ckdsnn_events.data.event_folders import EXTENSIONS
    from ckdsnn_events.data.loaders import DATASETS, IMAGE_DATASETS
    from ckdsnn_events.distill.losses import VARIANTS
    from ckdsnn_events.energy.presets import PRESETS
    from ckdsnn_events.events.framing import BIN_MODES
    from ckdsnn_events.models import STUDENTS, TEACHERS

    assert _choices(data.preprocess, "dataset") == (*EVENT_DATASETS, *IMAGE_DATASETS)
    assert _choices(data.preprocess, "form") == ("auto", *EXTENSIONS)
    assert _choices(data.preprocess, "bins") == BIN_MODES
    assert _choices(data.preprocess, "compression") == COMPRESSIONS
    compression = next(p for p in data.preprocess.params if p.name == "compression")
    assert compression.default() == DEFAULT_COMPRESSION == compression.show_default
    for command in (train.train_teacher, train.distill):
        assert _choices(command, "dataset") == DATASETS
        assert _choices(command, "encoder") == ENCODERS
        assert _choices(command, "teacher_arch") == TEACHERS
        assert _choices(command, "student_arch") == STUDENTS
    assert _choices(train.distill, "variant") == VARIANTS
    from ckdsnn_events.cli import ablate
    from ckdsnn_events.pipelines.ablate import STUDIES

    assert _choices(ablate.ablate, "dataset") == DATASETS and _choices(ablate.ablate, "study") == STUDIES
    preset_help = next(p for p in reports.energy.params if p.name == "preset").help
    assert all(name in preset_help for name in PRESETS)


def test_an_unknown_architecture_is_a_usage_error():
    result = CliRunner().invoke(main, ["distill", "--dataset", "digits", "--student-arch", "vgg11"])
    assert result.exit_code == 2 and "--student-arch" in result.output and "resnet20" in result.output
    assert "Traceback" not in result.output


def test_option_values_reach_the_config_typed():
    config = train._resolve("student", "digits", None, ("optim.epochs=3",), extra={"loss.beta": 0.5},
                            teacher_arch="resnet18", student_arch="resnet19", lr=0.25, epochs=7, root=None)
    assert (config.model.teacher, config.model.student) == ("resnet18", "resnet19")
    assert config.optim.lr == 0.25 and config.loss.beta == 0.5
    assert config.optim.epochs == 3  # --set comes last
    teacher = train._resolve("teacher", "digits", None, (), epochs=2)
    assert teacher.teacher_optim.epochs == 2


def test_importing_the_cli_does_not_import_torch():
    code = "import sys; from ckdsnn_events.cli.main import main; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
