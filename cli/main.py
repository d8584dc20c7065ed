"""``ckd-events``: a thin Click layer. Each command parses options and calls one pipeline stage.

The commands live in one module per group (``data``, ``train``, ``reports``, ``demo``); a new
command goes in a module of its own and is registered below with one ``main.add_command`` line.

User mistakes arrive as :class:`ckdsnn_events.errors.UserError` and leave as one ``Error:`` line
on stderr and a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import click

from ckdsnn_events import __version__
from ckdsnn_events.cli import ablate, data, demo, export, models, plot, reports, train, verify
from ckdsnn_events.errors import UserError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ckd-events")
def main() -> None:
    """ckd-events: event-camera data to spike-ready tensors, CKDSNN distillation into Norse LIF
    students, and energy reports from the spikes they fire.

    \b
    The offline demo, start to end (or all at once: ckd-events demo):
      ckd-events simulate --out data/digits-dvs
      ckd-events preprocess --dataset digits-dvs --root data/digits-dvs --out data/digits-dvs-frames -T 6 --size 32
      ckd-events distill --dataset digits-dvs          (trains the teacher first)
      ckd-events evaluate --checkpoint runs/digits-dvs/student-resnet20-cifar16-seed0/best.pt
      ckd-events energy --checkpoint runs/digits-dvs/student-resnet20-cifar16-seed0/best.pt
    """


main.add_command(data.simulate)
main.add_command(data.preprocess)
main.add_command(train.train_teacher)
main.add_command(train.distill)
main.add_command(train.evaluate)
main.add_command(ablate.ablate)  # the paper's ablation studies
main.add_command(plot.plot)  # training curves
main.add_command(reports.energy)
main.add_command(reports.saliency)
main.add_command(demo.demo)
main.add_command(models.models)
main.add_command(export.export)
main.add_command(verify.verify)
