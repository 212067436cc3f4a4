// Runs chat and completion requests, streaming and not, through the
// official openai client against a Kthena router, and prints what came
// back as one JSON object. Usage: node client.mjs BASE_URL MODEL [PROMPT]
import OpenAI from "openai";

const [baseURL, model, promptArg] = process.argv.slice(2);
const client = new OpenAI({ baseURL: baseURL + "/v1", apiKey: "unused", maxRetries: 0, timeout: 30000 });
const prompt = promptArg ?? "Say hello to the local platform";
const out = {};

const chat = await client.chat.completions.create({
  model, messages: [{ role: "user", content: prompt }], max_tokens: 16,
});
out.chat = { content: chat.choices[0].message.content, finish: chat.choices[0].finish_reason, usage: chat.usage };

const chatStream = await client.chat.completions.create({
  model, messages: [{ role: "user", content: prompt }], max_tokens: 16, stream: true,
  stream_options: { include_usage: true },
});
let chunks = 0, content = "", usage = null, finish = null;
for await (const c of chatStream) {
  chunks++;
  if (c.choices.length > 0) {
    content += c.choices[0].delta?.content ?? "";
    finish = c.choices[0].finish_reason ?? finish;
  }
  if (c.usage) usage = c.usage;
}
out.chatStream = { chunks, content, finish, usage };

const comp = await client.completions.create({ model, prompt, max_tokens: 16 });
out.completion = { text: comp.choices[0].text, finish: comp.choices[0].finish_reason, usage: comp.usage };

const compStream = await client.completions.create({ model, prompt, max_tokens: 16, stream: true });
let cchunks = 0, text = "";
for await (const c of compStream) {
  cchunks++;
  text += c.choices[0]?.text ?? "";
}
out.completionStream = { chunks: cchunks, text };

console.log(JSON.stringify(out));
