// /api/v1/stream: one EventSource per page. EventSource resends Last-Event-ID by itself when
// it reconnects, so the gateway resumes where the page left off and nothing arrives twice.
import { useEffect, useState } from "preact/hooks";
import { storedToken } from "./api";

type Listener = (envelope: { subject?: string; type?: string; sequence?: number }) => void;

const listeners = new Set<Listener>();
const stateListeners = new Set<(online: boolean) => void>();
let source: EventSource | null = null;
let online = false;
const seen = new Set<string>();

function setOnline(value: boolean): void {
  online = value;
  for (const listener of stateListeners) listener(value);
}

function ensureStream(): void {
  const token = storedToken();
  if (source !== null || token === null) return;
  source = new EventSource(`/api/v1/stream?access_token=${encodeURIComponent(token)}`);
  source.onopen = () => setOnline(true);
  source.onerror = () => setOnline(false);
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
    source.addEventListener(type, deliver as EventListener);
  }
}

export function closeStream(): void {
  source?.close();
  source = null;
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
