"""Errors raised when a backbone checkpoint is missing, malformed or mismatched."""

from __future__ import annotations

# Where the official weights are published, quoted in every checkpoint error.
PUBLISHED_AT = {
    "beats": "https://github.com/microsoft/unilm/tree/master/beats (BEATs_iter3.pt, BEATs_iter3_plus_AS2M.pt, "
    "BEATs_iter3_plus_AS2M_finetuned_on_AS2M_cpt2.pt)",
    "eat": "https://github.com/cwx-worst-one/EAT (fairseq .pt) or the Hugging Face repos "
    "worstchan/EAT-base_epoch30_pretrain and worstchan/EAT-base_epoch30_finetune_AS2M",
    "hubert": "Hugging Face facebook/hubert-base-ls960 (save it locally, point the config at the folder)",
    "wav2vec2": "Hugging Face facebook/wav2vec2-base (save it locally, point the config at the folder)",
    "wavlm": "Hugging Face microsoft/wavlm-base-plus (save it locally, point the config at the folder)",
    "unispeech_sat": "Hugging Face microsoft/unispeech-sat-base (save it locally, point the config at the folder)",
}


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, of the wrong format, or does not match the model."""


def checkpoint_error(name: str, path, problem: str) -> CheckpointError:
    """Build a ``CheckpointError`` naming the backbone, the file, the problem and where the
    official weights are published."""
    where = PUBLISHED_AT.get(name, "the model's official release")
    return CheckpointError(f"{name} checkpoint {path}: {problem}. Official weights: {where}.")


def check_state_dict_keys(name: str, path, expected: set[str], found: set[str], limit: int = 8) -> None:
    """Raise ``CheckpointError`` listing missing and unexpected keys unless the sets are equal."""
    missing = sorted(expected - found)
    unexpected = sorted(found - expected)
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[:limit]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:limit]})")
    raise checkpoint_error(name, path, "state dict does not match the model: " + "; ".join(parts))
