"""mlplatform's training library: the contract between a model's own code and the platform.

A model's script calls ``training.runtime.start()`` and reads everything through the ``Run`` it
gets (docs/models.md); ``python -m training launch`` is what the platform's images run. Nothing
here names a particular model: the reference models live in ``models/``.
"""
