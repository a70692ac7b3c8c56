"""An exported embedding model as a sentence-transformers module: `SentenceTransformer(folder,
trust_remote_code=True)` loads the export, and `encode` runs it on the runtime it was exported for (the same
session `autocompress.load_compressed` opens: torch, ONNX Runtime or OpenVINO).

`export` writes `modules.json` naming this class into every embedding export (`export.SENTENCE_TRANSFORMERS`); sentence-transformers imports it
from the installed autocompress package (it asks for `trust_remote_code=True` to import a class outside its own
package). The module tokenizes as the model was measured (the export's tokenizer, its max length) and returns
the mean-pooled embedding as `sentence_embedding`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

class CompressedEmbedder(nn.Module):
    """A loaded embedding export: tokenize, run on its runtime, return `sentence_embedding`."""

    def __init__(self, folder: str | Path):
        super().__init__()
        from .export import load_compressed

        self.folder = Path(folder)
        self.model = load_compressed(self.folder)
        if self.model.task_type != "embedding":
            raise ValueError(f"{folder}: a {self.model.task_type} model, not an embedding model")
        self.max_seq_length = self.model.max_length

    @classmethod
    def load(cls, path: str) -> CompressedEmbedder:
        return cls(path)

    def tokenize(self, texts: list[str], **_: Any) -> dict[str, torch.Tensor]:
        from .predictions import encode

        b = encode(self.model.tokenizer, [str(t) for t in texts], None, self.model.max_length)
        return {k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")}

    def forward(self, features: dict[str, torch.Tensor], **_: Any) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            out = self.model.run(features["input_ids"].cpu(), features["attention_mask"].cpu(),
                                 features["token_type_ids"].cpu())
        features["sentence_embedding"] = torch.as_tensor(np.asarray(out, dtype=np.float32))
        return features

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.model.outputs(["a"])[0].shape[-1])

    def save(self, path: str, **_: Any) -> None:
        """The export is saved already; saving elsewhere is not supported."""
        if Path(path).resolve() != self.folder.resolve():
            raise NotImplementedError("copy the export folder instead of saving this module elsewhere")
