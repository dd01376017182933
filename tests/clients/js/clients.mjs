// One scenario per run, against the gateway at BASE_URL: `node clients.mjs <scenario>`.
// Prints one JSON line with what the client got back, for tests/clients/test_js_clients.py to check.
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { generateObject, generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { Agent, run, setDefaultOpenAIClient, setTracingDisabled, tool as agentTool } from "@openai/agents";
import { ChatAnthropic } from "@langchain/anthropic";
import { Agent as MastraAgent } from "@mastra/core/agent";
import { createTool } from "@mastra/core/tools";
import { ChatOpenAI } from "@langchain/openai";
import { z } from "zod";

const base = process.env.BASE_URL;
const model = process.env.MODEL || "claude-sonnet-4-5";
const key = process.env.API_KEY || "client-key-js";
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
// The AI SDK's own OpenAI provider: its default model speaks the Responses API.
const aiOpenAI = () => createOpenAI({ baseURL: `${base}/v1`, apiKey: key })(model);

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
  async "openai-responses"() {
    const r = await openai().responses.create({ model, input: "Hello from JavaScript" });
    return { text: r.output_text, model: r.model };
  },
  async "openai-responses-stream"() {
    const stream = openai().responses.stream({ model, input: "Hello from JavaScript" });
    const kinds = [];
    for await (const event of stream) kinds.push(event.type);
    const final = await stream.finalResponse();
    return { text: final.output_text, model: final.model, first: kinds[0], last: kinds.at(-1) };
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
  // The OpenAI Agents SDK for JavaScript: its default client pointed at the gateway (Responses API).
  async "agents-js-tools"() {
    setDefaultOpenAIClient(openai());
    setTracingDisabled(true); // by default it exports its traces to OpenAI
    const getWeather = agentTool({
      name: "get_weather", description: "Weather for a city", parameters: z.object({ city: z.string() }),
      execute: async ({ city }) => `sunny in ${city}`,
    });
    const agent = new Agent({ name: "weather", instructions: "Answer briefly.", model, tools: [getWeather] });
    const result = await run(agent, "call get_weather");
    return { text: result.finalOutput };
  },
  // Mastra's agent, with the AI SDK's Anthropic provider as its model.
  async "mastra-tools"() {
    const getWeather = createTool({
      id: "get_weather", description: "Weather for a city", inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => `sunny in ${city}`,
    });
    const agent = new MastraAgent({
      name: "weather", instructions: "Answer briefly.", model: aiAnthropic(), tools: { get_weather: getWeather },
    });
    const r = await agent.generate("call get_weather", { maxSteps: 3 });
    return { text: r.text };
  },
  // LangChain.js on the native dialect, and on Chat Completions.
  async "langchain-js-anthropic-object"() {
    const llm = new ChatAnthropic({ model, anthropicApiUrl: base, apiKey: key, maxRetries: 0 });
    const object = await llm.withStructuredOutput(weather, { method: "jsonSchema" }).invoke("the weather");
    return { object };
  },
  async "langchain-js-openai-tools"() {
    const llm = new ChatOpenAI({ model, apiKey: key, maxRetries: 0, configuration: { baseURL: `${base}/v1` } });
    const r = await llm.bindTools([{ type: "function", function: { name: "get_weather", parameters: weather } }])
      .invoke("call get_weather");
    return { calls: r.tool_calls.map((c) => ({ name: c.name, args: c.args })) };
  },
};

// The AI SDK's scenarios, the same for both of its providers: the OpenAI-compatible one against
// /v1/chat/completions and the Anthropic one against /v1/messages.
const prompts = {
  "ai-compatible-text": "Hello from the AI SDK",
  "ai-compatible-stream": "Hello streaming AI SDK",
  "ai-anthropic-text": "Hello from the AI SDK's Anthropic provider",
  "ai-anthropic-stream": "Hello streaming Anthropic provider",
  "ai-openai-text": "Hello from the AI SDK's OpenAI provider",
  "ai-openai-stream": "Hello streaming OpenAI provider",
};
// Reasoning on (forceReasoning: the provider assumes only OpenAI model names reason) and, for the
// Responses provider, stateless (store: false), so each step sends the
// reasoning items back whole rather than as references to responses the gateway does not keep.
const reasoning = {
  openai: { reasoningEffort: "low", store: false, forceReasoning: true },
  gateway: { reasoningEffort: "low" }, // the OpenAI-compatible provider's options go by its name
  anthropic: { thinking: { type: "enabled", budgetTokens: 1024 } },
};
for (const [prefix, provider] of [["ai-compatible", compatible], ["ai-anthropic", aiAnthropic], ["ai-openai", aiOpenAI]]) {
  const weatherTool = {
    get_weather: tool({ inputSchema: jsonSchema(weather), execute: async ({ city }) => `sunny in ${city}` }),
  };
  Object.assign(scenarios, {
    async [`${prefix}-text`]() {
      const r = await generateText({ model: provider(), prompt: prompts[`${prefix}-text`] });
      return { text: r.text };
    },
    async [`${prefix}-stream`]() {
      const r = streamText({ model: provider(), prompt: prompts[`${prefix}-stream`] });
      let text = "";
      for await (const part of r.textStream) text += part;
      return { text };
    },
    async [`${prefix}-tools`]() {
      const r = await generateText({
        model: provider(), prompt: "call get_weather", tools: weatherTool, stopWhen: stepCountIs(2),
      });
      const calls = r.steps.flatMap((s) => s.toolCalls.map((c) => ({ name: c.toolName, args: c.input })));
      return { text: r.text, calls };
    },
    async [`${prefix}-reasoning-tools`]() {
      const r = await generateText({
        model: provider(), prompt: "call get_weather", tools: weatherTool, stopWhen: stepCountIs(3),
        providerOptions: reasoning, maxOutputTokens: 4000,
      });
      const calls = r.steps.flatMap((s) => s.toolCalls.map((c) => ({ name: c.toolName, args: c.input })));
      return { text: r.text, calls, reasoning: r.steps.map((s) => s.reasoningText ?? null) };
    },
    async [`${prefix}-object`]() {
      const r = await generateObject({ model: provider(), schema: jsonSchema(weather), prompt: "the weather" });
      return { object: r.object };
    },
  });
}

try {
  console.log(JSON.stringify({ ok: await scenarios[process.argv[2]]() }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.message ?? error), status: error?.status ?? error?.statusCode ?? null }));
}
