// The tickets list: status tabs with counts, filters, search, sort, paging, the hint about
// matches a filter hides, and the "New ticket" form.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import {
  ApiError,
  call,
  errorText,
  PRIORITIES,
  PRIORITY_LABELS,
  STATUS_LABELS,
  STATUSES,
  type Priority,
  type Status,
  type Ticket,
  type TicketCounts,
  type TicketPage,
} from "./api";
import type { Session } from "./app";
import { useLive } from "./live";
import { ErrorAlert } from "./notices";
import { navigate, onLinkClick } from "./router";

interface Filters {
  status: Status | "active";
  priority: Priority | "";
  assignee: string; // "", "me", "none" or a member id
  q: string;
  sort: "updated" | "created" | "priority";
}

function query(filters: Filters, withStatus: boolean): URLSearchParams {
  const params = new URLSearchParams();
  if (withStatus && filters.status !== "active") params.append("status", filters.status);
  if (filters.priority !== "") params.append("priority", filters.priority);
  if (filters.assignee !== "") params.append("assignee_id", filters.assignee);
  if (filters.q.trim() !== "") params.append("q", filters.q.trim());
  return params;
}

const PAGE_SIZE = 25;
const MAX_LIMIT = 200; // the API's largest `limit`

export function TicketList({ session }: { session: Session }) {
  const [filters, setFilters] = useState<Filters>({ status: "active", priority: "", assignee: "", q: "", sort: "updated" });
  const [searchText, setSearchText] = useState("");
  const [page, setPage] = useState<TicketPage | null>(null);
  const [items, setItems] = useState<Ticket[]>([]);
  const [counts, setCounts] = useState<TicketCounts | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);

  // Loads overlap (a live event, a new search); only the newest may fill the page, or a slow
  // answer for the old filters would replace the search's results.
  const newestLoad = useRef(0);
  // How many rows "Show more" has put on the page: a live reload keeps them all (up to the
  // API's 200), so an update never takes the user back to the first 25.
  const shown = useRef(PAGE_SIZE);
  const load = useCallback(async () => {
    const thisLoad = ++newestLoad.current;
    try {
      const params = query(filters, true);
      params.set("sort", filters.sort);
      params.set("limit", String(Math.min(MAX_LIMIT, shown.current)));
      const listed = (await call<TicketPage>("GET", `/api/v1/tickets?${params.toString()}`)).data;
      const counted = (await call<TicketCounts>("GET", `/api/v1/ticket-counts?${query(filters, false).toString()}`)).data;
      if (thisLoad !== newestLoad.current) return;
      setPage(listed);
      setItems(listed.items);
      setCounts(counted);
      setError(null);
    } catch (failure) {
      if (thisLoad === newestLoad.current) setError(errorText(failure));
    }
  }, [filters]);

  useEffect(() => {
    shown.current = PAGE_SIZE; // new filters start at the top
    void load();
  }, [load]);
  useLive(useCallback(() => void load(), [load]));

  const more = async (): Promise<void> => {
    if (page?.next_cursor == null) return;
    const params = query(filters, true);
    params.set("sort", filters.sort);
    params.set("limit", String(PAGE_SIZE));
    params.set("cursor", page.next_cursor);
    try {
      const next = (await call<TicketPage>("GET", `/api/v1/tickets?${params.toString()}`)).data;
      setPage(next);
      shown.current += PAGE_SIZE;
      setItems((before) => [...before, ...next.items.filter((t) => !before.some((s) => s.id === t.id))]);
    } catch (failure) {
      setError(errorText(failure));
    }
  };

  const activeCount = counts === null ? null : STATUSES.filter((s) => s !== "closed" && s !== "spam").reduce((n, s) => n + (counts.counts[s] ?? 0), 0);
  const tabs: { value: Filters["status"]; label: string; count: number | null }[] = [
    { value: "active", label: "Active", count: activeCount },
    ...STATUSES.map((s) => ({ value: s, label: STATUS_LABELS[s], count: counts?.counts[s] ?? null })),
  ];
  // Said for a search only: "2 more in Closed — show".
  const searched = filters.q.trim() !== "";
  const hidden = (searched ? Object.entries(page?.hidden_matches ?? {}) : []).filter(([, n]) => (n ?? 0) > 0) as [Status, number][];

  return (
    <section aria-labelledby="tickets-title">
      <div class="title-row">
        <h1 id="tickets-title">Tickets</h1>
        {session.can("create_tickets") || session.me.role === "member" ? (
          <button type="button" class="primary" onClick={() => setCreating(true)} aria-expanded={creating}>
            New ticket
          </button>
        ) : null}
      </div>
      {creating && (
        <NewTicketForm
          session={session}
          onCancel={() => setCreating(false)}
          onCreated={(ticket) => {
            setCreating(false);
            navigate(`/tickets/${ticket.id}`);
          }}
        />
      )}
      <div role="group" aria-label="Status" class="tabs">
        {tabs.map((tab) => (
          <button
            type="button"
            key={tab.value}
            aria-pressed={filters.status === tab.value}
            onClick={() => setFilters({ ...filters, status: tab.value })}
          >
            {tab.label}
            {tab.count !== null && <span class="count"> {tab.count}</span>}
          </button>
        ))}
      </div>
      <form
        class="filters"
        role="search"
        onSubmit={(event) => {
          event.preventDefault();
          setFilters({ ...filters, q: searchText });
        }}
      >
        <label>
          Search subjects
          <input type="search" value={searchText} onInput={(e) => setSearchText(e.currentTarget.value)} maxLength={200} />
        </label>
        <button type="submit">Search</button>
        <label>
          Priority
          <select value={filters.priority} onChange={(e) => setFilters({ ...filters, priority: e.currentTarget.value as Priority | "" })}>
            <option value="">Any</option>
            {PRIORITIES.map((p) => (
              <option value={p} key={p}>
                {PRIORITY_LABELS[p]}
              </option>
            ))}
          </select>
        </label>
        <label>
          Assignee
          <select value={filters.assignee} onChange={(e) => setFilters({ ...filters, assignee: e.currentTarget.value })}>
            <option value="">Anyone</option>
            <option value="me">Me</option>
            <option value="none">Unassigned</option>
            {session.members.map((m) => (
              <option value={m.id} key={m.id}>
                {m.email}
              </option>
            ))}
          </select>
        </label>
        <label>
          Sort by
          <select value={filters.sort} onChange={(e) => setFilters({ ...filters, sort: e.currentTarget.value as Filters["sort"] })}>
            <option value="updated">Last updated</option>
            <option value="created">Created</option>
            <option value="priority">Priority</option>
          </select>
        </label>
      </form>
      <ErrorAlert text={error} />
      {hidden.length > 0 && (
        <p class="hint" role="status">
          {hidden.map(([status, n], index) => (
            <span key={status}>
              {index > 0 && "; "}
              {n} more in {STATUS_LABELS[status]} —{" "}
              <button type="button" class="link" onClick={() => setFilters({ ...filters, status })}>
                show
              </button>
            </span>
          ))}
        </p>
      )}
      {page !== null && items.length === 0 && <p>No tickets match.</p>}
      {items.length > 0 && (
        <table class="tickets">
          <caption class="visually-hidden">Tickets</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Subject</th>
              <th scope="col">Status</th>
              <th scope="col">Priority</th>
              <th scope="col">Assignee</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {items.map((ticket) => (
              <tr key={ticket.id}>
                <td>{ticket.number}</td>
                <td>
                  <a href={`/tickets/${ticket.id}`} onClick={onLinkClick}>
                    {ticket.subject}
                  </a>
                </td>
                <td>{STATUS_LABELS[ticket.status]}</td>
                <td>{PRIORITY_LABELS[ticket.priority]}</td>
                <td>{session.memberName(ticket.assignee_id)}</td>
                <td>{new Date(ticket.updated_at).toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {page?.next_cursor != null && (
        <button type="button" onClick={() => void more()}>
          Show more tickets
        </button>
      )}
    </section>
  );
}

function NewTicketForm({ session, onCancel, onCreated }: { session: Session; onCancel: () => void; onCreated: (t: Ticket) => void }) {
  const [subject, setSubject] = useState("");
  const [description, setDescription] = useState("");
  const [priority, setPriority] = useState<Priority>("normal");
  const [assignee, setAssignee] = useState("");
  const [problem, setProblem] = useState<ApiError | null>(null);
  const [other, setOther] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement>(null);
  const idempotencyKey = useRef(crypto.randomUUID());
  useEffect(() => first.current?.focus(), []);

  const assignable = session.can("assign_tickets") ? session.members : session.members.filter((m) => m.id === session.me.id);
  const fieldError = (field: string): string | null => (problem !== null && problem.field === field ? problem.message : null);

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    setBusy(true);
    setProblem(null);
    setOther(null);
    try {
      const body: Record<string, unknown> = { subject, description, priority };
      if (assignee !== "") body["assignee_id"] = assignee;
      const created = (await call<Ticket>("POST", "/api/v1/tickets", { body, headers: { "Idempotency-Key": idempotencyKey.current } })).data;
      onCreated(created);
    } catch (failure) {
      if (failure instanceof ApiError && failure.field !== null && ["subject", "description", "priority", "assignee_id"].includes(failure.field)) setProblem(failure);
      else setOther(errorText(failure));
    } finally {
      setBusy(false);
    }
  };

  const described = (field: string): Record<string, string> => (fieldError(field) !== null ? { "aria-describedby": `new-${field}-error`, "aria-invalid": "true" } : {});

  return (
    <form class="card new-ticket" onSubmit={(e) => void submit(e)} aria-labelledby="new-ticket-title">
      <h2 id="new-ticket-title">New ticket</h2>
      <label for="new-subject">Subject</label>
      <input id="new-subject" ref={first} value={subject} onInput={(e) => setSubject(e.currentTarget.value)} {...described("subject")} />
      {fieldError("subject") !== null && <p id="new-subject-error" class="field-error">{fieldError("subject")}</p>}
      <label for="new-description">Description</label>
      <textarea id="new-description" rows={4} value={description} onInput={(e) => setDescription(e.currentTarget.value)} {...described("description")} />
      {fieldError("description") !== null && <p id="new-description-error" class="field-error">{fieldError("description")}</p>}
      <label for="new-priority">Priority</label>
      <select id="new-priority" value={priority} onChange={(e) => setPriority(e.currentTarget.value as Priority)} {...described("priority")}>
        {PRIORITIES.map((p) => (
          <option value={p} key={p}>
            {PRIORITY_LABELS[p]}
          </option>
        ))}
      </select>
      {fieldError("priority") !== null && <p id="new-priority-error" class="field-error">{fieldError("priority")}</p>}
      <label for="new-assignee">Assignee (optional)</label>
      <select id="new-assignee" value={assignee} onChange={(e) => setAssignee(e.currentTarget.value)} {...described("assignee_id")}>
        <option value="">Unassigned</option>
        {assignable.map((m) => (
          <option value={m.id} key={m.id}>
            {m.email}
          </option>
        ))}
      </select>
      {fieldError("assignee_id") !== null && <p id="new-assignee_id-error" class="field-error">{fieldError("assignee_id")}</p>}
      <ErrorAlert text={other} />
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          Create ticket
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
