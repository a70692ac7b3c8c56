"""RoBERTa, XLM-RoBERTa and CamemBERT: BERT's layer layout; positions counted from the padding id.

Their byte-level BPE (RoBERTa) or SentencePiece (XLM-R, CamemBERT) tokenizers differ, but vocabulary
pruning maps token ids before the embedding table, so the tokenizer ships unchanged.
"""

from .base import Family

ROBERTA = Family("roberta", ("roberta", "xlm-roberta", "camembert"), positions_from_padding=True)
