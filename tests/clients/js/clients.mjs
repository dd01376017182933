// One scenario per run, against the gateway at BASE_URL: `node clients.mjs <scenario>`.
// Prints one JSON line with what the client got back, for tests/clients/test_js_clients.py to check.
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { generateObject, generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { createAnthropic } from "@ai-sdk/anthropic";

const base = process.env.BASE_URL;
const model = process.env.MODEL || "claude-sonnet-4-5";
const key = "client-key-js";
const hello = [{ role: "user", content: "Hello from JavaScript" }];
const weather = {
  type: "object",
  properties: { city: { type: "string" } },
  required: ["city"],
  additionalProperties: false,
};

const openai = () => new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });
const anthropic = () => new Anthropic({ baseURL: base, apiKey: key, maxRetries: 0 });
// supportsStructuredOutputs: the gateway takes a json_schema response format (docs/translation.md).
const compatible = () =>
  createOpenAICompatible({ name: "gateway", baseURL: `${base}/v1`, apiKey: key, supportsStructuredOutputs: true })(model);
const aiAnthropic = () => createAnthropic({ baseURL: `${base}/v1`, apiKey: key })(model);

const scenarios = {
  async "openai-text"() {
    const r = await openai().chat.completions.create({ model, messages: hello });
    return { text: r.choices[0].message.content, model: r.model };
  },
  async "openai-stream"() {
    const stream = await openai().chat.completions.create({ model, messages: hello, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    return { text };
  },
  async "openai-tools"() {
    const r = await openai().chat.completions.create({
      model,
      messages: [{ role: "user", content: "call get_weather" }],
      tools: [{ type: "function", function: { name: "get_weather", parameters: weather } }],
    });
    const call = r.choices[0].message.tool_calls[0];
    return { name: call.function.name, args: JSON.parse(call.function.arguments), finish: r.choices[0].finish_reason };
  },
  async "anthropic-text"() {
    const r = await anthropic().messages.create({ model, max_tokens: 100, messages: hello });
    return { text: r.content[0].text, model: r.model };
  },
  async "anthropic-stream"() {
    const stream = anthropic().messages.stream({ model, max_tokens: 100, messages: hello });
    const final = await stream.finalMessage();
    return { text: final.content[0].text, model: final.model };
  },
  async "anthropic-tools"() {
    const r = await anthropic().messages.create({
      model,
      max_tokens: 100,
      messages: [{ role: "user", content: "call get_weather" }],
      tools: [{ name: "get_weather", input_schema: weather }],
    });
    const call = r.content.find((b) => b.type === "tool_use");
    return { name: call.name, args: call.input, stop: r.stop_reason };
  },
  async "ai-compatible-text"() {
    const r = await generateText({ model: compatible(), prompt: "Hello from the AI SDK" });
    return { text: r.text };
  },
  async "ai-compatible-stream"() {
    const r = streamText({ model: compatible(), prompt: "Hello streaming AI SDK" });
    let text = "";
    for await (const part of r.textStream) text += part;
    return { text };
  },
  async "ai-compatible-tools"() {
    const r = await generateText({
      model: compatible(),
      prompt: "call get_weather",
      tools: { get_weather: tool({ inputSchema: jsonSchema(weather), execute: async ({ city }) => `sunny in ${city}` }) },
      stopWhen: stepCountIs(2),
    });
    return { text: r.text, calls: r.steps.flatMap((s) => s.toolCalls.map((c) => ({ name: c.toolName, args: c.input }))) };
  },
  async "ai-compatible-object"() {
    const r = await generateObject({ model: compatible(), schema: jsonSchema(weather), prompt: "the weather" });
    return { object: r.object };
  },
  async "ai-anthropic-text"() {
    const r = await generateText({ model: aiAnthropic(), prompt: "Hello from the AI SDK's Anthropic provider" });
    return { text: r.text };
  },
  async "ai-anthropic-stream"() {
    const r = streamText({ model: aiAnthropic(), prompt: "Hello streaming Anthropic provider" });
    let text = "";
    for await (const part of r.textStream) text += part;
    return { text };
  },
  async "ai-anthropic-tools"() {
    const r = await generateText({
      model: aiAnthropic(),
      prompt: "call get_weather",
      tools: { get_weather: tool({ inputSchema: jsonSchema(weather), execute: async ({ city }) => `sunny in ${city}` }) },
      stopWhen: stepCountIs(2),
    });
    return { text: r.text, calls: r.steps.flatMap((s) => s.toolCalls.map((c) => ({ name: c.toolName, args: c.input }))) };
  },
  async "ai-anthropic-object"() {
    const r = await generateObject({ model: aiAnthropic(), schema: jsonSchema(weather), prompt: "the weather" });
    return { object: r.object };
  },
};

try {
  console.log(JSON.stringify({ ok: await scenarios[process.argv[2]]() }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.message ?? error), status: error?.status ?? error?.statusCode ?? null }));
}
