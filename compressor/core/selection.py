"""Layer selection patterns, shared by pruning and quantization (``--exclude``, ``--prune-exclude``).

A pattern is a layer name or glob (``layer4.*``), ``re:<regex>``, or ``type:<Conv2d|Linear|Conv|Gemm|MatMul>``
(a PyTorch module class or an ONNX op type). Patterns that match nothing are reported, so a typo is seen.
"""

from __future__ import annotations

import fnmatch
import re

from compressor.core.errors import InputError


class Exclusions:
    """Layer exclusion patterns: a name or glob (``layer4.*``), ``re:<regex>``, or ``type:<Conv2d|Linear|Conv|Gemm|MatMul>``."""

    def __init__(self, patterns: list[str] | None):
        self.patterns = list(patterns or [])
        self.hits = {p: 0 for p in self.patterns}
        for p in self.patterns:
            if p.startswith("re:"):
                try:
                    re.compile(p[3:])
                except re.error as e:
                    raise InputError(f"exclusion '{p}' is not a valid regular expression: {e}")

    def match(self, name: str, op_type: str, module_type: str | None) -> str | None:
        for p in self.patterns:
            if p.startswith("type:"):
                ok = p[5:] in (op_type, module_type)
            elif p.startswith("re:"):
                ok = re.search(p[3:], name) is not None
            else:
                ok = fnmatch.fnmatchcase(name, p)
            if ok:
                self.hits[p] += 1
                return p
        return None

    def unmatched(self) -> list[str]:
        return [p for p, n in self.hits.items() if n == 0]
