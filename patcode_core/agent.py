"""PatAgent: a conversation that keeps its history and talks through an LLMManager."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from patcode_core.manager import LLMManager
from patcode_core.safe_text import without_surrogates
from patcode_core.types import CompletionResult, Message, StreamEvent


class PatAgent:
    """A conversation with PatCode; ``agent.llm_manager`` is the manager it uses.

    :param llm_manager: the manager to send turns through (default: a new one).
    :param system_prompt: an optional first message that frames every turn.
    """

    def __init__(self, llm_manager: LLMManager | None = None, system_prompt: str | None = None) -> None:
        self.llm_manager = llm_manager if llm_manager is not None else LLMManager()
        self.system_prompt = system_prompt
        self.history: list[Message] = []
        #: Names this conversation in the usage history; ``clear()`` starts a new one.
        self.conversation = uuid.uuid4().hex

    def messages_for(self, text: str) -> list[Message]:
        """The full message list a new turn ``text`` sends."""
        head = [Message("system", self.system_prompt)] if self.system_prompt else []
        return [*head, *self.history, Message("user", text)]

    async def ask(self, text: str) -> CompletionResult:
        """Send one turn with the whole history; the history grows only on success."""
        result = await self.llm_manager.complete(self.messages_for(text), conversation=self.conversation)
        self.remember(text, result.text)
        return result

    async def stream(self, text: str) -> AsyncIterator[StreamEvent]:
        """:meth:`LLMManager.stream` one turn with the whole history; kept only if the answer finished."""
        async for event in self.llm_manager.stream(self.messages_for(text), conversation=self.conversation):
            if isinstance(event, CompletionResult):
                self.remember(text, event.text)
            yield event

    def remember(self, text: str, answer: str) -> None:
        """Add one finished turn to the history.

        An answer holding lone surrogates (a provider sent ``"\ud800"``) is kept
        with U+FFFD in their place, so the next turn can still be sent as UTF-8.
        """
        self.history.extend([Message("user", text), Message("assistant", without_surrogates(answer))])

    def clear(self) -> None:
        """Forget the conversation and start a new one."""
        self.history.clear()
        self.conversation = uuid.uuid4().hex
