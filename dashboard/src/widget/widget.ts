// The chat widget a site embeds:
//   <script src="https://desk.example/widget.js" data-assistant-id="..." data-widget-key="..."
//           data-api="https://widget-api.example"></script>
// A chat box with a demo assistant; "Talk to a person" files a ticket request through the
// widget API (POST /widget/v1/ticket-requests, X-Widget-Key), asking for a name and an email
// first when the assistant requires them, then polls the request until it is decided.
// No framework and no imports: one small file. Text from outside is only ever set as text.

interface Message {
  role: "visitor" | "assistant";
  text: string;
  sent_at: string;
}

const REASONS: Record<string, string> = {
  unknown_assistant: "This help desk is not set up to take requests from this chat yet.",
  ticket_creation_disabled: "This team does not take tickets from the chat right now.",
  contact_info_required: "Please give your name and email so the team can reach you.",
  invalid_contact: "That name or email does not look right; please check them.",
  contact_not_verified: "We could not verify your email; please sign in on the site and try again.",
  invalid_widget_key: "This chat is not set up correctly (its key was refused); please tell the site's owner.",
  origin_not_allowed: "This site may not file tickets with this help desk; please tell the site's owner.",
  rate_limited: "Too many requests just now; please wait a minute and try again.",
};

function reasonText(reason: unknown, detail: unknown): string {
  if (typeof reason === "string" && reason in REASONS) return REASONS[reason] ?? "";
  if (typeof detail === "string") return detail;
  return "Your request could not be filed; please try again later.";
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function start(script: HTMLScriptElement): void {
  const assistantId = script.dataset["assistantId"] ?? "";
  const widgetKey = script.dataset["widgetKey"] ?? "";
  const api = (script.dataset["api"] ?? new URL(script.src).origin).replace(/\/$/, "");
  const conversationId = `conv-${crypto.randomUUID()}`;
  const messages: Message[] = [];

  const box = el("section", { class: "hd-widget", "aria-label": "Chat with us" });
  box.style.cssText = "position:fixed;right:16px;bottom:16px;width:320px;background:#fff;border:1px solid #444;border-radius:8px;padding:12px;font:14px system-ui,sans-serif;color:#111;box-shadow:0 2px 12px rgba(0,0,0,.25)";
  const title = el("h2", {}, "Chat with us");
  title.style.cssText = "margin:0 0 8px;font-size:16px";
  const log = el("ol", { class: "hd-log", "aria-live": "polite", "aria-label": "Conversation" });
  log.style.cssText = "list-style:none;padding:0;margin:0 0 8px;max-height:200px;overflow:auto";
  const form = el("form", { class: "hd-chat" });
  const inputId = `hd-input-${conversationId}`;
  const label = el("label", { for: inputId }, "Your message");
  const input = el("input", { id: inputId, autocomplete: "off", maxlength: "2000" });
  const send = el("button", { type: "submit" }, "Send");
  form.append(label, input, send);
  const talk = el("button", { type: "button", class: "hd-talk" }, "Talk to a person");
  const status = el("p", { role: "status", class: "hd-status" });
  box.append(title, log, form, talk, status);
  document.body.append(box);

  const say = (role: Message["role"], text: string): void => {
    messages.push({ role, text, sent_at: new Date().toISOString() });
    const item = el("li", {}, `${role === "visitor" ? "You" : "Assistant"}: ${text}`);
    log.append(item);
  };
  say("assistant", "Hello! Ask me anything, or choose “Talk to a person” to reach the team.");

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text === "") return;
    say("visitor", text);
    input.value = "";
    say("assistant", "I am a demo assistant; I cannot answer that myself. The team can: choose “Talk to a person”.");
  });

  let contactForm: HTMLFormElement | null = null;
  const file = async (contact: { name: string; email: string } | null): Promise<void> => {
    status.textContent = "Sending your request to the team…";
    const requestId = crypto.randomUUID();
    const body: Record<string, unknown> = {
      request_id: requestId,
      assistant_id: assistantId,
      conversation: { id: conversationId, messages },
    };
    if (contact !== null) body["contact"] = contact;
    let answer: Response;
    try {
      answer = await fetch(`${api}/widget/v1/ticket-requests`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Widget-Key": widgetKey },
        body: JSON.stringify(body),
      });
    } catch {
      status.textContent = "The help desk could not be reached; please check your connection and try again.";
      return;
    }
    const json = (await answer.json().catch(() => ({}))) as Record<string, unknown>;
    if (!answer.ok) {
      if (json["reason"] === "contact_info_required" || json["code"] === "contact_info_required") askContact();
      status.textContent = reasonText(json["reason"] ?? json["code"], json["detail"]);
      return;
    }
    for (let attempt = 0; attempt < 60; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const polled = await fetch(`${api}/widget/v1/ticket-requests/${requestId}`, { headers: { "X-Widget-Key": widgetKey } }).catch(() => null);
      if (polled === null || !polled.ok) continue;
      const state = (await polled.json()) as Record<string, unknown>;
      if (state["status"] === "created") {
        status.textContent = `Ticket #${String(state["ticket_number"])} created. The team will get back to you.`;
        contactForm?.remove();
        return;
      }
      if (state["status"] === "rejected") {
        if (state["reason"] === "contact_info_required" || state["reason"] === "invalid_contact") askContact();
        status.textContent = reasonText(state["reason"], state["detail"]);
        return;
      }
    }
    status.textContent = "The team has not confirmed your request yet; please try again in a minute.";
  };

  const askContact = (): void => {
    if (contactForm !== null) return;
    contactForm = el("form", { class: "hd-contact", "aria-label": "Your contact details", novalidate: "" });
    const nameId = `hd-name-${conversationId}`;
    const emailId = `hd-email-${conversationId}`;
    const nameInput = el("input", { id: nameId, autocomplete: "name", maxlength: "200" });
    const emailInput = el("input", { id: emailId, type: "email", autocomplete: "email", maxlength: "254" });
    contactForm.append(
      el("p", {}, "So the team can answer you, please give your name and email."),
      el("label", { for: nameId }, "Your name"),
      nameInput,
      el("label", { for: emailId }, "Your email"),
      emailInput,
      el("button", { type: "submit" }, "Send to the team"),
    );
    contactForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void file({ name: nameInput.value.trim(), email: emailInput.value.trim() });
    });
    box.insertBefore(contactForm, status);
    nameInput.focus();
  };

  // Whether to ask for a name and an email before filing (GET /widget/v1/settings); if it
  // cannot be read, the refusal `contact_info_required` opens the same form.
  let requireContact = script.dataset["requireContact"] === "true";
  void fetch(`${api}/widget/v1/settings`, { headers: { "X-Widget-Key": widgetKey } })
    .then(async (answer) => {
      if (!answer.ok) return;
      const settings = (await answer.json()) as Record<string, unknown>;
      if (settings["require_contact_info"] === true) requireContact = true;
    })
    .catch(() => undefined);

  talk.addEventListener("click", () => {
    if (requireContact) askContact();
    else void file(null);
  });
}

const current = document.currentScript;
if (current instanceof HTMLScriptElement) start(current);
