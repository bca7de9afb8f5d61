// One ticket: the fields the caller may change (and only those), notes, conversation links,
// the linked conversation's transcript, and the activity timeline. A save that meets a
// newer version (412) says what changed and keeps what the user typed. The live stream says
// an event happened before the activity log (a separate consumer) has stored it, so the
// timeline is fetched again, with backoff, until it holds the newest sequence announced.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import {
  ApiError,
  call,
  errorText,
  PRIORITIES,
  PRIORITY_LABELS,
  STATUS_LABELS,
  type ActivityEntry,
  type ConversationMessage,
  type Priority,
  type Status,
  type Ticket,
} from "./api";
import type { Session } from "./app";
import { RESYNC, useLive } from "./live";
import { ErrorAlert } from "./notices";
import { onLinkClick } from "./router";
import transitions from "./transitions.json";

const TRANSITIONS = transitions as Record<Status, Partial<Record<Status, "work" | "admin">>>;
const FIELDS = ["subject", "description", "priority", "status", "assignee_id"] as const;
type Field = (typeof FIELDS)[number];
type Draft = Record<Field, string>;

const FIELD_LABELS: Record<Field, string> = {
  subject: "Subject",
  description: "Description",
  priority: "Priority",
  status: "Status",
  assignee_id: "Assignee",
};

function draftOf(ticket: Ticket): Draft {
  return {
    subject: ticket.subject,
    description: ticket.description,
    priority: ticket.priority,
    status: ticket.status,
    assignee_id: ticket.assignee_id ?? "",
  };
}

export function TicketView({ session, ticketId }: { session: Session; ticketId: string }) {
  const [ticket, setTicket] = useState<Ticket | null>(null);
  const [base, setBase] = useState<Draft | null>(null);
  const [draft, setDraft] = useState<Draft | null>(null);
  const [activity, setActivity] = useState<ActivityEntry[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [conflict, setConflict] = useState<{ fresh: Ticket; changed: Field[] } | null>(null);
  // The newest sequence the live stream announced for this ticket, and the pending re-fetch.
  const announced = useRef(0);
  const catchUp = useRef<{ timer: number; attempt: number } | null>(null);

  const fetchActivity = useCallback(async (): Promise<ActivityEntry[]> => {
    return (await call<{ items: ActivityEntry[] }>("GET", `/api/v1/tickets/${ticketId}/activity?limit=200`)).data.items;
  }, [ticketId]);

  const showActivity = useCallback(
    (entries: ActivityEntry[]) => {
      setActivity(entries);
      const newest = entries.at(-1)?.sequence ?? 0;
      const attempt = catchUp.current?.attempt ?? 0;
      if (catchUp.current !== null) window.clearTimeout(catchUp.current.timer);
      catchUp.current = null;
      // About 30 s in all; after that the next event or reload shows it.
      if (newest >= announced.current || attempt >= 8) return;
      const timer = window.setTimeout(() => {
        fetchActivity().then(showActivity, () => undefined);
      }, Math.min(4000, 250 * 2 ** attempt));
      catchUp.current = { timer, attempt: attempt + 1 };
    },
    [fetchActivity],
  );
  useEffect(
    () => () => {
      if (catchUp.current !== null) window.clearTimeout(catchUp.current.timer);
    },
    [],
  );

  const load = useCallback(
    async (keepDraft: boolean) => {
      try {
        const fresh = (await call<Ticket>("GET", `/api/v1/tickets/${ticketId}`)).data;
        const entries = await fetchActivity();
        setTicket(fresh);
        showActivity(entries);
        const freshDraft = draftOf(fresh);
        setBase((oldBase) => {
          setDraft((oldDraft) => {
            if (!keepDraft || oldDraft === null || oldBase === null) return freshDraft;
            // Keep every field the user changed; take the rest from the new version.
            const merged = { ...freshDraft };
            for (const field of FIELDS) if (oldDraft[field] !== oldBase[field]) merged[field] = oldDraft[field];
            return merged;
          });
          return freshDraft;
        });
        setError(null);
      } catch (failure) {
        setError(errorText(failure));
      }
    },
    [ticketId, fetchActivity, showActivity],
  );

  useEffect(() => {
    void load(false);
  }, [load]);
  useLive(
    useCallback(
      (envelope) => {
        if (envelope.subject !== ticketId && envelope.type !== RESYNC) return;
        if (typeof envelope.sequence === "number") announced.current = Math.max(announced.current, envelope.sequence);
        void load(true);
      },
      [ticketId, load],
    ),
  );

  if (ticket === null || draft === null || base === null) {
    return error !== null ? <ErrorAlert text={error} /> : <p role="status">Loading the ticket…</p>;
  }

  const mine = ticket.assignee_id === session.me.id;
  const canWork = session.can("edit_tickets") || (session.me.role === "member" && mine);
  const canAdmin = session.can("close_tickets");
  const allowed = Object.entries(TRANSITIONS[ticket.status]).filter(([, need]) => (need === "work" ? canWork : canAdmin)).map(([to]) => to as Status);
  const canAssign = session.can("assign_tickets");
  const readOnly = !canWork && !canAssign && allowed.length === 0;
  const dirty = FIELDS.filter((f) => draft[f] !== base[f]);

  const save = async (event: Event): Promise<void> => {
    event.preventDefault();
    setSaved(null);
    setError(null);
    const body: Record<string, unknown> = {};
    for (const field of dirty) body[field] = field === "assignee_id" && draft[field] === "" ? null : draft[field];
    try {
      const answer = await call<Ticket>("PATCH", `/api/v1/tickets/${ticketId}`, { body, headers: { "If-Match": `"${ticket.version}"` } });
      setTicket(answer.data);
      setBase(draftOf(answer.data));
      setDraft(draftOf(answer.data));
      setConflict(null);
      setSaved("Saved.");
      void load(false);
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 412) {
        try {
          const fresh = (await call<Ticket>("GET", `/api/v1/tickets/${ticketId}`)).data;
          const freshDraft = draftOf(fresh);
          setConflict({ fresh, changed: FIELDS.filter((f) => freshDraft[f] !== base[f]) });
        } catch (again) {
          setError(errorText(again));
        }
      } else {
        setError(errorText(failure));
      }
    }
  };

  const input = (field: Field) => ({
    id: `ticket-${field}`,
    value: draft[field],
    onInput: (e: Event) => setDraft({ ...draft, [field]: (e.currentTarget as HTMLInputElement).value }),
  });

  return (
    <article aria-labelledby="ticket-title">
      <p>
        <a href="/" onClick={onLinkClick}>
          ← All tickets
        </a>
      </p>
      <h1 id="ticket-title">
        #{ticket.number} {ticket.subject}
      </h1>
      {readOnly && <p class="hint">You can read this ticket; your role cannot change it.</p>}
      {conflict !== null && (
        <div class="conflict" role="alert">
          <p>
            Someone changed this ticket while you were editing it (now version {conflict.fresh.version}):{" "}
            {conflict.changed.length > 0
              ? conflict.changed.map((f) => `${FIELD_LABELS[f]} is now “${describe(f, draftOf(conflict.fresh)[f], session)}”`).join("; ")
              : "its notes or links changed"}
            . Your edits were not saved.
          </p>
          <button
            type="button"
            onClick={() => {
              setConflict(null);
              void load(true);
            }}
          >
            Load their changes and keep my edits
          </button>
        </div>
      )}
      <ErrorAlert text={error} />
      <form class="card ticket-fields" onSubmit={(e) => void save(e)} aria-label="Ticket fields">
        <label for="ticket-subject">Subject</label>
        <input {...input("subject")} readOnly={!canWork} />
        <label for="ticket-description">Description</label>
        <textarea {...input("description")} rows={5} readOnly={!canWork} />
        <label for="ticket-status">Status</label>
        <select {...input("status")} onChange={input("status").onInput} disabled={allowed.length === 0}>
          <option value={ticket.status}>{STATUS_LABELS[ticket.status]}</option>
          {allowed.map((s) => (
            <option value={s} key={s}>
              {STATUS_LABELS[s]}
            </option>
          ))}
        </select>
        <label for="ticket-priority">Priority</label>
        <select {...input("priority")} onChange={input("priority").onInput} disabled={!canWork}>
          {PRIORITIES.map((p) => (
            <option value={p} key={p}>
              {PRIORITY_LABELS[p as Priority]}
            </option>
          ))}
        </select>
        <label for="ticket-assignee_id">Assignee</label>
        <select {...input("assignee_id")} onChange={input("assignee_id").onInput} disabled={!canAssign}>
          <option value="">Unassigned</option>
          {session.members.map((m) => (
            <option value={m.id} key={m.id}>
              {m.email}
            </option>
          ))}
        </select>
        {!readOnly && (
          <div class="actions">
            <button type="submit" class="primary" disabled={dirty.length === 0}>
              Save changes
            </button>
            {saved !== null && <span role="status">{saved}</span>}
          </div>
        )}
      </form>
      {canWork && <NoteForm ticketId={ticketId} onAdded={() => void load(true)} />}
      <Conversations ticket={ticket} canLink={canWork} onChanged={() => void load(true)} />
      <section aria-labelledby="activity-title">
        <h2 id="activity-title">Activity</h2>
        <ol class="timeline">
          {activity.map((entry) => (
            <li key={entry.sequence}>
              <strong>{entryTitle(entry)}</strong> by {entry.actor.type === "member" ? session.memberName(entry.actor.id) : entry.actor.type} ·{" "}
              <time dateTime={entry.time}>{new Date(entry.time).toLocaleString()}</time>
              <ul>
                {Object.entries(entry.changes).map(([field, change]) => (
                  <li key={field}>{changeText(field, change, session, entry.type === "ticket.created")}</li>
                ))}
              </ul>
            </li>
          ))}
        </ol>
      </section>
    </article>
  );
}

function describe(field: string, value: unknown, session: Session): string {
  if (value === null || value === undefined || value === "") return field === "assignee_id" ? "Unassigned" : "(empty)";
  if (field === "assignee_id") return session.memberName(String(value));
  if (Array.isArray(value)) return value.length === 0 ? "none" : value.map(String).join(", ");
  if (field === "status") return STATUS_LABELS[value as Status] ?? String(value);
  if (field === "priority") return PRIORITY_LABELS[value as Priority] ?? String(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

function entryTitle(entry: ActivityEntry): string {
  const words = entry.type.replace(/^ticket\./, "").replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function changeText(field: string, change: unknown, session: Session, created: boolean): string {
  const name = field.replace(/_id$/, "").replace(/_/g, " ");
  if (typeof change === "object" && change !== null && ("from" in change || "to" in change)) {
    const { from, to } = change as { from?: unknown; to?: unknown };
    // A new ticket's fields have no "from"; a change from nothing (unassigned) says so.
    const fromNothing = (from === null || from === undefined) && field !== "assignee_id";
    if (created || fromNothing) return `${name}: ${describe(field, to, session)}`;
    return `${name}: ${describe(field, from, session)} → ${describe(field, to, session)}`;
  }
  return `${name}: ${describe(field, change, session)}`;
}

function NoteForm({ ticketId, onAdded }: { ticketId: string; onAdded: () => void }) {
  const [body, setBody] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    try {
      await call("POST", `/api/v1/tickets/${ticketId}/notes`, { body: { body } });
      setBody("");
      setError(null);
      onAdded();
    } catch (failure) {
      setError(errorText(failure));
    }
  };
  return (
    <form class="card" onSubmit={(e) => void submit(e)} aria-label="Add a note">
      <label for="note-body">Internal note</label>
      <textarea id="note-body" rows={3} value={body} onInput={(e) => setBody(e.currentTarget.value)} aria-describedby={error !== null ? "note-error" : undefined} />
      {error !== null && <p id="note-error" class="field-error">{error}</p>}
      <button type="submit">Add note</button>
    </form>
  );
}

function Conversations({ ticket, canLink, onChanged }: { ticket: Ticket; canLink: boolean; onChanged: () => void }) {
  const [linkId, setLinkId] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState<{ id: string; messages: ConversationMessage[] } | null>(null);
  const act = async (work: () => Promise<unknown>): Promise<void> => {
    try {
      await work();
      setError(null);
      onChanged();
    } catch (failure) {
      setError(errorText(failure));
    }
  };
  const show = async (id: string): Promise<void> => {
    try {
      const conversation = (await call<{ messages: ConversationMessage[] }>("GET", `/api/v1/conversations/${encodeURIComponent(id)}`)).data;
      setOpen({ id, messages: conversation.messages });
      setError(null);
    } catch (failure) {
      setError(errorText(failure));
    }
  };
  return (
    <section aria-labelledby="conversations-title" class="card">
      <h2 id="conversations-title">Conversations</h2>
      {ticket.conversation_ids.length === 0 && <p>No conversation is linked.</p>}
      <ul>
        {ticket.conversation_ids.map((id) => (
          <li key={id}>
            <button type="button" class="link" onClick={() => void show(id)}>
              Open conversation {id}
            </button>
            {canLink && (
              <button type="button" onClick={() => void act(() => call("DELETE", `/api/v1/tickets/${ticket.id}/conversations/${encodeURIComponent(id)}`))}>
                Unlink {id}
              </button>
            )}
          </li>
        ))}
      </ul>
      {canLink && (
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            void act(() => call("POST", `/api/v1/tickets/${ticket.id}/conversations`, { body: { conversation_id: linkId } })).then(() => setLinkId(""));
          }}
        >
          <label for="link-id">Conversation id to link</label>
          <input id="link-id" value={linkId} onInput={(e) => setLinkId(e.currentTarget.value)} />
          <button type="submit">Link conversation</button>
        </form>
      )}
      <ErrorAlert text={error} />
      {open !== null && (
        <div aria-label={`Transcript of ${open.id}`} role="region" class="transcript">
          <h3>Transcript of {open.id}</h3>
          {open.messages.length === 0 && <p>No messages were stored.</p>}
          <ol>
            {open.messages.map((message, index) => (
              <li key={index} class={`msg ${message.role}`}>
                <strong>{message.role}</strong>: <span class="text">{message.text}</span>
              </li>
            ))}
          </ol>
        </div>
      )}
    </section>
  );
}
