"""Front ends: waveforms to time-frequency features (imports ``storage``, ``data``, ``signal``).

:mod:`.logmel` is the official baseline's log-mel (librosa filters, torch STFT); :mod:`.fbank` is
the Kaldi fbank that BEATs and EAT expect (torchaudio's, which does not import here).
"""
