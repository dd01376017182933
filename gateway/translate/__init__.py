"""Translation between dialects: pure functions, one module group per API pair (dict in, dict out;
event in, bytes out). chat_*: OpenAI Chat Completions <-> Anthropic Messages; native: Messages relayed."""
