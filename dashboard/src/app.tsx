// The shell: who is signed in, the navigation, the offline badge, and which page shows.
import { useCallback, useEffect, useState } from "preact/hooks";
import {
  ApiError,
  call,
  errorText,
  forgetToken,
  readClaims,
  storedToken,
  takeTokenFromAddress,
  type Member,
} from "./api";
import { closeStream, useOnline } from "./live";
import { ErrorAlert } from "./notices";
import { onLinkClick, usePath } from "./router";
import { TicketList } from "./tickets";
import { TicketView } from "./ticket";
import { AssistantsPage, MembersPage } from "./admin";

export interface Session {
  me: Member;
  members: Member[];
  can: (capability: string) => boolean;
  memberName: (id: string | null | undefined) => string;
  reloadMembers: () => Promise<void>;
}

type SignInState =
  | { kind: "loading" }
  | { kind: "signed-out"; reason: string | null }
  | { kind: "signed-in"; session: Session };

export function App() {
  const [state, setState] = useState<SignInState>({ kind: "loading" });

  const signOut = useCallback((reason: string | null) => {
    forgetToken();
    closeStream();
    setState({ kind: "signed-out", reason });
  }, []);

  const load = useCallback(async () => {
    takeTokenFromAddress();
    const token = storedToken();
    const claims = token === null ? null : readClaims(token);
    if (token === null) return setState({ kind: "signed-out", reason: null });
    if (claims === null) return signOut("That sign-in link is not a valid token.");
    try {
      const me = (await call<Member>("GET", `/api/v1/members/${encodeURIComponent(claims.sub)}`)).data;
      const members = (await call<Member[]>("GET", "/api/v1/members")).data;
      const session: Session = {
        me,
        members,
        can: (capability) => me.capabilities.includes(capability),
        memberName: (id) => {
          if (id === null || id === undefined) return "Unassigned";
          return session.members.find((m) => m.id === id)?.email ?? `Member ${id.slice(0, 8)}`;
        },
        reloadMembers: async () => {
          session.members = (await call<Member[]>("GET", "/api/v1/members")).data;
          setState({ kind: "signed-in", session: { ...session } });
        },
      };
      setState({ kind: "signed-in", session });
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403 || error.status === 404)) {
        signOut(`The help desk refused your sign-in: ${error.message}`);
      } else {
        signOut(errorText(error));
      }
    }
  }, [signOut]);

  useEffect(() => {
    void load();
    const onSignedOut = (event: Event): void => {
      const detail = (event as CustomEvent<string>).detail;
      signOut(`You were signed out: ${detail}`);
    };
    const onHash = (): void => void load();
    window.addEventListener("helpdesk:signed-out", onSignedOut);
    window.addEventListener("hashchange", onHash);
    return () => {
      window.removeEventListener("helpdesk:signed-out", onSignedOut);
      window.removeEventListener("hashchange", onHash);
    };
  }, [load, signOut]);

  if (state.kind === "loading") return <main id="main"><p role="status">Signing in…</p></main>;
  if (state.kind === "signed-out") return <SignIn reason={state.reason} />;
  return <Shell session={state.session} onSignOut={() => signOut("You signed out.")} />;
}

function SignIn({ reason }: { reason: string | null }) {
  return (
    <main id="main" class="sign-in">
      <h1>Sign in to the help desk</h1>
      <ErrorAlert text={reason} />
      <p>
        Open the sign-in link an operator made for you. On the help desk's machine, run{" "}
        <code>helpdesk login --workspace WORKSPACE_ID --member MEMBER_ID</code> and open the{" "}
        <code>login_url</code> it prints. A link works for 12 hours; when it has expired, make a
        new one the same way.
      </p>
    </main>
  );
}

function Shell({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const path = usePath();
  const online = useOnline();
  const admin = session.can("manage_members") || session.can("configure_settings");
  let page;
  const ticketMatch = /^\/tickets\/([0-9a-f-]{36})/.exec(path);
  if (ticketMatch?.[1] !== undefined) page = <TicketView session={session} ticketId={ticketMatch[1]} />;
  else if (path.startsWith("/admin/members")) page = <MembersPage session={session} />;
  else if (path.startsWith("/admin/assistants")) page = <AssistantsPage session={session} />;
  else page = <TicketList session={session} />;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <nav aria-label="Main">
          <a href="/" onClick={onLinkClick} aria-current={path === "/" || path.startsWith("/?") ? "page" : undefined}>
            Tickets
          </a>
          {admin && (
            <>
              <a href="/admin/members" onClick={onLinkClick} aria-current={path.startsWith("/admin/members") ? "page" : undefined}>
                Members
              </a>
              <a href="/admin/assistants" onClick={onLinkClick} aria-current={path.startsWith("/admin/assistants") ? "page" : undefined}>
                Assistants
              </a>
            </>
          )}
        </nav>
        <span class="who">
          {session.me.email} ({session.me.role})
        </span>
        <span class={online ? "badge live" : "badge offline"} role="status">
          {online ? "Live" : "Offline — changes appear when the connection is back"}
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}
