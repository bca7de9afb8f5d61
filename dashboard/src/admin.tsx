// Admin pages: members and roles; an assistant's widget settings, key and refusals.
import { useCallback, useEffect, useState } from "preact/hooks";
import { call, errorText, ROLES, type AssistantSummary, type Role, type TicketSettings } from "./api";
import type { Session } from "./app";
import { Outcome } from "./notices";

export function MembersPage({ session }: { session: Session }) {
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<Role>("member");
  const [message, setMessage] = useState<{ text: string; error: boolean } | null>(null);
  const manage = session.can("manage_members");
  const act = async (work: () => Promise<unknown>, done: string): Promise<void> => {
    try {
      await work();
      await session.reloadMembers();
      setMessage({ text: done, error: false });
    } catch (failure) {
      setMessage({ text: errorText(failure), error: true });
    }
  };
  return (
    <section aria-labelledby="members-title">
      <h1 id="members-title">Members and roles</h1>
      <Outcome message={message} />
      <table>
        <caption class="visually-hidden">Members</caption>
        <thead>
          <tr>
            <th scope="col">Email</th>
            <th scope="col">Role</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {session.members.map((member) => (
            <tr key={member.id}>
              <td>{member.email}</td>
              <td>
                <label class="visually-hidden" for={`role-${member.id}`}>
                  Role of {member.email}
                </label>
                <select
                  id={`role-${member.id}`}
                  value={member.role}
                  disabled={!manage}
                  onChange={(e) => {
                    const next = e.currentTarget.value as Role;
                    void act(() => call("PATCH", `/api/v1/members/${member.id}`, { body: { role: next } }), `${member.email} is now ${next}.`);
                  }}
                >
                  {ROLES.map((r) => (
                    <option value={r} key={r}>
                      {r}
                    </option>
                  ))}
                </select>
              </td>
              <td>
                {manage && (
                  <button type="button" onClick={() => void act(() => call("DELETE", `/api/v1/members/${member.id}`), `${member.email} was removed.`)}>
                    Remove {member.email}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {manage && (
        <form
          class="card"
          aria-label="Add a member"
          onSubmit={(e) => {
            e.preventDefault();
            void act(() => call("POST", "/api/v1/members", { body: { email, role } }), `${email} was added.`).then(() => setEmail(""));
          }}
        >
          <h2>Add a member</h2>
          <label for="member-email">Email</label>
          <input id="member-email" type="email" value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
          <label for="member-role">Role</label>
          <select id="member-role" value={role} onChange={(e) => setRole(e.currentTarget.value as Role)}>
            {ROLES.map((r) => (
              <option value={r} key={r}>
                {r}
              </option>
            ))}
          </select>
          <button type="submit">Add member</button>
        </form>
      )}
    </section>
  );
}

interface Refusals {
  totals: Record<string, number>;
}

interface RequestRecord {
  request_id: string;
  status: string;
  reason?: string | null;
  detail?: string | null;
  received_at: string;
}

export function AssistantsPage({ session }: { session: Session }) {
  const [assistantId, setAssistantId] = useState("");
  const [loaded, setLoaded] = useState<string | null>(null);
  const [settings, setSettings] = useState<TicketSettings | null>(null);
  const [origins, setOrigins] = useState("");
  const [refusals, setRefusals] = useState<Refusals | null>(null);
  const [rejected, setRejected] = useState<RequestRecord[]>([]);
  const [message, setMessage] = useState<{ text: string; error: boolean } | null>(null);
  const configure = session.can("configure_settings");
  const [assistants, setAssistants] = useState<AssistantSummary[] | null>(null);

  const listAssistants = useCallback(async (): Promise<void> => {
    try {
      setAssistants((await call<AssistantSummary[]>("GET", "/api/v1/assistants")).data);
    } catch (failure) {
      setMessage({ text: errorText(failure), error: true });
    }
  }, []);
  useEffect(() => {
    if (configure) void listAssistants();
  }, [configure, listAssistants]);

  const open = async (id: string): Promise<void> => {
    try {
      let current: TicketSettings;
      try {
        current = (await call<TicketSettings>("GET", `/api/v1/assistants/${encodeURIComponent(id)}/ticket-settings`)).data;
      } catch {
        current = { ticket_creation_enabled: false, require_contact_info: false, allowed_origins: [], identity_verification: false };
      }
      setSettings(current);
      setOrigins((current.allowed_origins ?? []).join("\n"));
      setLoaded(id);
      setMessage(null);
      try {
        setRefusals((await call<Refusals>("GET", `/api/v1/assistants/${encodeURIComponent(id)}/ticket-request-refusals?minutes=1440`)).data);
      } catch {
        setRefusals(null);
      }
      try {
        setRejected((await call<RequestRecord[]>("GET", `/api/v1/assistants/${encodeURIComponent(id)}/ticket-requests?outcome=rejected`)).data);
      } catch {
        setRejected([]);
      }
    } catch (failure) {
      setMessage({ text: errorText(failure), error: true });
    }
  };

  const save = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (settings === null || loaded === null) return;
    try {
      const body = {
        ticket_creation_enabled: settings.ticket_creation_enabled,
        require_contact_info: settings.require_contact_info,
        identity_verification: settings.identity_verification ?? false,
        allowed_origins: origins.split(/\s+/).filter((o) => o !== ""),
      };
      const answer = (await call<TicketSettings>("PUT", `/api/v1/assistants/${encodeURIComponent(loaded)}/ticket-settings`, { body })).data;
      setSettings(answer);
      setMessage({ text: "Settings saved.", error: false });
      void listAssistants();
    } catch (failure) {
      setMessage({ text: errorText(failure), error: true });
    }
  };

  const rotate = async (): Promise<void> => {
    if (loaded === null || settings === null) return;
    try {
      const answer = (await call<{ widget_key: string }>("POST", `/api/v1/assistants/${encodeURIComponent(loaded)}/widget-key`)).data;
      setSettings({ ...settings, widget_key: answer.widget_key });
      setMessage({ text: "A new widget key was made; the old one is refused from now on. Update the embed snippet on your site.", error: false });
    } catch (failure) {
      setMessage({ text: errorText(failure), error: true });
    }
  };

  const snippet =
    loaded !== null && settings?.widget_key !== undefined
      ? `<script src="${window.location.origin}/widget.js" data-assistant-id="${loaded}" data-widget-key="${settings.widget_key}" data-api="${document.documentElement.dataset["widgetApi"] ?? ""}"></script>`
      : null;

  return (
    <section aria-labelledby="assistants-title">
      <h1 id="assistants-title">Assistants' widget settings</h1>
      <h2 id="your-assistants">Your assistants</h2>
      {assistants === null ? (
        <p>{configure ? "Loading…" : "Only owners and admins see and change assistants' settings."}</p>
      ) : assistants.length === 0 ? (
        <p>No assistant has ticket settings yet: enter your assistant's id below to set it up.</p>
      ) : (
        <ul aria-labelledby="your-assistants">
          {assistants.map((assistant) => (
            <li key={assistant.assistant_id}>
              <button
                type="button"
                class="link"
                onClick={() => {
                  setAssistantId(assistant.assistant_id);
                  void open(assistant.assistant_id);
                }}
              >
                {assistant.assistant_id}
              </button>{" "}
              — {assistant.ticket_creation_enabled ? "tickets on" : "tickets off"}
              {assistant.require_contact_info ? ", contact details required" : ""}
              {assistant.identity_verification ? ", visitors verified" : ""}
            </li>
          ))}
        </ul>
      )}
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          void open(assistantId.trim());
        }}
      >
        <label>
          Assistant id
          <input value={assistantId} onInput={(e) => setAssistantId(e.currentTarget.value)} maxLength={128} />
        </label>
        <button type="submit">Open settings</button>
      </form>
      <Outcome message={message} />
      {settings !== null && loaded !== null && (
        <>
          <form class="card" aria-label={`Settings of ${loaded}`} onSubmit={(e) => void save(e)}>
            <h2>Settings of {loaded}</h2>
            <label class="check">
              <input type="checkbox" checked={settings.ticket_creation_enabled} disabled={!configure} onChange={(e) => setSettings({ ...settings, ticket_creation_enabled: e.currentTarget.checked })} />
              Visitors may create tickets from the widget
            </label>
            <label class="check">
              <input type="checkbox" checked={settings.require_contact_info} disabled={!configure} onChange={(e) => setSettings({ ...settings, require_contact_info: e.currentTarget.checked })} />
              Require contact information (name and a valid email)
            </label>
            <label class="check">
              <input type="checkbox" checked={settings.identity_verification ?? false} disabled={!configure} onChange={(e) => setSettings({ ...settings, identity_verification: e.currentTarget.checked })} />
              Identity verification (your server signs the visitor's email)
            </label>
            <label for="allowed-origins">Allowed origins (one per line; none = any site)</label>
            <textarea id="allowed-origins" rows={3} value={origins} readOnly={!configure} onInput={(e) => setOrigins(e.currentTarget.value)} />
            {configure && <button type="submit">Save settings</button>}
          </form>
          {settings.widget_key !== undefined && (
            <div class="card">
              <h2>Widget key</h2>
              <p>
                <code>{settings.widget_key}</code>
              </p>
              {configure && (
                <button type="button" onClick={() => void rotate()}>
                  Rotate widget key
                </button>
              )}
              {snippet !== null && (
                <>
                  <label for="embed-snippet">Embed snippet (copy into your site)</label>
                  <textarea id="embed-snippet" readOnly rows={3} value={snippet} onFocus={(e) => e.currentTarget.select()} />
                  <button type="button" onClick={() => void navigator.clipboard?.writeText(snippet)}>
                    Copy snippet
                  </button>
                </>
              )}
            </div>
          )}
          <div class="card">
            <h2>Refused widget requests (last 24 hours), per reason</h2>
            {refusals === null || Object.keys(refusals.totals).length === 0 ? (
              <p>No refused requests.</p>
            ) : (
              <table>
                <caption class="visually-hidden">Refusals per reason</caption>
                <thead>
                  <tr>
                    <th scope="col">Reason</th>
                    <th scope="col">Count</th>
                  </tr>
                </thead>
                <tbody>
                  {Object.entries(refusals.totals).map(([reason, count]) => (
                    <tr key={reason}>
                      <td>{reason}</td>
                      <td>{count}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            <h3>Recent rejected requests</h3>
            {rejected.length === 0 ? (
              <p>None.</p>
            ) : (
              <table>
                <caption class="visually-hidden">Recent rejected requests</caption>
                <thead>
                  <tr>
                    <th scope="col">Received</th>
                    <th scope="col">Reason</th>
                    <th scope="col">Detail</th>
                  </tr>
                </thead>
                <tbody>
                  {rejected.map((record) => (
                    <tr key={record.request_id}>
                      <td>{new Date(record.received_at).toLocaleString()}</td>
                      <td>{record.reason ?? ""}</td>
                      <td>{record.detail ?? ""}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </div>
        </>
      )}
    </section>
  );
}
