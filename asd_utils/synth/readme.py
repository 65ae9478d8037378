"""Write the dataset's ``README.md``: what each machine type, attribute, domain shift and anomaly is."""

from __future__ import annotations

import os
from pathlib import Path

from asd_utils.synth.machines import HALLS, get_machine
from asd_utils.synth.realistic import readme_section


def dataset_readme(manifest: dict) -> str:
    """Markdown text describing a generated dataset (from its manifest)."""
    sizes = manifest["profile_sizes"]
    lines = [
        f"# Synthetic DCASE-format anomalous sound detection dataset ({manifest['profile']} profile)",
        "",
        "**This is synthetic data.** Every clip was rendered by `asd_utils.synth` (generator version "
        f"{manifest['generator_version']}, seed {manifest['seed']}) from small physical sound models written in"
        " numpy. It follows the layout and naming of the DCASE 2025 Task 2 development set so that every"
        " notebook runs unchanged on it, but numbers measured here say nothing about real machines.",
        "",
        "## Layout",
        "",
        "- `dev_data/raw/<machine>/train/`: normal clips, "
        f"{sizes['train_source']} source + {sizes['train_target']} target per machine type.",
        f"- `dev_data/raw/<machine>/test/`: {sizes['test_per_cell']} clips per source/target x normal/anomaly.",
        f"- `dev_data/raw/<machine>/supplemental/`: {sizes['supplemental_clean']} clean-machine clips (`clean`,"
        f" the machine component alone) and {sizes['supplemental_noise']} noise-only clips (`noise`, the"
        " background alone) of other source-domain normal mixtures.",
        "- `dev_data/raw/<machine>/attributes_00.csv`: `file_name,d1p,d1v,...` per clip.",
        "- `ground_truth_attributes.csv`: the true attributes of the types that hide them (`noAttribute` in"
        " their names), for scoring pseudo-labels. Never use it for training.",
        "- `synth_metadata.csv`: every clip's recipe (anomaly kind, severity, SNR, factory hall). Ground"
        " truth for analysis only.",
        "",
        f"Clips: {manifest['duration_s']:g} s, {manifest['sample_rate']} Hz, mono, 16-bit PCM. Names:"
        " `section_00_<source|target>_<train|test>_<normal|anomaly>_<nnnn>_<attributes>.wav`, ids random"
        " (not contiguous). Each clip = machine sound + factory background at a random SNR (dB) and a random"
        " overall gain of +-2 dB around -26 dBFS RMS. Anomalies change the spectro-temporal shape of the"
        " machine sound, not its level (the machine part is level-normalised after the anomaly is added);"
        " each has a random severity in [0.25, 1].",
        "",
        "## Factory background",
        "",
        "Pink and brown noise, mains hum with harmonics, a distant machine's rotating harmonics (amplitude"
        " fluctuating), occasional clanks ringing random metal modes, and in hall B a babble band of 0.3-3 kHz.",
        "",
        "| hall | mains hum | distant machine | clanks per s | babble |",
        "|---|---|---|---|---|",
    ]
    for hall, env in HALLS.items():
        lines.append(f"| {hall} | {env['hum_hz']:g} Hz | {env['machine_hz'][0]:g}-{env['machine_hz'][1]:g} Hz |"
                     f" {env['clank_rate']:g} | {'yes' if env['babble'] else 'no'} |")
    if manifest.get("variant") == "realistic":

        lines += ["", readme_section()]
    lines += ["", "## Machine types", ""]
    for key, name in manifest["names"].items():
        model = get_machine(key)
        title = f"### {name}" + (f" (generated as `{key}`)" if name != key else "")
        lines += [title, "", model.description[:1].upper() + model.description[1:] + ".", ""]
        lines.append("- Attributes" + (" (hidden: written `noAttribute`)" if model.hidden else "") + ":")
        for attr, note in model.attribute_notes.items():
            src = ", ".join(map(str, model.attribute_values["source"][attr]))
            tgt = ", ".join(map(str, model.attribute_values["target"][attr]))
            lines.append(f"  - `{attr}`: {note}. Source: {src}; target: {tgt}.")
        lines.append(f"- Domain shift: {model.shift}. Halls: source {model.halls['source']},"
                     f" target {model.halls['target']}. SNR (dB): source {model.snr_db['source'][0]:g} to"
                     f" {model.snr_db['source'][1]:g}, target {model.snr_db['target'][0]:g} to"
                     f" {model.snr_db['target'][1]:g}.")
        lines.append("- Anomalies:")
        for kind in model.anomalies:
            lines.append(f"  - `{kind}`: {model.anomaly_notes[kind]}.")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_readme(root: str | os.PathLike, manifest: dict) -> Path:
    """Write ``root/README.md`` and return its path."""
    path = Path(root) / "README.md"
    path.write_text(dataset_readme(manifest))
    return path
