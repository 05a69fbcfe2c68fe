"""AUTOMATIC1111's infotext parser, re-implemented from its source for the reader tests
(``modules/infotext_utils.py``, ``parse_generation_parameters``). Fooocus's A1111 importer
(``modules/meta_parser.py``, ``A1111MetadataParser.to_json``) copies its line loop, so both
reader re-implementations use :func:`a1111_split`."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

#: A1111's ``re_param``: a value is a JSON string or runs up to the next comma.
A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
A1111_SIZE = re.compile(r"^(\d+)x(\d+)$")


def a1111_split(text: str) -> tuple[str, str, str]:
    """Prompt, negative prompt and the parameter line ("" when the last line has fewer than
    three ``Key: value`` pairs): every line stripped, the first ``Negative prompt:`` line
    switches to the negative."""
    prompt = negative = ""
    done_with_prompt = False
    *lines, lastline = text.strip().split("\n")
    if len(A1111_PARAM.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[len("Negative prompt:") :].strip()
        if done_with_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    return prompt, negative, lastline


def a1111_parse(text: str) -> dict[str, Any]:
    """``parse_generation_parameters`` without the defaults it fills in afterwards."""
    prompt, negative, lastline = a1111_split(text)
    res: dict[str, Any] = {"Prompt": prompt, "Negative prompt": negative}
    for k, v in A1111_PARAM.findall(lastline):
        try:
            if v[0] == '"' and v[-1] == '"':
                with contextlib.suppress(Exception):  # A1111's unquote keeps what is not JSON
                    v = json.loads(v)
            m = A1111_SIZE.match(v)
            if m is not None:
                res[f"{k}-1"], res[f"{k}-2"] = m[1], m[2]
            else:
                res[k] = v
        except Exception:
            pass  # A1111 prints "Error parsing" and goes on
    return res
