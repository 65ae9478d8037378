"""The run context every notebook starts with.

A notebook's ``parameters`` cell sets PROFILE, DATA_ROOT, DEVICE, SEED, OUTPUT_DIR (and its
checkpoint paths); the next cell calls :func:`start`, which loads the notebook's config for the
profile, resolves (or generates) the data, seeds everything, and says where results and figures
go. The context then records result tables, figures and submission files in one place:
:meth:`RunContext.record` evaluates a system's scores and writes its rows, and keeps every recorded
table for the notebook's summaries (:meth:`RunContext.tidy`, :attr:`RunContext.tables`).
"""

from __future__ import annotations

import base64
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import Markdown, display
from matplotlib.figure import Figure

from asd_utils import paths
from asd_utils.backbones.provenance import PROVENANCES, STANDIN_PRETRAINED, UNTRAINED, backbone_provenance
from asd_utils.config import load_config
from asd_utils.data import channel_note, current_channel, discover
from asd_utils.device import resolve_device
from asd_utils.evaluation import metrics
from asd_utils.evaluation.results import write_results
from asd_utils.evaluation.submission import submission_folder_name
from asd_utils.evaluation.tables import AE_NOTEBOOK, AE_SYSTEMS, baseline_rows, tidy_table
from asd_utils.storage.atomic import atomic_path
from asd_utils.synth import ensure_dataset
from asd_utils.training import seed_everything
from asd_utils.training.distributed import init_distributed
from asd_utils.training.seed import pin_cpu_numerics

CPU_PROFILE_THREADS = 2  # torch threads in the smoke/default profiles (the reference machine has 2 cores)

SYNTHETIC_CAVEAT = (
    "**Synthetic data.** These numbers come from the compendium's embedded synthetic DCASE-format "
    "dataset, not from DCASE 2025 recordings. They show that the method runs end to end and how it "
    "ranks on these synthetic machines; they are not the report's results and must not be quoted "
    "as such."
)
UNTRAINED_CAVEAT = (
    "**Untrained stand-in backbone.** No checkpoint was configured, so the pretrained model is a "
    "small randomly initialised network of the same family. Its numbers say nothing about the "
    "real pretrained model."
)
PRETRAINED_STANDIN_CAVEAT = (
    "**Stand-in backbone pretrained by the compendium on synthetic audio.** No published checkpoint "
    "was configured, so the backbone is a small model of the same family that the compendium "
    "pretrained itself, with the family's own self-supervised objective, on the training and "
    "supplemental clips of its synthetic dataset (notebook 07). Its numbers say nothing about the "
    "published model."
)


def backbone_provenances(backbone=None, untrained_backbone: bool = False) -> list[str]:
    """Distinct provenances (``asd_utils.backbones.provenance.PROVENANCES`` order) of ``backbone``:
    a ``Backbone``, a provenance string, or a list / tuple / set / dict (values) of them; the
    legacy flag ``untrained_backbone=True`` adds "untrained stand-in"."""

    if backbone is None:
        items = []
    elif isinstance(backbone, dict):
        items = list(backbone.values())
    elif isinstance(backbone, (list, tuple, set)):
        items = list(backbone)
    else:
        items = [backbone]
    found = {backbone_provenance(item) for item in items}
    if untrained_backbone:
        found.add(UNTRAINED)
    return [p for p in PROVENANCES if p in found]


WARNING_PREFIX = "ASD-WARNING: "  # stderr lines of loud_warning, repeated in the runner's log


def loud_warning(message: str) -> None:
    """Say something the reader must not miss (e.g. a paper-profile run that departs from the
    report): a highlighted block in the notebook and an ``ASD-WARNING: <message>`` line on stderr,
    which ``asd_utils.run.runner`` repeats in its log after the notebook's line."""



    text = " ".join(str(message).split())
    display(Markdown(f"> **WARNING.** {text}"))
    print(WARNING_PREFIX + text, file=sys.stderr, flush=True)


@dataclass
class RecordedSystem:
    """One system recorded by :meth:`RunContext.record`: its per-machine ``table``
    (``metrics.evaluate`` output), the ``scores`` it was evaluated from (None when a table was
    recorded) and the ``provenances`` of the backbones behind it (:func:`backbone_provenances`)."""

    table: pd.DataFrame
    scores: Any
    provenances: list[str]


@dataclass
class RunContext:
    """Everything a notebook needs to know about this run (see :func:`start`)."""

    notebook: str
    profile: str
    config: dict[str, Any]
    data_root: Path
    synthetic: bool
    device: torch.device
    seed: int
    results_dir: Path
    figures_dir: Path
    cache_dir: Path
    index: pd.DataFrame = field(repr=False)
    recorded: dict[str, RecordedSystem] = field(default_factory=dict, repr=False)  # by :meth:`record`, in order

    # -- data -------------------------------------------------------------------------------
    @property
    def machines(self) -> list[str]:
        """Machine types discovered under the data root, sorted."""
        return sorted(self.index["machine"].unique())

    def clips(self, machine: str | None = None, split: str | None = None, **equals) -> pd.DataFrame:
        """Rows of the index for one machine/split (any extra column=value filters too)."""
        rows = self.index
        if machine is not None:
            rows = rows[rows["machine"] == machine]
        if split is not None:
            rows = rows[rows["split"] == split]
        for column, value in equals.items():
            rows = rows[rows[column] == value]
        return rows.reset_index(drop=True)

    # -- outputs ----------------------------------------------------------------------------
    def note(self, *, untrained_backbone: bool = False, backbone=None) -> str:
        """Short provenance note stored with every result row. ``backbone``: the backbone(s) behind
        the row or their provenance strings (see :func:`backbone_provenances`); a pretrained
        stand-in adds "stand-in pretrained by the compendium on synthetic audio"."""

        parts = ["synthetic data" if self.synthetic else f"data: {self.data_root.name}"]
        channel = channel_note(self.index["path"]) if self.index is not None and "path" in self.index else ""
        # "" for mono clips
        parts += [channel] if channel else []
        provenances = backbone_provenances(backbone, untrained_backbone)
        if UNTRAINED in provenances:
            parts.append("untrained stand-in backbone")
        if STANDIN_PRETRAINED in provenances:
            parts.append(STANDIN_PRETRAINED)
        parts.append(f"profile {self.profile}")
        return "; ".join(parts)

    def caveat_markdown(self, *, untrained_backbone: bool = False, backbone=None) -> str:
        """Markdown caveat to display above result tables (``backbone``: as in :meth:`note`)."""

        provenances = backbone_provenances(backbone, untrained_backbone)
        parts = []
        if self.synthetic:
            parts.append(SYNTHETIC_CAVEAT)
        if UNTRAINED in provenances:
            parts.append(UNTRAINED_CAVEAT)
        if STANDIN_PRETRAINED in provenances:
            parts.append(PRETRAINED_STANDIN_CAVEAT)
        return "\n\n".join(parts) or "Real data, configured checkpoints."

    def record(self, system: str, scores, *, test_index: pd.DataFrame | None = None,
               untrained_backbone: bool = False, backbone=None, note: str = "") -> pd.DataFrame:
        """Evaluate ``system`` and write its rows to the notebook's results CSV, in one call.

        ``scores``: the system's test scores, aligned by position with the rows of ``test_index``:
        an ``(M,)`` array, or an object with such an array as attribute ``test``
        (``pipeline.SectionScores``); they are evaluated by ``metrics.evaluate(test_index, ...)``
        (clips without ground truth are left out of the metrics). A DataFrame is taken as an
        evaluated per-machine table (``metrics.evaluate`` output) and recorded as it is.
        ``backbone`` / ``untrained_backbone``: the backbone(s) behind the system, as in
        :meth:`note`; ``note``: extra text appended to the row note after "; ".

        Rows of an earlier record of ``system`` are replaced. The table, the scores and the
        provenances are kept in :attr:`recorded` (:attr:`tables`, :meth:`tidy`). Returns the table.
        """

        if isinstance(scores, pd.DataFrame):
            table, kept = scores, None
        else:
            if test_index is None:
                raise TypeError(f"record({system!r}, scores): scores need the test_index they are aligned with")
            table, kept = metrics.evaluate(test_index, getattr(scores, "test", scores)), scores
        row_note = self.note(untrained_backbone=untrained_backbone, backbone=backbone)
        write_results(
            table,
            notebook=self.notebook,
            system=system,
            profile=self.profile,
            results_dir=self.results_dir,
            note=f"{row_note}; {note}" if note else row_note,
        )
        self.recorded.pop(system, None)  # a rerun of a system moves it to the end, as in the CSV
        self.recorded[system] = RecordedSystem(table, kept, backbone_provenances(backbone, untrained_backbone))
        return table

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Recorded per-machine tables by system name, in the order recorded."""
        return {name: rec.table for name, rec in self.recorded.items()}

    @property
    def system_scores(self) -> dict[str, Any]:
        """The scores each system was recorded from (systems recorded as tables left out)."""
        return {name: rec.scores for name, rec in self.recorded.items() if rec.scores is not None}

    def provenances(self, system: str) -> list[str]:
        """Provenances of the backbones behind a recorded system (``[]``: no pretrained network)."""
        return self.recorded[system].provenances

    def tidy(self, systems=None) -> pd.DataFrame:
        """The recorded tables of ``systems`` (default: all, in the order recorded) as one tidy
        table with a ``system`` column (``asd_utils.evaluation.tables.tidy_table``)."""
        return tidy_table(self.tables, systems)

    def baseline_rows(self, systems=AE_SYSTEMS, *, fills: str = "the baseline columns") -> pd.DataFrame:
        """The official autoencoder's rows (``systems``) that notebook 01 recorded in this run's
        results folder (``asd_utils.evaluation.tables.baseline_rows``), saying below the cell where
        they come from, or, when there are none, that notebook 01 must run first to fill ``fills``."""

        rows = baseline_rows(self.results_dir, systems)
        path = self.results_dir / f"{AE_NOTEBOOK}.csv"
        if len(rows):
            display(Markdown(f"AE baseline rows read from `{path.name}` (notebook 01, profile {self.profile})."))
        else:
            display(Markdown(f"*No AE baseline results in `{path}`: run notebook 01 with the same profile to fill "
                             f"{fills}.*"))
        return rows

    def submission_dir(self, system: str) -> Path:
        """Folder for one system's DCASE submission CSVs."""

        path = self.results_dir / "submissions" / self.notebook / submission_folder_name(system)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def save_figure(self, fig, name: str, *, dpi: int = 120, untrained_backbone: bool = False,
                    backbone=None) -> Path:
        """Save a matplotlib figure as PNG under the run's figure folder and return the path.

        On synthetic data (or with untrained stand-in backbones) a grey footer says so, so that a
        figure seen on its own is never mistaken for a report's result.
        """

        provenances = backbone_provenances(backbone, untrained_backbone)
        caveats = []
        if self.synthetic:
            caveats.append("synthetic data")
        if UNTRAINED in provenances:
            caveats.append("untrained stand-in backbones")
        if STANDIN_PRETRAINED in provenances:
            caveats.append("stand-in backbones pretrained by the compendium on synthetic audio")
        if caveats and not getattr(fig, "_asd_caveat", False):
            fig.text(0.01, -0.01, " · ".join(caveats) + " — not the reports' results", fontsize=7, color="grey",
                     ha="left", va="top")
            fig._asd_caveat = True
        path = self.figures_dir / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)

        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        return path

    def cache(self, *parts: str) -> Path:
        """A cache sub-folder for this notebook (created)."""
        path = self.cache_dir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


def start(
    notebook: str,
    *,
    config: str,
    profile: str,
    data_root: str | Path | None = None,
    seed: int = 0,
    device: str = "auto",
    output_dir: str | Path | None = None,
    overrides: dict | None = None,
) -> RunContext:
    """Prepare a notebook run.

    - ``config``: name of ``asd_utils/configs/<config>.yaml``; loaded for ``profile``.
    - ``data_root``: a DCASE-layout root; ``None`` generates (once) and uses the embedded
      synthetic dataset of the profile (``data/synth_<profile>``; ``paper`` refuses: it needs
      the real data).
    - ``output_dir``: ``None`` writes results under ``results/<profile>`` and figures under
      ``figures/<profile>/<notebook>``; otherwise under ``output_dir/results`` and
      ``output_dir/figures/<notebook>``.
    """

    paths.check_profile(profile)
    cfg = load_config(config, profile, overrides)
    if data_root in (None, ""):
        if profile == "paper":
            raise ValueError(
                "the paper profile runs on the real DCASE 2025 Task 2 data: set DATA_ROOT to the folder "
                "holding dev_data/raw/<machine>/ (see README, 'Running on the real DCASE data')"
            )

        root = ensure_dataset(profile, seed=int(cfg.get("synth_seed", 0)))
        synthetic = True
    else:
        root = Path(data_root).expanduser().resolve()
        synthetic = (root / "synth_manifest.json").exists()
    init_distributed()  # under torchrun: join the process group (training DDP, sharded extraction)
    seed_everything(seed, deterministic=False)  # training code switches determinism on itself
    # trained numbers should not depend on the CPU: kernels capped at AVX2 and, in the CPU-sized
    # profiles, a fixed thread count (README, "Reproducibility"); ASD_TORCH_THREADS overrides it
    threads = os.environ.get("ASD_TORCH_THREADS") or (CPU_PROFILE_THREADS if profile != "paper" else None)
    pin_cpu_numerics(threads=int(threads) if threads else None)
    if output_dir in (None, ""):
        results = paths.results_dir(profile)
        figures = paths.figures_dir(profile, notebook)
    else:
        base = Path(output_dir).expanduser().resolve()
        results = base / "results"
        figures = base / "figures" / notebook
        results.mkdir(parents=True, exist_ok=True)
        figures.mkdir(parents=True, exist_ok=True)
    index = discover(root)
    _check_channel_setting(index)
    return RunContext(
        notebook=notebook,
        profile=profile,
        config=cfg,
        data_root=root,
        synthetic=synthetic,
        device=resolve_device(device),
        seed=seed,
        results_dir=results,
        figures_dir=figures,
        cache_dir=paths.cache_dir(profile, notebook),
        index=index,
    )


def _check_channel_setting(index: pd.DataFrame) -> None:
    """A channel setting other than ``near`` on mono (2020-2025) data changes nothing: say so loudly."""

    channel = current_channel()
    if channel != "near" and not channel_note(index["path"]):
        loud_warning(f"channel setting {channel!r} ignored: the data root holds mono clips, not two-channel "
                     "DCASE 2026 clips")


# -- widget display ------------------------------------------------------------------------------
WIDGET_FIGURE_DPI = 90  # PNGs shown in widgets: 9 pt text is 11 px at this resolution


def figure_png(fig, *, dpi: int = WIDGET_FIGURE_DPI) -> bytes:
    """The figure as PNG bytes, for showing it as data in a widget: cropped to what is drawn
    (``bbox_inches="tight"``), except for a figure that places its axes itself (attribute
    ``fixed_layout``), which is drawn once as it is (the crop costs a second draw)."""

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches=None if getattr(fig, "fixed_layout", False) else "tight")
    return buffer.getvalue()


def output_item(item) -> dict:
    """One nbformat output (a dict) for ``item``: a matplotlib figure becomes a PNG
    (``image/png``; the figure is closed), a ``str`` a stdout stream, an output dict stays as it is,
    anything else is what IPython's display formatter makes of it (``Audio`` -> HTML, ``DataFrame``
    -> HTML, ``Markdown``...)."""


    if isinstance(item, dict) and "output_type" in item:  # already an output (e.g. a cached figure)
        return item
    if isinstance(item, Figure):

        png = figure_png(item)
        plt.close(item)
        return {"output_type": "display_data", "metadata": {},
                "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": "<Figure>"}}
    if isinstance(item, str):
        return {"output_type": "stream", "name": "stdout", "text": item if item.endswith("\n") else item + "\n"}
    data, metadata = InteractiveShell.instance().display_formatter.format(item)
    return {"output_type": "display_data", "data": data, "metadata": metadata}


def show_in(pane, *items) -> None:
    """Replace everything an ``ipywidgets.Output`` pane shows by ``items`` (see :func:`output_item`),
    in one assignment.

    Widgets write through this rather than ``with pane: plt.show()``: outputs set as data belong to
    the pane whatever the front end is doing (a figure shown through ``plt.show()`` inside
    ``with pane:`` can land in JupyterLab's log console when the pane's capture context races with
    the next message), they are stored in the saved widget state, and the pane never blanks
    between the old content and the new (one trait change, no ``clear_output``).
    """
    pane.outputs = tuple(output_item(item) for item in items)


def figure_picker(options, draw, *, description: str = "show"):
    """A dropdown over ``options`` and one pane with what ``draw(value)`` returns (a figure, or a
    list of figures and other displayable items), redrawn once per pick through :func:`show_in`.
    Filled at once with the first option, so a headless run and the saved notebook show it.
    Returns an ipywidgets ``VBox`` (attributes ``picker`` and ``pane``)."""

    options = list(options)
    picker = widgets.Dropdown(options=options, value=options[0] if options else None, description=description)
    pane = widgets.Output()

    def redraw(*_):
        if picker.value is None:
            show_in(pane, "nothing to show")
            return
        drawn = draw(picker.value)
        show_in(pane, *(drawn if isinstance(drawn, (list, tuple)) else [drawn]))

    picker.observe(redraw, names="value")
    redraw()
    box = widgets.VBox([picker, pane])
    box.picker, box.pane = picker, pane
    return box
