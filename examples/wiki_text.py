"""The bundled real text for decoder LMs: gensim's shortened English Wikipedia dump (101 articles), with the wiki
markup cleaned by gensim's ``filter_wiki``. The split is fixed here: every fifth article is held out for evaluation,
the rest are for calibration, so no evaluation text is ever calibrated on.

    compressor compress MODEL --task text-generation --calib examples.wiki_text:calibration --eval examples.wiki_text:evaluation
"""

from __future__ import annotations

import bz2
import functools
import importlib.util
import re
from pathlib import Path

DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
HELD_OUT_EVERY = 5


def dump_path() -> Path:
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the gensim wheel is not installed (make setup installs it)")
    return Path(spec.submodule_search_locations[0]) / "test" / "test_data" / DUMP


@functools.lru_cache(maxsize=1)
def articles() -> tuple[tuple[str, str], ...]:
    """(title, clean text) of every article with at least 200 characters of prose, in dump order."""
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    out = []
    with bz2.open(dump_path(), "rb") as f:
        for title, text, _pageid in extract_pages(f):
            clean = re.sub(r"'{2,}", "", filter_wiki(text))  # bold/italic quotes filter_wiki leaves
            clean = re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+", " ", clean)).strip()
            if len(clean) >= 200 and not text.lstrip().lower().startswith("#redirect"):
                out.append((title, clean))
    return tuple(out)


def calibration() -> list[str]:
    return [text for i, (_t, text) in enumerate(articles()) if i % HELD_OUT_EVERY != 0]


def evaluation() -> list[str]:
    return [text for i, (_t, text) in enumerate(articles()) if i % HELD_OUT_EVERY == 0]
