"""The studio page's panels: one builder per panel (form, output, history, PNG Info), each
returning a small dataclass of its components, and its handlers as module-level functions
that take the studio. ``sd35.ui`` lays them out and wires them together."""
