// /api/v1/stream: one EventSource per page. EventSource resends Last-Event-ID by itself when
// it reconnects after a dropped connection, so the gateway resumes where the page left off
// and nothing arrives twice. An answer that is not a stream (503 while the gateway waits for
// its broker) ends an EventSource for good instead: the page opens a new one after the
// gateway's Retry-After, and since that one starts from "now", every view reloads (RESYNC).
import { useEffect, useState } from "preact/hooks";
import { storedToken } from "./api";

export const RESYNC = "resync";
type Listener = (envelope: { subject?: string; type?: string; sequence?: number }) => void;

const REOPEN_AFTER_MS = 5000; // the gateway's Retry-After for `stream_unavailable`
const listeners = new Set<Listener>();
const stateListeners = new Set<(online: boolean) => void>();
let source: EventSource | null = null;
let reopenTimer: number | null = null;
let missedSome = false;
let online = false;
const seen = new Set<string>();

function setOnline(value: boolean): void {
  online = value;
  for (const listener of stateListeners) listener(value);
}

function ensureStream(): void {
  const token = storedToken();
  if (source !== null || token === null) return;
  const opened = new EventSource(`/api/v1/stream?access_token=${encodeURIComponent(token)}`);
  source = opened;
  opened.onopen = () => {
    setOnline(true);
    if (!missedSome) return;
    missedSome = false;
    for (const listener of listeners) listener({ type: RESYNC });
  };
  opened.onerror = () => {
    setOnline(false);
    if (opened.readyState !== EventSource.CLOSED || source !== opened) return;
    source = null;
    missedSome = true;
    reopenTimer = window.setTimeout(() => {
      reopenTimer = null;
      ensureStream();
    }, REOPEN_AFTER_MS);
  };
  const deliver = (event: MessageEvent<string>): void => {
    let envelope: { id?: string; subject?: string; type?: string; sequence?: number };
    try {
      envelope = JSON.parse(event.data) as typeof envelope;
    } catch {
      return;
    }
    if (typeof envelope.id === "string") {
      if (seen.has(envelope.id)) return;
      seen.add(envelope.id);
    }
    for (const listener of listeners) listener(envelope);
  };
  // The stream names each event by its type; listen to the ones that change what is shown.
  for (const type of [
    "message",
    "ticket.created",
    "ticket.edited",
    "ticket.status_changed",
    "ticket.priority_changed",
    "ticket.assigned",
    "ticket.unassigned",
    "ticket.note_added",
    "ticket.conversation_linked",
    "ticket.conversation_unlinked",
    "ticket.deleted",
  ]) {
    opened.addEventListener(type, deliver as EventListener);
  }
}

export function closeStream(): void {
  if (reopenTimer !== null) window.clearTimeout(reopenTimer);
  reopenTimer = null;
  source?.close();
  source = null;
  missedSome = false;
  setOnline(false);
}

export function useLive(listener: Listener): void {
  useEffect(() => {
    ensureStream();
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, [listener]);
}

export function useOnline(): boolean {
  const [value, setValue] = useState(online);
  useEffect(() => {
    ensureStream();
    stateListeners.add(setValue);
    setValue(online);
    return () => {
      stateListeners.delete(setValue);
    };
  }, []);
  return value;
}
