// Prints golden token ids for internal/tokenizer's parity tests, computed by
// Hugging Face's JavaScript tokenizer (@huggingface/tokenizers) and Jinja
// (@huggingface/jinja) implementations, independent of the Go code.
//
//   node golden.mjs TOKENIZER_DIR CASES_JSON > GOLDEN_JSON
//
// CASES_JSON is a list of cases:
//   {"name": ..., "prompt": TEXT}                      completion prompt, with the
//                                                      post-processor's special tokens
//   {"name": ..., "text": TEXT}                        plain encoding, no special tokens added
//   {"name": ..., "messages": [...], "add_generation_prompt": BOOL}
//                                                      chat: the template rendered, then
//                                                      encoded without special tokens
// The output repeats each case with "ids", "decoded" (the ids decoded back,
// special tokens kept) and "rendered" for chats, or
// with "error" for a chat when the tokenizer has no chat template.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { Template } from "@huggingface/jinja";

const [dir, casesPath] = process.argv.slice(2);
if (!dir || !casesPath) {
  console.error("usage: node golden.mjs TOKENIZER_DIR CASES_JSON");
  process.exit(2);
}
const tokenizerJSON = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
const config = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
const tokenizer = new Tokenizer(tokenizerJSON, config);
const tokenText = (t) => (t && typeof t === "object" ? t.content : t ?? "");

let template = null;
if (typeof config.chat_template === "string") {
  template = new Template(config.chat_template);
}

const out = [];
for (const c of JSON.parse(readFileSync(casesPath, "utf8"))) {
  const r = { ...c };
  if (c.messages && !template) {
    r.error = "no chat template";
  } else if (c.messages) {
    r.rendered = template.render({
      messages: c.messages,
      bos_token: tokenText(config.bos_token),
      eos_token: tokenText(config.eos_token),
      add_generation_prompt: c.add_generation_prompt,
    });
    r.ids = tokenizer.encode(r.rendered, { add_special_tokens: false }).ids;
  } else if (c.prompt !== undefined) {
    r.ids = tokenizer.encode(c.prompt, { add_special_tokens: true }).ids;
  } else {
    r.ids = tokenizer.encode(c.text, { add_special_tokens: false }).ids;
  }
  if (r.ids) r.decoded = r.ids.length ? tokenizer.decode(r.ids) : "";
  out.push(r);
}
process.stdout.write("[\n" + out.map((r) => JSON.stringify(r)).join(",\n") + "\n]\n");
