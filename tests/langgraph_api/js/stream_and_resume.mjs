#!/usr/bin/env node
// The official LangGraph JS SDK against a LangGraph Server API (byway serve, langgraph dev):
//
//   node stream_and_resume.mjs <baseUrl> <graphId> [inputJSON] [resumeJSON]
//
// Creates a thread and streams a run of <graphId> on it (stream modes values,
// messages-tuple and updates). When the thread is then waiting on an interrupt, reads the
// thread state's interrupts and answers them with command {resume: <resumeJSON>},
// streaming that run to its end too. Prints every chunk as a JSON line
// ({"phase", "event", "data"}), the state it read ({"phase": "state", ...}) and, last,
// {"summary": {...}}. Exits 1 on an error event or a failed call (the error on stderr).
// An API key, if the server needs one, comes from LANGGRAPH_API_KEY as the SDK reads it.

import { Client } from "@langchain/langgraph-sdk";

const STREAM_MODE = ["values", "messages-tuple", "updates"];

function usage() {
  process.stderr.write(
    "usage: node stream_and_resume.mjs <baseUrl> <graphId> [inputJSON] [resumeJSON]\n",
  );
  process.exit(2);
}

function parseJson(name, text, fallback) {
  if (text === undefined) return fallback;
  try {
    return JSON.parse(text);
  } catch (err) {
    process.stderr.write(`${name}: not JSON: ${err.message}\n`);
    process.exit(2);
  }
}

const [baseUrl, graphId, inputText, resumeText] = process.argv.slice(2);
if (!baseUrl || !graphId) usage();
const input = parseJson("inputJSON", inputText, {
  messages: [{ role: "user", content: "Hello" }],
});
const resume = parseJson("resumeJSON", resumeText, { approved: true });

const client = new Client({ apiUrl: baseUrl });
const counts = {};
const tokens = [];
const errors = [];

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function isAiMessage(message) {
  const kind = message?.type ?? "";
  return kind === "ai" || kind === "AIMessageChunk" || kind === "AIMessage";
}

async function streamRun(phase, threadId, payload) {
  const stream = client.runs.stream(threadId, graphId, { ...payload, streamMode: STREAM_MODE });
  for await (const chunk of stream) {
    emit({ phase, event: chunk.event, data: chunk.data });
    counts[chunk.event] = (counts[chunk.event] ?? 0) + 1;
    if (chunk.event === "error") errors.push(chunk.data);
    if (chunk.event === "messages" || chunk.event.startsWith("messages|")) {
      const [message] = chunk.data;
      if (isAiMessage(message) && typeof message.content === "string" && message.content) {
        tokens.push(message.content);
      }
    }
  }
}

function interruptsOf(state) {
  if (Array.isArray(state.interrupts) && state.interrupts.length) return state.interrupts;
  return (state.tasks ?? []).flatMap((task) => task.interrupts ?? []);
}

async function main() {
  const thread = await client.threads.create();
  const threadId = thread.thread_id;
  await streamRun("run", threadId, { input });

  let state = await client.threads.getState(threadId);
  const interrupts = interruptsOf(state);
  emit({ phase: "state", next: state.next, interrupts });

  let resumed = false;
  if (interrupts.length && !errors.length) {
    await streamRun("resume", threadId, { command: { resume } });
    resumed = true;
    state = await client.threads.getState(threadId);
    emit({ phase: "state", next: state.next, interrupts: interruptsOf(state) });
  }

  const finalThread = await client.threads.get(threadId);
  emit({
    summary: {
      thread_id: threadId,
      graph_id: graphId,
      events: counts,
      tokens,
      text: tokens.join(""),
      interrupts,
      resumed,
      resume_value: resumed ? resume : null,
      next: state.next,
      values: state.values,
      thread_status: finalThread.status,
      errors,
    },
  });
  return errors.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`stream_and_resume: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
