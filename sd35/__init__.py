"""sd35: a local studio for the Stable Diffusion 3.5 Large Hugging Face Space."""

import os

# Gradio and huggingface_hub read these when they load or build a client; setting them here,
# before any sd35 module imports either library, keeps the app from phoning home.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
