"""What the Gemini provider tells the user, in Spanish (the default) and English.

Every text the plugin shows is here: the core's own catalogue is not part of
the plugin door (:mod:`patcode_core.plugin`), so this one is complete.
"""

from __future__ import annotations

from patcode_core.plugin import Catalogue

KEY_PAGE = "https://aistudio.google.com/apikey"
MODELS_PAGE = "https://ai.google.dev/gemini-api/docs/models"
RATE_LIMITS_PAGE = "https://ai.google.dev/gemini-api/docs/rate-limits"
REGIONS_PAGE = "https://ai.google.dev/gemini-api/docs/available-regions"
STATUS_PAGE = "https://aistudio.google.com/status"

MESSAGES = Catalogue(
    es={
        "description": "Google Gemini (API nativa generateContent, streaming por SSE)",
        "key_prefix": "GEMINI_API_KEY no parece una clave de API de Google (debería empezar con 'AIza'). Verifica tu GEMINI_API_KEY",
        # -- the key and access --
        "bad_key": "Gemini rechazó la clave de API: {detail}",
        "check_key": f"Revisa {{var}}: crea o copia una clave en {KEY_PAGE}",
        "denied": "Gemini denegó el acceso (HTTP {status} {state}): {detail}",
        "check_access": f"Revisa que {{var}} sea una clave vigente con acceso a la API de Gemini (las claves suspendidas o filtradas se reemplazan en {KEY_PAGE})",
        # -- model and address --
        "model_not_found": "el modelo '{model}' no existe en Gemini o no admite generateContent: {detail}",
        "model_cannot_generate": "el modelo '{model}' de Gemini no admite generateContent (admite: {methods})",
        "choose_model": f"Elige un modelo de {MODELS_PAGE} y ponlo en {{var}}",
        "endpoint_not_found": "{url} no responde como la API de Gemini (HTTP 404): {detail}",
        "check_url": "Verifica {var} (la de Google es https://generativelanguage.googleapis.com)",
        # -- limits and quota --
        "rate_limit": "Gemini limitó las peticiones (HTTP 429 RESOURCE_EXHAUSTED): {detail}",
        "wait": "Gemini pide esperar {seconds}s antes de reintentar",
        "rate_limit_hint": f"Espera un momento; tus límites por modelo están en {RATE_LIMITS_PAGE}",
        "daily_quota": "se agotó la cuota diaria de Gemini ({quota}): {detail}",
        "quota": "se agotó el crédito o la cuota de Gemini (HTTP {status} {state}): {detail}",
        "renews_at_midnight": f"La cuota diaria se renueva a medianoche (hora del Pacífico); para más, activa la facturación en Google AI Studio. Límites: {RATE_LIMITS_PAGE}",
        "add_credit": "Añade crédito o revisa la cuenta de facturación del proyecto en Google AI Studio",
        "precondition": "Gemini no atiende a esta cuenta desde aquí (HTTP {status} FAILED_PRECONDITION): {detail}",
        "billing_or_region": f"Activa la facturación del proyecto en Google AI Studio, o usa Gemini desde una región admitida: {REGIONS_PAGE}",
        # -- the request --
        "context_length": "la conversación no cabe en el contexto del modelo de Gemini: {detail}",
        "shorten": "Acorta la conversación o los mensajes, o elige un modelo con más contexto",
        "bad_request": "Gemini rechazó la petición (HTTP {status} {state}): {detail}",
        "check_request": "Revisa los parámetros (LLM_TEMPERATURE, LLM_MAX_TOKENS, {var})",
        # -- Google's side --
        "server": "Gemini falló (HTTP {status} {state}): {detail}",
        "retry_later": f"Reintenta en un momento; el estado del servicio está en {STATUS_PAGE}",
        "internal_hint": "Reintenta en un momento; si se repite, acorta la conversación o cambia de modelo ({var})",
        "cancelled": "Gemini canceló la petición antes de terminar (HTTP {status} CANCELLED): {detail}",
        # -- what came back --
        "not_json": "Gemini respondió HTTP {status} con {content_type}, no con JSON",
        "html_body": "una página HTML (¿un proxy o una URL base equivocada?)",
        "malformed": "respuesta de Gemini ilegible: {detail}",
        "in_stream": "Gemini envió un error en mitad de la respuesta (HTTP {status} {state}): {detail}",
        "blocked_prompt": "Gemini bloqueó el mensaje por sus filtros de contenido ({reason})",
        "blocked_answer": "Gemini cortó la respuesta por sus filtros de contenido ({reason})",
        "rephrase": "Reformula la petición; los filtros de Gemini no dependen de la configuración de PatCode",
        "unexpected_finish": "Gemini terminó la respuesta por un motivo inesperado ({reason}); podría estar incompleta",
        "thinking_used_budget": "Gemini gastó los {max_tokens} tokens de LLM_MAX_TOKENS sin escribir texto ({thoughts} tokens de razonamiento)",
        "raise_max_tokens": "Sube LLM_MAX_TOKENS: en Gemini el razonamiento cuenta dentro de ese límite",
        "empty_answer": "Gemini devolvió una respuesta vacía (finishReason {reason})",
    },
    en={
        "description": "Google Gemini (native generateContent API, streamed over SSE)",
        "key_prefix": "GEMINI_API_KEY does not look like a Google API key (it should start with 'AIza'). Check your GEMINI_API_KEY",
        "bad_key": "Gemini refused the API key: {detail}",
        "check_key": f"Check {{var}}: create or copy a key at {KEY_PAGE}",
        "denied": "Gemini denied access (HTTP {status} {state}): {detail}",
        "check_access": f"Check that {{var}} is a current key with access to the Gemini API (suspended or leaked keys are replaced at {KEY_PAGE})",
        "model_not_found": "model '{model}' does not exist on Gemini or does not support generateContent: {detail}",
        "model_cannot_generate": "Gemini model '{model}' does not support generateContent (it supports: {methods})",
        "choose_model": f"Pick a model from {MODELS_PAGE} and set it in {{var}}",
        "endpoint_not_found": "{url} does not answer like the Gemini API (HTTP 404): {detail}",
        "check_url": "Check {var} (Google's is https://generativelanguage.googleapis.com)",
        "rate_limit": "Gemini rate-limited the requests (HTTP 429 RESOURCE_EXHAUSTED): {detail}",
        "wait": "Gemini asks to wait {seconds}s before retrying",
        "rate_limit_hint": f"Wait a moment; your per-model limits are at {RATE_LIMITS_PAGE}",
        "daily_quota": "Gemini's daily quota is used up ({quota}): {detail}",
        "quota": "Gemini's credit or quota is used up (HTTP {status} {state}): {detail}",
        "renews_at_midnight": f"The daily quota renews at midnight Pacific time; for more, enable billing in Google AI Studio. Limits: {RATE_LIMITS_PAGE}",
        "add_credit": "Add credit or check the project's billing account in Google AI Studio",
        "precondition": "Gemini does not serve this account from here (HTTP {status} FAILED_PRECONDITION): {detail}",
        "billing_or_region": f"Enable billing for the project in Google AI Studio, or use Gemini from a supported region: {REGIONS_PAGE}",
        "context_length": "the conversation does not fit the Gemini model's context: {detail}",
        "shorten": "Shorten the conversation or the messages, or pick a model with a larger context",
        "bad_request": "Gemini refused the request (HTTP {status} {state}): {detail}",
        "check_request": "Check the parameters (LLM_TEMPERATURE, LLM_MAX_TOKENS, {var})",
        "server": "Gemini failed (HTTP {status} {state}): {detail}",
        "retry_later": f"Retry in a moment; the service status is at {STATUS_PAGE}",
        "internal_hint": "Retry in a moment; if it happens again, shorten the conversation or switch models ({var})",
        "cancelled": "Gemini cancelled the request before finishing (HTTP {status} CANCELLED): {detail}",
        "not_json": "Gemini answered HTTP {status} with {content_type}, not JSON",
        "html_body": "an HTML page (a proxy, or a wrong base URL?)",
        "malformed": "unreadable answer from Gemini: {detail}",
        "in_stream": "Gemini sent an error in the middle of the answer (HTTP {status} {state}): {detail}",
        "blocked_prompt": "Gemini blocked the message with its content filters ({reason})",
        "blocked_answer": "Gemini cut the answer with its content filters ({reason})",
        "rephrase": "Rephrase the request; Gemini's filters do not depend on PatCode's settings",
        "unexpected_finish": "Gemini ended the answer for an unexpected reason ({reason}); it may be incomplete",
        "thinking_used_budget": "Gemini spent the {max_tokens} tokens of LLM_MAX_TOKENS without writing text ({thoughts} thinking tokens)",
        "raise_max_tokens": "Raise LLM_MAX_TOKENS: on Gemini, thinking counts within that limit",
        "empty_answer": "Gemini returned an empty answer (finishReason {reason})",
    },
)
