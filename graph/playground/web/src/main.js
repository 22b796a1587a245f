// The crmhub Playground: GraphiQL wired to crmhub's GraphQL endpoint.
//
// This file is bundled by build.mjs into dist/ and served by the Go package
// graph/playground. It runs under a strict Content-Security-Policy, so it
// reads its configuration from data attributes on #graphiql instead of from
// an inline script.
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import { parse } from 'graphql';
import { setNonce } from 'get-nonce';
import { createElement, useCallback, useEffect, useRef, useState } from 'react';
import { createRoot } from 'react-dom/client';
import 'graphiql/style.css';
import './playground.css';

const root = document.getElementById('graphiql');
const endpoint = root.dataset.endpoint || '/graphql';

// Radix dialogs add a small <style> element to lock page scrolling; the
// server allows it through a per-response nonce instead of 'unsafe-inline'.
if (root.dataset.styleNonce) {
  setNonce(root.dataset.styleNonce);
}

// The endpoint may be relative ("/graphql"); subscriptions use the same URL
// with the ws/wss scheme, so they work behind TLS-terminating proxies too.
const httpURL = new URL(endpoint, window.location.href);
const wsURL = new URL(httpURL.href);
wsURL.protocol = httpURL.protocol === 'https:' ? 'wss:' : 'ws:';

// The headers editor starts with this template so support staff see where the
// token goes. GraphiQL keeps whatever they type in localStorage.
const defaultHeaders = JSON.stringify({ Authorization: 'Bearer ' }, null, 2);

const defaultQuery = `# crmhub GraphQL Playground
#
# Put your API token in the Headers tab:
#   {"Authorization": "Bearer chub_..."}
# Subscriptions (importProgress) use a
# WebSocket and send the same headers.
#
# Run: Ctrl-Enter (Cmd-Enter on a Mac).

{
  viewer {
    role
  }
}
`;

// dropEmptyBearer removes an Authorization header that still holds the bare
// template ("Bearer " with no token), so an unauthenticated request looks
// like one instead of carrying a malformed credential.
function dropEmptyBearer(headers) {
  if (!headers) {
    return headers;
  }
  const out = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === 'authorization' && /^\s*bearer\s*$/i.test(String(value))) {
      continue;
    }
    out[name] = value;
  }
  return out;
}

// With subscriptionUrl, the toolkit opens a graphql-ws client per
// subscription whose connectionParams are the headers editor's contents, so
// {"Authorization": "Bearer ..."} reaches connection_init as crmhub expects.
const fetcher = createGraphiQLFetcher({
  url: httpURL.href,
  subscriptionUrl: wsURL.href,
});

// withDocument makes sure the toolkit can tell a subscription from a query.
// GraphiQL parses the editor's text 100 ms after the last keystroke, so a run
// right after an edit comes with no documentAST, or the previous text's, and a
// subscription would go over HTTP instead of the WebSocket. Parsing the text
// actually sent is cheap and always right.
function withDocument(params, opts) {
  if (!params.query) {
    return opts;
  }
  try {
    return { ...opts, documentAST: parse(params.query) };
  } catch {
    return opts; // The server reports the syntax error.
  }
}

// newFetcher returns a fetcher with a new identity. GraphiQL fetches the
// schema again whenever its fetcher changes; Playground uses that to reload
// the schema (docs, autocompletion) once a token is pasted, since crmhub
// answers introspection only to an authenticated caller.
function newFetcher() {
  return (params, opts = {}) => {
    const headers = opts.headers ?? (params.operationName === 'IntrospectionQuery' ? storedHeaders() : undefined);
    return fetcher(params, withDocument(params, { ...opts, headers: dropEmptyBearer(headers) }));
  };
}

// storedHeaders returns the headers GraphiQL saved in localStorage. GraphiQL
// fetches the schema on load before its headers editor exists, so without
// them a reload would ask crmhub for the schema with no token.
function storedHeaders() {
  try {
    const text = window.localStorage.getItem('graphiql:headers');
    const headers = text ? JSON.parse(text) : undefined;
    return headers && typeof headers === 'object' ? headers : undefined;
  } catch {
    return undefined;
  }
}

// authorizationOf returns the Authorization value in the headers editor's
// text, or null while the text is not valid JSON.
function authorizationOf(text) {
  try {
    const headers = JSON.parse(text || '{}');
    const name = Object.keys(headers).find((k) => k.toLowerCase() === 'authorization');
    return name ? String(headers[name]) : '';
  } catch {
    return null;
  }
}

function Playground() {
  const [state, setState] = useState(() => ({ auth: undefined, fetcher: newFetcher() }));
  const timer = useRef(0);
  const onEditHeaders = useCallback((text) => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => {
      const auth = authorizationOf(text);
      setState((prev) => {
        if (auth === null || auth === prev.auth) {
          return prev;
        }
        // A bare "Bearer " template is not sent, so the schema it would get
        // is the one already shown.
        const sent = !/^\s*bearer\s*$/i.test(auth);
        return { auth, fetcher: sent ? newFetcher() : prev.fetcher };
      });
    }, 500);
  }, []);
  useEffect(() => () => clearTimeout(timer.current), []);

  return createElement(GraphiQL, {
    fetcher: state.fetcher,
    defaultQuery,
    defaultHeaders,
    shouldPersistHeaders: true,
    isHeadersEditorEnabled: true,
    defaultEditorToolsVisibility: 'headers',
    onEditHeaders,
  });
}

createRoot(root).render(createElement(Playground));
