// The package's entry point: wasm-bindgen's declarations of the Rust API, and
// `useWebSocket`.
export * from "./web_client.js";
export { default } from "./web_client.js";

/**
 * Makes `WebSocket` (a constructor like the browser's, e.g. the `ws` package's) the one
 * every client opens its connections with: for runtimes without a global WebSocket.
 */
export function useWebSocket(WebSocket: new (url: string, protocols?: string | string[]) => unknown): void;
