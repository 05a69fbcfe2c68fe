"""The page's words: plain functions of plain values, tested without a browser.

``sd35.studio`` keeps the older wording functions (status, progress, result and details
lines); the ones here are the page's newer texts: errors with their title and links, what a
"Use these settings" changed, the aspect-ratio choice that matches a size, Star or Unstar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction

from sd35.errors import InvalidRequestError, QuotaExceededError, SD35Error
from sd35.params import Size, parse_ratio
from sd35.space_client import SpaceStatus

#: The aspect-ratio radio's choice when width and height match no preset.
CUSTOM_RATIO = "Custom"
#: The sign-up page ZeroGPU's quota message links to ("Create a free account"); the Space's
#: HTML is reduced to plain text before it reaches us, so the link is put back here.
SIGNUP_URL = "https://huggingface.co/join"
TOKEN_URL = "https://huggingface.co/settings/tokens"
_SIGNUP_PHRASES = ("Create a free account", "Sign-up on Hugging Face")
#: The advice ``QuotaExceededError`` gives when no token is set.
_TOKEN_ADVICE = "Set a Hugging Face token (HF_TOKEN)"

#: Form fields in the order the form hands them over, with the words used for them.
FIELD_LABELS = {
    "prompt": "prompt",
    "negative_prompt": "negative prompt",
    "width": "width",
    "height": "height",
    "guidance_scale": "guidance",
    "num_inference_steps": "steps",
    "seed": "seed",
    "randomize_seed": "randomize seed",
}
#: Errors about these fields are shown under the prompt; the others under the settings.
PROMPT_FIELDS = frozenset({"prompt", "negative_prompt"})


def startup_line(status: SpaceStatus, *, space: str) -> str | None:
    """The one terminal line printed when the Space cannot be reached at start, else None."""
    if status.reachable:
        return None
    problem = (status.problem or "no answer").rstrip(".")
    return (
        f"sd35: the Space {space} cannot be reached ({problem}). "
        "The page is up; start with --demo to try it with a local stand-in Space."
    )


def error_markdown(error: SD35Error, *, space: str = "") -> str:
    """A failure, once, with its own title: Markdown for the run status line.

    The quota message gets its sign-up link back as a real link, keeps the time to try again
    (already in the message) and says how to give the studio a token."""
    if not isinstance(error, QuotaExceededError):
        return f"⚠️ **{error.title}** — {_escape(error.message)}"
    links = {phrase: f"[{phrase}]({SIGNUP_URL})" for phrase in _SIGNUP_PHRASES}
    links[_TOKEN_ADVICE] = (
        f"Set a [Hugging Face token]({TOKEN_URL}): start the studio with `HF_TOKEN` set "
        "or with `--token-file FILE`"
    )
    message = _escape_around(error.message, links)
    if space and not space.startswith("http"):
        message += f" The Space: [{space}](https://huggingface.co/spaces/{space})."
    return f"⚠️ **{error.title}** — {message}"


def field_error(error: InvalidRequestError) -> tuple[str, str]:
    """``(prompt_error, settings_error)``: a form mistake, beside the field it is about."""
    text = f"⚠️ {_escape(error.message)}"
    return (text, "") if error.field in PROMPT_FIELDS else ("", text)


def ratio_for_size(width: float | None, height: float | None, presets: Mapping[str, Size]) -> str:
    """The preset for ``width``×``height``: the one of exactly that size, or of exactly that
    ratio (768×512 is 3:2 though the preset's size is 1024×672), else ``CUSTOM_RATIO``."""
    if not width or not height:
        return CUSTOM_RATIO
    for name, size in presets.items():
        if size.width == width and size.height == height:
            return name
    if not (float(width).is_integer() and float(height).is_integer()):
        return CUSTOM_RATIO
    exact = Fraction(int(width), int(height))
    return next((name for name in presets if parse_ratio(name) == exact), CUSTOM_RATIO)


def swapped_ratio(choice: str | None, presets: Mapping[str, Size]) -> str:
    """The preset with the sides of ``choice`` exchanged (16:9 → 9:16), else custom."""
    if choice and ":" in choice:
        left, right = choice.split(":", 1)
        if f"{right}:{left}" in presets:
            return f"{right}:{left}"
    return CUSTOM_RATIO


def changes_note(source: str, before: Mapping[str, object], after: Mapping[str, object]) -> str:
    """What "Use these settings" / "Send to form" changed, in one line."""
    changed = [
        _describe(name, after[name])
        for name in FIELD_LABELS
        if name in after and _differs(before.get(name), after[name])
    ]
    if not changed:
        return f"✔ Form already matches {source}: nothing changed."
    return f"✔ Form filled from {source}. Changed: {', '.join(changed)}."


def _differs(old: object, new: object) -> bool:
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return abs(float(old) - float(new)) > 1e-9
    return (old or "") != (new or "")


def _describe(name: str, value: object) -> str:
    label = FIELD_LABELS[name]
    if name in PROMPT_FIELDS:
        return label
    if isinstance(value, bool):
        return f"{label} {'on' if value else 'off'}"
    if isinstance(value, float) and value.is_integer() and name != "guidance_scale":
        value = int(value)
    return f"{label} {value:g}" if isinstance(value, float) else f"{label} {value}"


def star_label(starred: bool | None) -> str:
    """The star button's words for the selected image."""
    return "★ Unstar" if starred else "☆ Star"


def starred_caption(caption: str, starred: bool) -> str:
    """A History caption with a visible mark on starred images."""
    return f"★ {caption}" if starred else caption


def seed_caption(seed: int) -> str:
    return f"Seed {seed}"


def run_button_label(running: bool) -> str:
    """Generate's words: while a job runs it says what a click does now (adds to the queue)."""
    return "Add to queue" if running else "Generate"


def _escape_around(text: str, replacements: Mapping[str, str]) -> str:
    """``text`` escaped as Markdown, except that each key found is replaced by its value."""
    pattern = "|".join(re.escape(key) for key in replacements)
    parts = re.split(f"({pattern})", text)
    return "".join(replacements.get(part) or _escape(part) for part in parts)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>])")


def _escape(text: str) -> str:
    """Plain text shown as Markdown: no accidental emphasis, links or HTML."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
