// Live import progress through the npm graphql-ws client over ws, as a
// React/PWA frontend subscribes. Run by TestGraphQLWSClient (Go) against a
// test server with an import already started:
//   CRMHUB_URL, CRMHUB_TOKEN, CRMHUB_RUN_ID, CRMHUB_EXPECT_PROCESSED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.env.CRMHUB_URL.replace(/^http/, 'ws') + '/graphql';
const token = process.env.CRMHUB_TOKEN;
const runId = process.env.CRMHUB_RUN_ID;
const expectProcessed = Number(process.env.CRMHUB_EXPECT_PROCESSED);

const query = `subscription($id: ID!) { importProgress(id: $id) { id state seq processed percent } }`;

function follow(client) {
  return new Promise((resolve, reject) => {
    const events = [];
    client.subscribe(
      { query, variables: { id: runId } },
      {
        next: (v) => (v.errors ? reject(new Error(JSON.stringify(v.errors))) : events.push(v.data.importProgress)),
        error: reject,
        complete: () => resolve(events),
      },
    );
  });
}

test('importProgress: snapshot, increasing seq, final state, completion', async () => {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  try {
    const events = await follow(client);
    assert.ok(events.length >= 2, `live events, got ${events.length}`);
    assert.equal(events[0].id, runId);
    for (let i = 1; i < events.length; i++) {
      assert.ok(events[i].seq > events[i - 1].seq, `seq ${events[i].seq} after ${events[i - 1].seq}`);
    }
    const last = events.at(-1);
    assert.equal(last.state, 'SUCCEEDED');
    assert.equal(last.processed, expectProcessed);
    assert.equal(last.percent, 100);
  } finally {
    await client.dispose();
  }
});

test('a bad token closes with 4403 and is not retried', async () => {
  const closed = new Promise((resolve) => {
    const client = createClient({
      url,
      webSocketImpl: WebSocket,
      connectionParams: { Authorization: 'Bearer chub_not_a_token' },
      retryAttempts: 3,
      on: { closed: (e) => resolve({ code: e.code, client }) },
    });
    client.subscribe({ query, variables: { id: runId } }, { next() {}, error() {}, complete() {} });
  });
  const { code, client } = await closed;
  assert.equal(code, 4403);
  await client.dispose();
});
