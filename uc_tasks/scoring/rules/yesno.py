"""The reader of the general-ability yes/no questions (MME, POPE, our generated stand-in): ``yes``, ``no`` or None.

The authors' MME scorer, and lmms-eval's (``parse_pred_ans``: "no" anywhere in the first four characters), read
"Not sure" or "Nothing ..." as "No". This reader takes whole words only: the answer's first word when it is yes or
no, else the one of the two that the answer holds as a whole word (both, or neither: None, counted wrong).
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z]+")
YES, NO = "yes", "no"


def read_yes_no(answer: str) -> str | None:
    """``yes`` / ``no`` as the answer says it, or None when it says neither or both ("Not sure" is None)."""
    words = _WORD.findall(answer.lower()) if isinstance(answer, str) else []
    if not words:
        return None
    if words[0] in (YES, NO):
        return words[0]
    found = {w for w in words if w in (YES, NO)}
    return found.pop() if len(found) == 1 else None
